"""Triggered campaigns: event triggers fired as events arrive, date triggers once a day.

:func:`fire_event_triggers` matches a batch of events (by id, or a time window)
against every active triggered campaign with one statement per trigger;
:func:`fire_date_triggers` sends birthday and first-purchase-anniversary
messages at the campaign's local time in each customer's own time zone. Both
plan through the planner, so caps, quiet hours, consent and suppressions
apply (transactional messages are exempt from the caps), and both key their
runs so that firing the same events or the same day again sends nothing new.
"""

from core.triggers.dates import fire_date_triggers, fire_date_triggers_in
from core.triggers.events import EventWindow, fire_event_triggers, fire_event_triggers_in

__all__ = [
    "EventWindow",
    "fire_date_triggers",
    "fire_date_triggers_in",
    "fire_event_triggers",
    "fire_event_triggers_in",
]
