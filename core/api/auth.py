"""Bearer-token authentication for the API's machine-to-machine endpoints."""

from __future__ import annotations

import hashlib
import hmac
import secrets

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


def require_ingest_token(request: Request, api: ApiSettings) -> None:
    """Let the request through only with a bearer token whose hash is in
    ``api.ingest_token_hashes``: 401 otherwise, 503 while none is configured."""
    if not api.ingest_token_hashes:
        raise HTTPException(
            503,
            "event ingest is off until a token is set: run `cadence api token` and add its "
            "hash line to api.ingest_token_hashes",
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    digest = token_hash(given.strip()).encode()
    # Every configured hash is compared, in constant time each: no hint which one is close.
    matches = [hmac.compare_digest(digest, known.encode()) for known in api.ingest_token_hashes]
    if scheme.lower() != "bearer" or not given.strip() or not any(matches):
        raise HTTPException(
            401,
            "send an ingest token as 'Authorization: Bearer <token>'; its hash must be in "
            "api.ingest_token_hashes",
            headers={"WWW-Authenticate": 'Bearer realm="cadence"'},
        )


def token_hash(token: str) -> str:
    """How ``api.ingest_token_hashes`` stores ``token``: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def new_ingest_token() -> tuple[str, str]:
    """A new random ingest token and its hash line."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)
