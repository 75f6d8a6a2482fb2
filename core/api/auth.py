"""Bearer-token authentication for the API's machine-to-machine endpoints."""

from __future__ import annotations

import hmac

from starlette.exceptions import HTTPException
from starlette.requests import Request

from core.settings import ApiSettings


def require_bearer(request: Request, api: ApiSettings) -> None:
    """Let the request through only with ``Authorization: Bearer <api.token>``: 401
    otherwise, 503 while no token is configured (the endpoint is off)."""
    if api.token is None:
        raise HTTPException(
            503,
            "this endpoint is off until an API token is set: set api.token "
            "(e.g. the CADENCE_API__TOKEN environment variable)",
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = api.token.get_secret_value().encode()
    # compare_digest takes as long whatever the first wrong byte: no timing hints.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise HTTPException(
            401,
            "send the API token as 'Authorization: Bearer <api.token>'",
            headers={"WWW-Authenticate": 'Bearer realm="cadence"'},
        )
