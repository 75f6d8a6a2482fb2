"""``GET /healthz``: whether the API and its database answer, for load balancers."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.api.context import RouteGroup

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0
"""A database slower than this to answer ``SELECT 1`` counts as down."""


class HealthRoutes(RouteGroup):
    """``GET /healthz``: 200 when a trivial query answers, 503 when it does not."""

    @property
    def routes(self) -> list[Route]:
        return [Route("/healthz", self.health, methods=["GET"])]

    async def health(self, request: Request) -> Response:
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS), self._context.store.reading() as session:
                await session.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            # The error's text may name the server and the user: only its kind is logged.
            logger.warning("health check: the database does not answer (%s)", type(exc).__name__)
            return JSONResponse({"status": "unavailable", "database": "unavailable"}, 503)
        return JSONResponse({"status": "ok", "database": "ok"})
