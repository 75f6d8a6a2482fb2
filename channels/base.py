"""The one protocol every delivery channel speaks.

A channel takes a batch of rendered messages and says, for each, what
happened: sent, try again after some seconds, or failed for good with a
reason. It never raises for a message's own trouble; a channel that cannot
reach its server at all answers "retry" for the whole batch. What to do next
(record, back off, suppress an address) is the delivery worker's business.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Status = Literal["sent", "retry", "failed"]


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One rendered message for one customer, ready for its channel.

    ``message_id`` derives from the outbox row, so a message sent twice (a
    crash between the server's "accepted" and the store's "sent") carries
    the same id both times and the duplicate can be recognised.
    """

    outbox_id: int
    message_id: str
    """An RFC 5322 Message-ID, angle brackets included."""
    customer_id: int
    customer_ref: str
    """The customer's id in the business's own systems (``customers.external_id``)."""
    address: str | None
    """E-mail address or phone number; None for channels that need none (webhook, in-app)."""
    name: str | None
    subject: str | None
    text: str
    html: str | None
    campaign: str
    variant: str
    category: Literal["marketing", "transactional"]
    unsubscribe_url: str | None = None
    """The HTTPS one-click unsubscribe link (RFC 8058) for marketing messages."""
    unsubscribe_mailto: str | None = None
    """A ``mailto:`` URI that unsubscribes by mail, for ``List-Unsubscribe``."""


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What became of one message."""

    outbox_id: int
    status: Status
    reason: str | None = None
    retry_after: float | None = None
    """For ``retry``: seconds the server asked us to wait, if it said (else the worker's
    backoff decides)."""
    suppress: bool = False
    """For ``failed``: the address itself is bad (a hard bounce) and must not be used again."""

    @classmethod
    def sent(cls, outbox_id: int) -> SendOutcome:
        return cls(outbox_id, "sent")

    @classmethod
    def retry(cls, outbox_id: int, reason: str, after: float | None = None) -> SendOutcome:
        return cls(outbox_id, "retry", reason, after)

    @classmethod
    def failed(cls, outbox_id: int, reason: str, *, suppress: bool = False) -> SendOutcome:
        return cls(outbox_id, "failed", reason, suppress=suppress)


Report = Callable[[SendOutcome], Awaitable[None]]
"""Takes one outcome as soon as it is known (the delivery worker records it durably)."""


class Channel(Protocol):
    """A way to reach customers: e-mail, SMS, a webhook, the product itself, a file."""

    name: str

    async def open(self) -> None:
        """Connect (or create the file); called once before the first batch."""

    async def send(
        self, batch: Sequence[OutgoingMessage], report: Report | None = None
    ) -> list[SendOutcome]:
        """Deliver ``batch``; one outcome per message, in any order.

        With ``report``, each outcome is also handed to it as soon as it is known, and
        whatever sent that message (a connection, a request slot) waits for ``report``
        to return before it sends another. The worker records the outcome there, so a
        crash can repeat at most one message per connection: the one the server had
        accepted when the record was not yet written.
        """

    async def close(self) -> None:
        """Finish what is in flight and let go of connections and files."""
