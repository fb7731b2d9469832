"""The Prefect sink: ``PrefectEmitter`` sends block events to a Prefect server.

It speaks Prefect's event API over HTTP (no Prefect import, no extra), maps
resources to Prefect's labels (see :data:`ID_PREFIX`) and checks each event
against the server's :class:`Limits`.
"""

from emitters.prefect._emitter import PrefectEmitter
from emitters.prefect._schema import ID_PREFIX, Limits

__all__ = ["ID_PREFIX", "Limits", "PrefectEmitter"]
