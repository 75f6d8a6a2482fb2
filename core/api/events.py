"""``POST /v1/events``: real-time ingest. A batch of events in, each checked on its own,
the valid ones stored and their triggers fired before the answer goes out (with the
requests that arrived meanwhile: :class:`~core.ingest.live.GroupCommit`).

The body is ``{"events": [...]}`` (or the bare array), at most
``ingest.max_batch_events`` events. The answer is 200 when every event was
accepted (stored now, or stored before: a repeat changes nothing), 207 when
some were refused, 422 when all were; each refused event comes back with its
index, a 4xx status and the reason.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core import clock
from core.api.auth import require_ingest_token
from core.api.context import ApiContext, RouteGroup, read_json
from core.errors import ConfigError
from core.ingest.live import GroupCommit
from core.ingest.source import Rejected, Row
from core.program import Program, load_program

SOURCE = "api"
"""``Event.source`` of events that came in over HTTP without a source of their own."""


class EventRoutes(RouteGroup):
    """``POST /v1/events``."""

    _program: Program | None = None

    def __init__(self, context: ApiContext) -> None:
        super().__init__(context)
        self._group = GroupCommit(context.store, context.settings, self.program, source=SOURCE)

    @property
    def routes(self) -> list[Route]:
        return [Route("/v1/events", self.post, methods=["POST"])]

    async def post(self, request: Request) -> Response:
        settings = self._context.settings
        require_ingest_token(request, settings.api)
        body = await read_json(request)
        events = body.get("events") if isinstance(body, dict) else body
        if not isinstance(events, list):
            raise HTTPException(400, 'send {"events": [...]}: a JSON array of event objects')
        limit = settings.ingest.max_batch_events
        if len(events) > limit:
            raise HTTPException(
                413, f"a batch holds at most {limit} events, this one {len(events)}: split it"
            )
        items = [
            Row(index, event, "")
            if isinstance(event, dict)
            else Rejected(index, "an event must be a JSON object", "")
            for index, event in enumerate(events)
        ]
        self.program()  # a program with problems fails the request before it queues
        report = await self._group.ingest(items, clock.now())
        status = 200 if not report.refused else 207 if len(report.refused) < len(items) else 422
        return JSONResponse(report.as_dict(), status)

    def program(self) -> Program:
        """The program whose params the trigger rules read, loaded on first use."""
        if self._program is None:
            settings = self._context.settings
            try:
                self._program = load_program(settings.resolve(settings.program_dir))
            except ConfigError as error:
                raise HTTPException(
                    503, f"the program files have problems; run `cadence program validate`: {error}"
                ) from None
        return self._program
