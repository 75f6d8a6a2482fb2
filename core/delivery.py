"""Delivery workers: take messages from the outbox, render them, send them, record it.

One worker serves every channel it is given, each in its own loop: claim a
batch (see :mod:`core.outbox`), read what the templates need for the whole
batch in one query, render each message, hand the batch to the channel and
record the outcomes in one transaction. Two batches per channel are in
flight at once, so the store's work on one overlaps the network's on the
other.

Between planning and sending a customer may have unsubscribed or bounced:
every claimed message is checked again against consent and suppressions and
cancelled with the reason. A template that fails for one customer fails that
one message. Retries back off exponentially with jitter, honouring the
server's "try again in N seconds", until ``delivery.max_attempts``; then the
message fails. A hard bounce suppresses the address.

A database that is away (PostgreSQL stopped or cut off, SQLite locked by
another process) is waited out, not a reason to stop: claims pause with a
growing backoff, and what the batches in flight read and record is tried
again until it gets through (see :mod:`core.db.outage`), so a message the
server accepted during the outage is recorded once the database is back.
Should the worker die first, its leases run out and the message goes again
with the same Message-ID. A stop asked for during an outage therefore waits
for the database to record the batches in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import Channel, OutgoingMessage, SendOutcome
from channels.limits import TokenBucket
from core import clock
from core.db import Store
from core.db.dialect import serialize_writers
from core.db.direct import DirectConnection
from core.db.outage import Outage, backoff, database_away, sleep_unless, until_back
from core.intel.recommendations import recommendations_for
from core.links import link_key
from core.message_ids import message_id_domain
from core.metrics import SENDS
from core.models import Campaign, Customer, CustomerScore, CustomerStage
from core.outbox import (
    ClaimedMessage,
    Retry,
    Settled,
    claim_messages,
    oldest_sent_since,
    record_retries,
    record_sent,
    record_settled,
    release_leases,
    renew_leases,
    sent_since,
)
from core.policy.channels import blocking_status, channel_rule, channel_status
from core.rendering import CustomerFacts, MessageRenderer, RendererSetup, RenderJob
from core.rollups import note_messages_sent
from core.settings import ChannelLimits, DeliverySettings, Settings
from core.suppressions import HARD_BOUNCE, suppress_addresses
from core.templates import Templates

logger = logging.getLogger(__name__)

_HOUR = timedelta(hours=1)
_IN_FLIGHT_BATCHES = 2
_RECOMMENDATIONS = 10
_RENDER_SLICE = 16
"""Messages rendered between two turns of the event loop."""
_SCORE_FIELDS = (
    "rfm_score",
    "engagement_score",
    "lead_score",
    "purchases_90d",
    "revenue_365d",
    "clv_12m",
    "p_alive",
)


@dataclass
class DeliveryStats:
    """What a worker did, per outcome."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    cancelled: int = 0
    batches: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    """Messages sent, per channel."""
    rss_mb_growth: float = 0.0
    """How much the resident memory of the process(es) grew while delivering."""

    def add(self, other: DeliveryStats) -> None:
        """Count ``other``'s work (another process's) in with this one's."""
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed
        self.cancelled += other.cancelled
        self.batches += other.batches
        self.rss_mb_growth += other.rss_mb_growth
        for channel, sent in other.by_channel.items():
            self.by_channel[channel] = self.by_channel.get(channel, 0) + sent


def retry_delay(
    attempts: int, hint: float | None, settings: DeliverySettings, rng: random.Random
) -> float:
    """Seconds before attempt ``attempts + 1``: exponential from ``retry_base_seconds``
    with +-20% jitter (so retries of one outage do not all return at once), never less
    than the server's hint, never more than ``retry_max_seconds`` (unless the hint says so)."""
    backoff: float = settings.retry_base_seconds * 2.0 ** max(attempts - 1, 0)
    delay = min(backoff, settings.retry_max_seconds) * rng.uniform(0.8, 1.2)
    return max(delay, hint or 0.0)


