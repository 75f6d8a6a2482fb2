"""The HTTP API, served by uvicorn inside the delivery worker process.

Routes (tokens in ``/u``, ``/o`` and ``/c`` are signed by :mod:`core.links`):

``GET /u/{token}``, ``POST /u/{token}``
    unsubscribe confirmation page; one-click unsubscribe (RFC 8058)
``GET /o/{token}``
    the open pixel
``GET /c/{token}``
    a tracked click: 302 to the URL signed into the token
``GET /healthz``
    200 when the database answers, 503 when it does not
``POST /v1/bounces``
    provider bounce and complaint webhooks (bearer ``api.token``)
``GET /v1/customers/{external_id}/messages``, ``POST .../messages/{id}/read``
    in-app messages (bearer ``api.token``)
"""

from core.api.app import create_app
from core.api.server import serve_api

__all__ = ["create_app", "serve_api"]
