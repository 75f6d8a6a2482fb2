"""Journeys: multi-step flows per customer, defined in the program files, advanced in ticks.

A journey (``journeys.toml``, see :class:`core.program.model.JourneySpec`)
starts a *pass* for a customer on an event, a segment entry or a stage
entry; the pass goes through ``send``, ``wait``, ``wait_until`` and
``branch`` steps until it completes, exits at an ``exit`` step, or ends early
on the journey's exit goal. The state of each (journey, customer) is a
``journey_states`` row; :func:`advance_journeys` moves all of them at once,
and plans every journey message through the planner and its contact policy.
"""

from core.journeys.store import JourneyError
from core.journeys.tick import JourneyTick, advance_journeys

__all__ = ["JourneyError", "JourneyTick", "advance_journeys"]
