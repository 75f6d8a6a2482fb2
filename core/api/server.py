"""Serving the API with uvicorn inside a process that does other work (the delivery worker).

The server runs in the caller's event loop until its task is cancelled,
then closes its socket and connections. It installs no signal handlers
(the host process owns its signals) and leaves logging as the host set it
up; uvicorn's access log is off, because it would print link tokens (see
:mod:`core.api.access_log` for the line logged instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

from core.api.app import create_app
from core.db import Store
from core.errors import CadenceError
from core.settings import Settings

logger = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_SECONDS = 5
"""How long requests in flight may take to finish once the server is told to stop."""


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its host and reports when it listens."""

    def __init__(self, config: uvicorn.Config, address: str, started: asyncio.Event | None) -> None:
        super().__init__(config)
        self._address = address
        self._started_event = started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            logger.info("HTTP API listening on %s", self._address)
            if self._started_event is not None:
                self._started_event.set()


async def serve_api(
    store: Store, settings: Settings, *, started: asyncio.Event | None = None
) -> None:
    """Serve the API on ``api.host``:``api.port`` until cancelled; ``started`` is set once
    it listens. A port that cannot be had raises :class:`CadenceError` at once."""
    api = settings.api
    listener = _listen(api.host, api.port)
    config = uvicorn.Config(
        create_app(store, settings),
        access_log=False,
        log_config=None,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = _EmbeddedServer(config, f"http://{api.host}:{api.port}", started)
    serving = asyncio.ensure_future(server.serve(sockets=[listener]))
    try:
        await asyncio.shield(serving)
    except asyncio.CancelledError:
        server.should_exit = True
        await serving
        raise
    finally:
        listener.close()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise CadenceError(
            f"the HTTP API cannot listen on {host}:{port} ({exc.strerror or exc}); "
            "stop what uses that port or set api.host / api.port"
        ) from None
