"""A real local HTTP server for tests of the HTTP channels (SMS gateway, webhook receiver).

Import the fixture into a test module (``from tests.http_receiver import receiver``) and
take ``receiver``: a started :class:`Receiver` that keeps every request POSTed to its
``url`` and answers as its ``answer`` says, stopped after the test.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass(frozen=True)
class Received:
    """One request as the receiver took it in."""

    headers: dict[str, str]
    body: bytes

    def fields(self) -> dict[str, Any]:
        """The body's fields, whether it was JSON or a form."""
        if self.headers["content-type"] == "application/json":
            decoded: dict[str, Any] = json.loads(self.body)
            return decoded
        return dict(parse_qsl(self.body.decode()))


@dataclass(frozen=True)
class Answer:
    """How the receiver answers a request: status, body, headers, after a delay."""

    status: int = 200
    text: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class Receiver:
    """A local HTTP server standing in for the SMS gateway or the webhook's receiver: it
    keeps every request and answers as ``answer`` says."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answer: Callable[[Received], Answer] = lambda _: Answer()
        self.in_flight = 0
        self.most_in_flight = 0
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def _endpoint(self, request: Request) -> Response:
        received = Received(dict(request.headers), await request.body())
        self.received.append(received)
        answer = self.answer(received)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(answer.delay)
        finally:
            self.in_flight -= 1
        return Response(answer.text, answer.status, answer.headers)

    async def start(self) -> None:
        app = Starlette(routes=[Route("/send", self._endpoint, methods=["POST"])])
        # A socket listening before uvicorn starts: requests wait in its backlog meanwhile.
        listening = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{listening.getsockname()[1]}/send"
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[listening]))

    async def stop(self) -> None:
        assert self._server is not None and self._task is not None
        self._server.should_exit = True
        await self._task


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A started receiver on a free loopback port."""
    server = Receiver()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
