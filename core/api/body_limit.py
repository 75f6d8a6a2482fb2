"""The request body limit (``api.max_body_bytes``): 413 for anything larger.

A body whose Content-Length is over the limit is refused before the app
sees it; a chunked one (no Content-Length) is counted as it streams in and
refused once it passes the limit, so no route ever holds more than the
limit in memory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ErrorResponder = Callable[[Request, Exception], Awaitable[Response]]


def too_large() -> HTTPException:
    return HTTPException(413, "the request body is larger than api.max_body_bytes allows")


class BodyLimit:
    """ASGI middleware that enforces the body limit; ``respond`` words the 413 answer the
    way the app words its other errors."""

    def __init__(self, app: ASGIApp, max_bytes: int, respond: ErrorResponder) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.respond = respond

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = await self.respond(Request(scope), too_large())
            await response(scope, receive, send)
            return
        received = 0

        async def counting() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise too_large()  # answered by the app's handler for HTTPException
            return message

        await self.app(scope, counting, send)
