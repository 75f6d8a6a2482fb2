"""What became of each targeted customer in a campaign run: exactly one outcome each."""

from __future__ import annotations

from enum import IntEnum


class Outcome(IntEnum):
    """A targeted customer's outcome in a run. The numbers are stored in scratch tables only;
    runs record outcomes by :attr:`key`."""

    QUEUED = 0
    """An outbox row, due now."""
    HELD = 1
    """An outbox row held by quiet hours until the customer's window opens."""
    CONTROL = 2
    """In the campaign's control group: a control row, never sent."""
    NO_ADDRESS = 10
    """No address for the channel (no e-mail, no phone)."""
    SUPPRESSED = 11
    """The address hard-bounced, complained or was erased."""
    UNSUBSCRIBED = 12
    """The customer unsubscribed from marketing on this channel."""
    NO_CONSENT = 13
    """No consent to marketing on this channel."""
    COOLDOWN = 14
    """This campaign reached the customer within its cooldown."""
    CAPPED = 15
    """The customer already had as many marketing messages as the caps allow."""
    LOST = 16
    """A higher-priority campaign in the same tick took the customer's last slot."""

    @property
    def key(self) -> str:
        return self.name.lower()

    @property
    def sends(self) -> bool:
        """Whether the outcome writes an outbox row that will be delivered."""
        return self in (Outcome.QUEUED, Outcome.HELD)

    @property
    def planned(self) -> bool:
        """Whether the outcome writes an outbox row (a message or a control row)."""
        return self.sends or self is Outcome.CONTROL


EXCLUSIONS = tuple(outcome for outcome in Outcome if not outcome.planned)
"""The outcomes that exclude a customer from a run, in the order the policy checks them."""
