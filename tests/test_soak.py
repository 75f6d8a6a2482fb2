"""``cadence bench soak`` as an operator runs it, shortened to 10 seconds, on both
databases: a real ``cadence run`` takes purchases over HTTP while a cycle campaign runs,
mail goes to a local SMTP sink, and the JSON line says nothing went wrong.

The full soak (``--minutes 5``) is the measurement of RELIABILITY.md's scenario 20; this
checks that the command works and counts right, not the targets, which depend on how busy
the machine is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import make_url

from tests.test_cli import Cli

MINUTES = 0.17
"""Ten seconds: past the five-second warm-up, so the memory figures are taken as in a
long soak, and the cycle's first run, which the node plans at its first tick."""
RATE = 10
CYCLE_CUSTOMERS = 100


def test_a_short_soak_reports_its_figures_and_no_error(
    database_url: str, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    # On SQLite the soak makes its own file; a PostgreSQL database is given to it (emptied).
    on_postgresql = make_url(database_url).get_backend_name() == "postgresql"
    given = ["--database-url", database_url] if on_postgresql else []
    result = Cli(tmp_path, tmp_path / "unused.db")(
        "bench",
        "soak",
        "--minutes",
        str(MINUTES),
        "--rate",
        str(RATE),
        "--cycle-customers",
        str(CYCLE_CUSTOMERS),
        *given,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    (line,) = result.stdout.splitlines()
    soak = json.loads(line)
    for name, value in soak.items():
        record_property(name, value)

    assert soak["database"] == ("postgresql" if on_postgresql else "sqlite")
    assert soak["errors"] == 0 and set(soak["error_kinds"].values()) == {0}, soak
    events = round(RATE * MINUTES * 60)
    assert soak["events"] == soak["receipts"] == events
    # The cycle's latest slot is due at the node's first tick; a minute may pass meanwhile.
    assert soak["cycle_runs"] >= 1
    assert soak["cycle_messages"] == soak["cycle_runs"] * CYCLE_CUSTOMERS
    assert soak["messages"] == soak["receipts"] + soak["cycle_messages"]  # at the sink
    assert 0 < soak["rss_mb_start"] <= soak["rss_mb_peak"]
    assert soak["rss_mb_end"] <= soak["rss_mb_peak"]
    expected_growth = round((soak["rss_mb_end"] / soak["rss_mb_start"] - 1) * 100, 1)
    assert abs(soak["growth_pct"] - expected_growth) <= 0.2
    assert 0 < soak["p50_ms"] <= soak["p95_ms"] <= soak["p99_ms"] <= soak["max_ms"]
    assert soak["meets_target"] == (
        soak["growth_pct"] < soak["target_growth_pct"] and soak["p95_ms"] < soak["target_p95_ms"]
    )
