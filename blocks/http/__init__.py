"""HTTP blocks on httpx: an API endpoint and a webhook, observable without leaking.

:class:`HttpEndpoint` is an HTTP API: a base URL, headers (values may be secret),
basic or bearer authentication, a timeout, connection retries and TLS
verification. Its ``request``/``get``/``post``/``put``/``patch``/``delete`` methods
and their async twins return ``httpx.Response`` objects, and each call's outcome
event carries the method, the URL with user-info and secret query values masked,
the status code, the bytes sent and received and the redirects followed.

:class:`Webhook` sends a notification to a secret URL (Slack-style or any other),
optionally from a template; its events name the host only.

Example:
    >>> from blocks.http import BearerAuth, HttpEndpoint
    >>> api = HttpEndpoint(
    ...     base_url="https://api.example.com/v1", auth=BearerAuth(token="...")
    ... )
"""

from blocks.http._endpoint import HttpEndpoint
from blocks.http._request import BasicAuth, BearerAuth
from blocks.http._webhook import Webhook

__all__ = ["BasicAuth", "BearerAuth", "HttpEndpoint", "Webhook"]

# This module is their public home: `eventblocks register -m blocks.http` finds the
# types defined here, and saved documents record it as their import path.
for _exported in (BasicAuth, BearerAuth, HttpEndpoint, Webhook):
    _exported.__module__ = __name__
del _exported
