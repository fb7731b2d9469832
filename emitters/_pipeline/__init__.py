"""The pipeline: call records, the dispatcher, event building and delivery.

``pipeline`` is its public face (``configure``, ``flush``, ``shutdown``, ``stats``);
``calls`` wraps block methods on the caller's thread; ``dispatcher`` drains the
queue off it; ``build`` assembles events; ``delivery`` runs one worker per sink.
"""
