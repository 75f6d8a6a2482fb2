"""Open and click tracking: ``/o/{token}`` (the pixel) and ``/c/{token}`` (the redirect).

Both record an event for the message's customer (``message_opened``,
``message_clicked``, which keep the rollups' last open and click current).
A click goes only to the URL signed into its token: nothing in the request
(a query string, another token's URL) can name another destination, so the
API is no open redirect; a signed URL that is not a web address is refused.
``HEAD`` requests (link checkers) get the same answer but record nothing.
"""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from core import clock, event_types
from core.api.context import RouteGroup
from core.api.records import record_message_event
from core.links import LinkClaims

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
"""A 1x1 transparent GIF."""
_NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
    "Referrer-Policy": "no-referrer",
}
_WEB_SCHEMES = ("http", "https")


class TrackingRoutes(RouteGroup):
    """``GET /o/{token}`` and ``GET /c/{token}``."""

    @property
    def routes(self) -> list[Route]:
        return [
            Route("/o/{token}", self.opened, methods=["GET"]),
            Route("/c/{token}", self.clicked, methods=["GET"]),
        ]

    async def opened(self, request: Request) -> Response:
        claims = await self._context.verify(request.path_params["token"], "open")
        if request.method == "GET":
            await self._record(claims, event_types.MESSAGE_OPENED)
        return Response(PIXEL, media_type="image/gif", headers=_NO_CACHE)

    async def clicked(self, request: Request) -> Response:
        claims = await self._context.verify(request.path_params["token"], "click")
        destination = web_destination(claims.detail)
        if request.method == "GET":
            await self._record(claims, event_types.MESSAGE_CLICKED, url=destination)
        return RedirectResponse(destination, status_code=302, headers=_NO_CACHE)

    async def _record(self, claims: LinkClaims, kind: str, **extra: str) -> None:
        now = clock.now()
        async with self._context.store.transaction() as session:
            await record_message_event(
                session,
                claims.customer_id,
                claims.outbox_id,
                kind,
                now,
                source="tracking",
                extra=extra,
            )


def web_destination(url: str | None) -> str:
    """``url`` if it is an absolute http(s) address with a host; 400 otherwise."""
    refused = HTTPException(400, "this link does not lead to a web page")
    if not url or any(ord(c) < 0x21 or c in "\\\x7f" for c in url):
        raise refused
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise refused from None
    if parts.scheme.lower() not in _WEB_SCHEMES or not host:
        raise refused
    return url
