"""``GET /metrics``: the node's counters and the outbox's queue depth, for Prometheus."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.api.context import RouteGroup
from core.metrics import QUEUE_DEPTH
from core.models import OutboxMessage

_WAITING = ("queued", "retry", "sending")


class MetricsRoutes(RouteGroup):
    """Prometheus's text format; the queue depth is counted at each scrape."""

    @property
    def routes(self) -> list[Route]:
        return [Route("/metrics", self.metrics, methods=["GET"])]

    async def metrics(self, request: Request) -> Response:
        outbox = OutboxMessage.__table__.c
        async with self._context.store.reading() as session:
            # The (state, next_attempt_at) index keeps this to the waiting rows.
            rows = await session.execute(
                select(outbox.channel, outbox.state, func.count())
                .where(outbox.state.in_(_WAITING))
                .group_by(outbox.channel, outbox.state)
            )
            counts = {(channel, state): count for channel, state, count in rows.all()}
        QUEUE_DEPTH.clear()
        for (channel, state), count in counts.items():
            QUEUE_DEPTH.labels(channel=channel, state=state).set(count)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
