"""One log line per request, with link tokens masked.

A link token is a secret (whoever has it can unsubscribe its customer, or
count as them opening a message), so the token part of ``/u/``, ``/o/`` and
``/c/`` paths is replaced by ``***`` and query strings are left out.
uvicorn's own access log is off (see :mod:`core.api.server`): it would
print the whole path.
"""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

_TOKEN_PATH = re.compile(r"^/([uoc])/[^/]*")


def masked_path(path: str) -> str:
    """``path`` with a link token replaced by ``***``."""
    return _TOKEN_PATH.sub(r"/\1/***", path)


class AccessLog:
    """ASGI middleware: logs method, masked path, status and time taken of each request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app fails before it answers
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client")
            logger.info(
                '%s "%s %s" %d %.1f ms',
                client[0] if client else "-",
                scope["method"],
                masked_path(scope["path"]),
                status,
                (time.perf_counter() - started) * 1000,
            )
