"""The NATS JetStream sink ``NatsEmitter``, and ``NatsIngester`` that stores events.

Workers publish each event to a stream (``pip install 'eventblocks[nats]'``);
one or more ingesters (``eventblocks events ingest``) pull them into an
``SQLEventStore``, acknowledging each message once its batch is committed.
"""

from emitters.nats._emitter import NatsDeliveryError, NatsEmitter, from_environment
from emitters.nats._ingest import IngestStats, NatsIngester

__all__ = [
    "IngestStats",
    "NatsDeliveryError",
    "NatsEmitter",
    "NatsIngester",
    "from_environment",
]
