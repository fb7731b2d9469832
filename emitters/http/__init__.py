"""The HTTP sink: ``HttpEmitter``, batched POST with retries and a disk spool.

See the wire format in the documentation page "Emitters": one ``POST`` per batch
of ``{"events": [...]}``, gzip above a size threshold, an ``Idempotency-Key``,
retries on 408, 429, 5xx and connection errors, at-least-once delivery.
"""

from emitters.http._emitter import HttpDeliveryError, HttpEmitter, from_environment

__all__ = ["HttpDeliveryError", "HttpEmitter", "from_environment"]
