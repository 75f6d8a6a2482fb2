"""The contact policy: who may be sent what, and when, whatever the campaign.

One place decides, for every run of every kind of campaign:

- **suppression**: an address that hard-bounced, complained or was erased is
  never sent anything on its channel; an unsubscribed one gets no marketing;
- **consent**: marketing needs the customer's consent for the channel
  (never asked counts as no);
- **cooldown**: the same campaign reaches a customer at most once per its
  cooldown (per campaign, in the program files);
- **caps**: at most ``max_per_day`` marketing messages in any 24 hours and
  ``max_per_week`` in any 7 days, across all campaigns and channels; when
  campaigns compete in one planning tick, the higher priority wins and equal
  priorities go by campaign name;
- **quiet hours**: marketing due inside the customer's quiet hours (in their
  own time zone) is held until the window opens, never dropped.

Transactional messages skip consent, unsubscribes, caps and quiet hours, but
never hard suppression. :mod:`core.planner` applies all of this set-based;
this package holds the rules' data: the outcomes, the channels' addresses and
consents (:mod:`core.policy.channels`), and the quiet-hours clock; the limits
are :class:`core.settings.PolicySettings`.
"""

# The settings import this package, so it must not import the models (channels does).
from core.policy.outcomes import Outcome
from core.policy.quiet_hours import QuietHours, parse_quiet_hours

__all__ = ["Outcome", "QuietHours", "parse_quiet_hours"]
