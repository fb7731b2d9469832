"""Run context providers: where a run comes from when no explicit scope names one.

``base`` is the protocol; ``registry`` keeps the providers (built in, registered in
code, and found through the ``eventblocks.run_context`` entry points) and asks them
in order; ``prefect`` and ``airflow`` are the built-in providers.
"""
