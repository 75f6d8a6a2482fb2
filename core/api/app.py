"""The Starlette application: every route, the body-size limit, errors and the access log."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.api.access_log import AccessLog
from core.api.body_limit import BodyLimit
from core.api.bounce_webhook import BounceWebhookRoutes
from core.api.context import ApiContext
from core.api.events import EventRoutes
from core.api.health import HealthRoutes
from core.api.in_app import InAppRoutes
from core.api.metrics import MetricsRoutes
from core.api.pages import html_response, page
from core.api.tracking import TrackingRoutes
from core.api.unsubscribe import UnsubscribeRoutes
from core.db import Store
from core.settings import Settings

_MACHINE_PATHS = ("/v1/", "/healthz", "/metrics")
"""Paths that programs call: their errors are JSON; people's links get an HTML page."""
_PAGE_TITLES = {
    400: "This link does not work",
    404: "Not found",
    410: "This link has expired",
    413: "Too large",
}


def create_app(store: Store, settings: Settings) -> Starlette:
    """The HTTP API over ``store``: unsubscribe, tracking, bounces, in-app messages, health,
    metrics."""
    context = ApiContext(store, settings)
    routes = [
        *HealthRoutes(context).routes,
        *UnsubscribeRoutes(context).routes,
        *TrackingRoutes(context).routes,
        *BounceWebhookRoutes(context).routes,
        *InAppRoutes(context).routes,
        *MetricsRoutes(context).routes,
        *EventRoutes(context).routes,
    ]
    return Starlette(
        routes=routes,
        middleware=[
            # Outside the limit, so a 413 is logged as what the client got.
            Middleware(AccessLog),
            Middleware(BodyLimit, max_bytes=settings.api.max_body_bytes, respond=_error_response),
        ],
        exception_handlers={HTTPException: _error_response},
    )


async def _error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith(_MACHINE_PATHS):
        return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)
    title = _PAGE_TITLES.get(exc.status_code, "Something went wrong")
    return html_response(page(title, exc.detail), exc.status_code, exc.headers)
