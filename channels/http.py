"""What the SMS and webhook channels share: one HTTP client, POSTs side by side, and what
an HTTP answer means for a message.

2xx is sent. 429 (too many requests) and 5xx are the receiver's temporary
trouble: try again, after ``Retry-After`` when it says. Any other status is
a refusal of this message: failed, with what the receiver said. A request
that got no answer (refused, reset, timed out) is tried again.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import httpx

from channels.base import SendOutcome
from channels.outcomes import Outcomes, error_text
from core import clock

_REASON_CHARS = 300
"""How much of a refusal's body is kept as the reason."""
_TOO_MANY_REQUESTS = 429
_SECONDS = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True, slots=True)
class HttpPost:
    """One message as an HTTP request: the exact body bytes (a signature covers them)."""

    outbox_id: int
    content: bytes
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - clock.now()).total_seconds())


def response_outcome(outbox_id: int, response: httpx.Response) -> SendOutcome:
    """The outcome of a message the receiver answered with ``response``."""
    status = response.status_code
    if 200 <= status < 300:
        return SendOutcome.sent(outbox_id)
    said = " ".join(response.text[:_REASON_CHARS].split())
    reason = f"HTTP {status} {response.reason_phrase}" + (f": {said}" if said else "")
    if status == _TOO_MANY_REQUESTS or status >= 500:
        return SendOutcome.retry(
            outbox_id, reason, retry_after(response.headers.get("Retry-After"))
        )
    return SendOutcome.failed(outbox_id, reason)


class HttpPoster:
    """An ``httpx.AsyncClient`` kept for the channel's life, with at most ``concurrency``
    requests in flight."""

    def __init__(
        self,
        timeout_seconds: float,
        concurrency: int,
        *,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._timeout = timeout_seconds
        self._concurrency = concurrency
        self._auth = auth
        self._headers = dict(headers or {})
        self._client: httpx.AsyncClient | None = None

    def open(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout,
                auth=self._auth,
                headers=self._headers,
                limits=httpx.Limits(max_connections=self._concurrency),
            )

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def post_all(self, url: str, posts: Sequence[HttpPost], outcomes: Outcomes) -> None:
        """POST every request to ``url``, ``concurrency`` at a time, adding each outcome
        to ``outcomes`` before its slot takes the next request."""
        self.open()
        assert self._client is not None
        client = self._client
        slots = asyncio.Semaphore(self._concurrency)

        async def post(request: HttpPost) -> None:
            async with slots:
                await outcomes.add(await self._outcome(client, url, request))

        await asyncio.gather(*(post(request) for request in posts))

    @staticmethod
    async def _outcome(client: httpx.AsyncClient, url: str, request: HttpPost) -> SendOutcome:
        try:
            response = await client.post(
                url,
                content=request.content,
                headers={"Content-Type": request.content_type, **request.headers},
            )
        except httpx.TimeoutException as exc:
            return SendOutcome.retry(request.outbox_id, f"no answer from {url}: {error_text(exc)}")
        except httpx.TransportError as exc:
            return SendOutcome.retry(request.outbox_id, f"cannot reach {url}: {error_text(exc)}")
        return response_outcome(request.outbox_id, response)
