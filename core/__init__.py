"""Cadence's engine: the store, the program, the planner, delivery and measurement.

Nothing in ``core`` knows about the terminal UI or about a particular
delivery channel; the console and the channels depend on it, never the
other way round.
"""

__version__ = "0.1.0"
