"""What every route of the HTTP API shares: the store, the settings, the link signer and
the reading of request bodies."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from core import clock
from core.db import Store
from core.links import LinkClaims, LinkError, LinkExpiredError, LinkKind, LinkSigner, link_signer
from core.settings import Settings


@dataclass
class ApiContext:
    """The store and settings the routes serve, and the link signer once it is known."""

    store: Store
    settings: Settings
    _signer: LinkSigner | None = field(default=None, init=False)

    async def signer(self) -> LinkSigner:
        """The link signer. Its key is read from the store once: it never changes after
        the first node created it."""
        if self._signer is None:
            async with self.store.transaction() as session:
                self._signer = await link_signer(session, self.settings, clock.now())
        return self._signer

    async def verify(self, token: str, kind: LinkKind) -> LinkClaims:
        """The claims of a genuine ``kind`` link token; 410 when it expired, 400 otherwise."""
        signer = await self.signer()
        try:
            return signer.verify(token, kind, clock.now())
        except LinkExpiredError as exc:
            raise HTTPException(410, str(exc)) from None
        except LinkError as exc:
            raise HTTPException(400, str(exc)) from None


class RouteGroup(ABC):
    """Some routes of the API and the endpoints behind them."""

    def __init__(self, context: ApiContext) -> None:
        self._context = context

    @property
    @abstractmethod
    def routes(self) -> list[Route]: ...


async def read_json(request: Request) -> Any:
    """The request's body as JSON; 400 with what is wrong when it is not JSON. The body's
    size is limited by the app (``api.max_body_bytes``)."""
    body = await request.body()
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise HTTPException(400, "the body is not UTF-8 encoded JSON") from None
    except json.JSONDecodeError as exc:
        raise HTTPException(
            400, f"the body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise HTTPException(400, "the body's JSON is nested too deeply") from None
