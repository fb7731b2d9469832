"""The local web page over the event store, and its JSON API (``eventblocks ui``).

:func:`create_app` returns the ASGI application: the page (``/``, ``/static/``)
and the read-only JSON API under ``/api/``. Needs the ``ui`` extra:
``pip install 'eventblocks[ui]'``.
"""

try:
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "The web page needs starlette and uvicorn, which are not installed: "
        "pip install 'eventblocks[ui]'"
    ) from exc

from blocks._ui._app import LOOPBACK_HOSTS, create_app

__all__ = ["LOOPBACK_HOSTS", "create_app"]