def worker_name() -> str:
    """A name for this worker's leases: host, process and a random part, unique per start."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class DeliveryWorker:
    """Sends the outbox's messages over the given channels until stopped (or idle)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        channels: Mapping[str, Channel],
        templates: Templates,
        *,
        owner: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.channels = dict(channels)
        self.templates = templates
        self.owner = owner or worker_name()
        self.stats = DeliveryStats()
        self._rng = rng or random.Random()
        self._renderer: MessageRenderer | None = None
        self._outage = Outage(logger, "delivery")
        self._recorder = _SentRecorder(store, self.owner, self._outage)
        self._campaigns: dict[int, str] = {}
        self._buckets = {
            name: TokenBucket(limits.rate_per_second, limits.burst)
            for name in self.channels
            if (limits := self._limits(name)).rate_per_second is not None
        }

    def _limits(self, channel: str) -> ChannelLimits:
        limits: ChannelLimits = getattr(self.settings.channels, channel)
        return limits

    async def run(
        self, *, until_idle: bool = False, stop: asyncio.Event | None = None
    ) -> DeliveryStats:
        """Deliver until ``stop`` is set or, with ``until_idle``, until no channel has a
        message it may send now. Leases still held at the end are given back."""
        stop = stop or asyncio.Event()
        for channel in self.channels.values():
            await channel.open()
        renewing = asyncio.create_task(self._renew_leases())
        try:
            # One channel's loop failing (a fault other than the database being away)
            # stops the others too.
            async with asyncio.TaskGroup() as loops:
                for name in self.channels:
                    loops.create_task(self._channel_loop(name, until_idle, stop))
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            await self.close()
            await self._release_leases()
        return self.stats

    async def _release_leases(self) -> None:
        try:
            async with self.store.transaction() as session:
                await release_leases(session, self.owner, clock.now())
        except Exception as error:
            if not database_away(error):
                raise
            # Not worth waiting for at the end: the leases run out on their own.
            logger.warning(
                "database unavailable at the end of delivery; the messages still leased "
                "return to the queue when their leases run out",
                extra={"owner": self.owner},
            )

    async def close(self) -> None:
        """Close the channels and the worker's own connection (:meth:`run` does it too)."""
        for channel in self.channels.values():
            await channel.close()
        await self._recorder.close()

    async def _renew_leases(self) -> None:
        """Keep this worker's leases alive three times per lease, so only a dead worker's
        messages ever return to the queue."""
        lease = timedelta(seconds=self.settings.delivery.lease_seconds)

        async def renew() -> None:
            async with self.store.transaction() as session:
                await renew_leases(session, self.owner, clock.now(), lease)

        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            # Renewed the moment the database is back, before the leases run out if they
            # still can: else this worker's own claims would take its messages in flight.
            await until_back(renew, self._outage)

    async def _channel_loop(self, name: str, until_idle: bool, stop: asyncio.Event) -> None:
        in_flight: set[asyncio.Task[float | None]] = set()
        pause: float | None = None
        failures = 0
        while not stop.is_set():
            if len(in_flight) >= _IN_FLIGHT_BATCHES:
                pause = await _first_result(in_flight)
                if pause is not None:  # the channel is down: let the batches in flight end
                    await asyncio.gather(*in_flight)
                    in_flight.clear()
                    await sleep_unless(stop, pause)
                continue
            try:
                batch, wait = await self.claim(name)
            except Exception as error:
                if not database_away(error):
                    raise
                self._outage.lost(error)
                await sleep_unless(stop, backoff(failures))
                failures += 1
                continue
            self._outage.back()
            failures = 0
            if not batch:
                if in_flight:
                    pause = await _first_result(in_flight)
                    continue
                if until_idle:
                    break
                await sleep_unless(stop, wait or self.settings.delivery.idle_seconds)
                continue
            task = asyncio.create_task(self.deliver(name, batch))
            in_flight.add(task)
        if in_flight:
            await asyncio.gather(*in_flight)

    async def claim(self, name: str) -> tuple[list[ClaimedMessage], float | None]:
        """Claim the next batch of ``name``; an empty batch comes with how long the hourly
        limit wants us to wait, if that is why it is empty."""
        delivery = self.settings.delivery
        limits = self._limits(name)
        limit = delivery.batch_size
        bucket = self._buckets.get(name)
        if bucket is not None:
            limit = min(limit, limits.burst)
        now = clock.now()
        async with self.store.transaction() as session:
            if limits.max_per_hour is not None:
                # Several nodes must not each see room for the same messages.
                await serialize_writers(session, f"delivery:{name}")
                room = limits.max_per_hour - await sent_since(session, name, now - _HOUR)
                if room <= 0:
                    oldest = await oldest_sent_since(session, name, now - _HOUR)
                    wait = (oldest + _HOUR - now).total_seconds() if oldest else None
                    return [], max(wait or delivery.idle_seconds, 0.05)
                limit = min(limit, room)
            batch = await claim_messages(
                session,
                channel=name,
                owner=self.owner,
                now=now,
                limit=limit,
                lease=timedelta(seconds=delivery.lease_seconds),
            )
        if batch and bucket is not None:
            await bucket.acquire(len(batch))
        return batch, None

    async def deliver(self, name: str, batch: Sequence[ClaimedMessage]) -> float | None:
        """Render, send and record one claimed batch. Returns how long to leave the channel
        alone when it could not send anything at all (the server is down), else None.

        Each sent message is recorded as soon as the server accepted it (in small group
        commits, see :class:`_SentRecorder`), before its connection sends another, so a
        crash repeats at most one message per connection. The other outcomes are
        recorded together at the end of the batch.
        """
        ready, settled = await until_back(lambda: self.prepare(name, batch), self._outage)
        recorder = self._recorder

        async def report(outcome: SendOutcome) -> None:
            if outcome.status == "sent":
                await recorder.record(outcome.outbox_id)

        outcomes = await self.channels[name].send(ready, report) if ready else []
        pause = await self._record(name, batch, ready, outcomes, settled)
        self.stats.batches += 1
        return pause

    async def prepare(
        self, name: str, batch: Sequence[ClaimedMessage], now: datetime | None = None
    ) -> tuple[list[OutgoingMessage], list[Settled]]:
        """The batch's messages rendered for ``name``, and those that will not go out (the
        customer said no since planning, or the template failed for them). ``now`` (the
        clock's by default) dates the signed links: the console renders a sent message
        again as of its ``sent_at``, so its links are the ones that went out."""
        now = now or clock.now()
        renderer = self._renderer or await self._start_rendering(now)
        async with self.store.reading() as session:
            facts = await self._facts(session, name, batch)
            recommendations = await recommendations_for(
                session, [message.customer_id for message in batch], _RECOMMENDATIONS
            )
            await self._learn_campaigns(session, batch)
        job = RenderJob(name, facts, recommendations, dict(self._campaigns), now)
        ready: list[OutgoingMessage] = []
        settled: list[Settled] = []
        for index, message in enumerate(batch):
            if index and index % _RENDER_SLICE == 0:
                # A whole batch rendered in one go held the event loop for a tenth of a
                # second (500 messages): every connection's next SMTP command waited.
                await asyncio.sleep(0)
            prepared = renderer.render(job, message)
            if isinstance(prepared, Settled):
                settled.append(prepared)
            else:
                ready.append(prepared)
        return ready, settled

    async def _start_rendering(self, now: datetime) -> MessageRenderer:
        async with self.store.transaction() as session:
            key = await link_key(session, self.settings, now)
        settings = self.settings
        setup = RendererSetup(
            templates=self.templates,
            link_key=key,
            public_url=settings.api.public_url,
            link_ttl=timedelta(days=settings.api.link_ttl_days),
            brand=settings.templates.brand,
            message_id_domain=message_id_domain(settings.channels.email),
            unsubscribe_mailto=settings.channels.email.unsubscribe_mailto,
        )
        self._renderer = MessageRenderer(setup)
        return self._renderer

    async def _facts(
        self, session: AsyncSession, channel: str, batch: Sequence[ClaimedMessage]
    ) -> dict[int, CustomerFacts]:
        customers = Customer.__table__.c
        scores = CustomerScore.__table__.c
        status = channel_status(channel)
        address = channel_rule(channel).address
        query = (
            select(
                customers.id,
                customers.external_id,
                customers.email,
                customers.phone,
                customers.name,
                customers.locale,
                customers.time_zone,
                customers.birthday,
                customers.registered_at,
                customers.attributes,
                CustomerStage.__table__.c.stage,
                *(scores[name] for name in _SCORE_FIELDS),
                blocking_status(status, marketing=True),
                blocking_status(status, marketing=False),
            )
            .select_from(Customer.__table__)
            .outerjoin(
                CustomerStage.__table__, CustomerStage.__table__.c.customer_id == customers.id
            )
            .outerjoin(CustomerScore.__table__, scores.customer_id == customers.id)
            .where(customers.id.in_({message.customer_id for message in batch}))
        )
        facts: dict[int, CustomerFacts] = {}
        for row in (await session.execute(query)).all():
            (
                row_id,
                external_id,
                email,
                phone,
                name,
                locale,
                zone,
                birthday,
                registered_at,
                attributes,
                stage,
                *rest,
            ) = row
            score_values, (marketing_block, transactional_block) = rest[:-2], rest[-2:]
            customer = {
                "id": external_id,
                "email": email,
                "phone": phone,
                "name": name,
                "locale": locale,
                "time_zone": zone,
                "birthday": birthday.isoformat() if isinstance(birthday, date) else None,
                "registered_at": registered_at.isoformat() if registered_at else None,
                "attributes": dict(attributes or {}),
            }
            facts[row_id] = CustomerFacts(
                customer=customer,
                address={"email": email, "file": email, "sms": phone}.get(channel)
                if address is not None
                else None,
                stage=stage,
                scores=dict(zip(_SCORE_FIELDS, score_values, strict=True)),
                blocked_marketing=marketing_block,
                blocked_transactional=transactional_block,
            )
        return facts

    async def _learn_campaigns(
        self, session: AsyncSession, batch: Sequence[ClaimedMessage]
    ) -> None:
        if all(message.campaign_id in self._campaigns for message in batch):
            return
        rows = await session.execute(select(Campaign.id, Campaign.name))
        self._campaigns = {row_id: name for row_id, name in rows.all()}

    async def _record(
        self,
        channel: str,
        batch: Sequence[ClaimedMessage],
        ready: Sequence[OutgoingMessage],
        outcomes: Sequence[SendOutcome],
        settled: list[Settled],
    ) -> float | None:
        """Record the batch's retries and failures (sends are recorded as they happen) and
        suppress hard-bounced addresses."""
        now = clock.now()
        delivery = self.settings.delivery
        attempts = {message.id: message.attempts for message in batch}
        addresses = {message.outbox_id: message.address for message in ready}
        customers = {message.outbox_id: message.customer_id for message in ready}
        sent: list[int] = []
        retries: list[Retry] = []
        bounced: list[str] = []
        delays: list[float] = []
        for outcome in outcomes:
            if outcome.status == "sent":
                sent.append(customers[outcome.outbox_id])
            elif outcome.status == "retry":
                tried = attempts[outcome.outbox_id]
                reason = outcome.reason or "temporary failure"
                if tried >= delivery.max_attempts:
                    reason = f"gave up after {tried} attempts: {reason}"
                    settled.append(Settled(outcome.outbox_id, "failed", reason))
                    continue
                delay = retry_delay(tried, outcome.retry_after, delivery, self._rng)
                delays.append(delay)
                retries.append(Retry(outcome.outbox_id, now + timedelta(seconds=delay), reason))
            else:
                settled.append(Settled(outcome.outbox_id, "failed", outcome.reason or "failed"))
                address = addresses.get(outcome.outbox_id)
                if outcome.suppress and address:
                    bounced.append(address)
        suppression = channel_rule(channel).suppression_channel

        async def write() -> None:
            # Every statement is safe to repeat after an outage: the updates are only for
            # rows this worker still holds, and suppressing an address twice is once.
            async with self.store.transaction() as session:
                # Not part of the sends' own commits: a crash loses at most a batch's worth
                # of "last messaged" times, never a message.
                await note_messages_sent(session, sent, now)
                await record_retries(session, self.owner, retries)
                await record_settled(session, self.owner, settled)
                if bounced and suppression is not None:
                    await suppress_addresses(
                        session, suppression, bounced, HARD_BOUNCE, "delivery", now
                    )

        await until_back(write, self._outage)
        self._count(channel, len(sent), retries, settled)
        if outcomes and not sent and len(retries) == len(outcomes):
            return min(delays)
        return None

    def _count(
        self, channel: str, sent: int, retries: Sequence[Retry], settled: Sequence[Settled]
    ) -> None:
        stats = self.stats
        stats.sent += sent
        stats.by_channel[channel] = stats.by_channel.get(channel, 0) + sent
        stats.retried += len(retries)
        cancelled = sum(item.state == "cancelled" for item in settled)
        stats.cancelled += cancelled
        stats.failed += len(settled) - cancelled
        for outcome, count in (
            ("sent", sent),
            ("retry", len(retries)),
            ("cancelled", cancelled),
            ("failed", len(settled) - cancelled),
        ):
            if count:
                SENDS.labels(channel=channel, outcome=outcome).inc(count)


class _SentRecorder:
    """Records sent messages in small group commits while the channels keep sending.

    A connection whose message the server accepted waits here until the store says so
    too; every connection waiting at the same moment shares one commit, so the cost is
    one transaction per handful of messages, not per message. While the database is
    away the commit is tried again (with the sends that arrive meanwhile) until it
    gets through: a send the server accepted is never forgotten.
    """

    def __init__(self, store: Store, owner: str, outage: Outage) -> None:
        self.owner = owner
        self._outage = outage
        self._connection = DirectConnection(store)
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def record(self, outbox_id: int) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._commit_forever())
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((outbox_id, done))
        self._wakeup.set()
        await done

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._connection.close()

    async def _commit_forever(self) -> None:
        failures = 0
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            waiting, self._waiting = self._waiting, []
            try:
                ids = [outbox_id for outbox_id, _ in waiting]
                await record_sent(self._connection, self.owner, ids, clock.now())
            except Exception as error:
                if database_away(error):
                    self._outage.lost(error)
                    self._waiting[:0] = waiting  # first in the next commit
                    await asyncio.sleep(backoff(failures))
                    failures += 1
                    self._wakeup.set()
                    continue
                for _, done in waiting:  # every waiting connection learns of it
                    done.set_exception(error)
            else:
                self._outage.back()
                failures = 0
                for _, done in waiting:
                    done.set_result(None)


async def _first_result(tasks: set[asyncio.Task[float | None]]) -> float | None:
    """Wait for the first of ``tasks`` to finish, drop it, and return its result."""
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    tasks.difference_update(done)
    pauses = [pause for task in done if (pause := task.result()) is not None]
    return min(pauses) if pauses else None
