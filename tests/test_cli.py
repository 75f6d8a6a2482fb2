"""The ``cadence`` command, run as a user runs it: the installed console script in a subprocess.

Each test works in its own folder with ``CADENCE_DATABASE_URL`` pointing at a
SQLite file there, so nothing leaks between tests or into the checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from config import DEFAULT_CONFIG_DIR
from tests.helpers import CADENCE

NOW = "2026-11-23T12:00:00+00:00"


@dataclass
class Cli:
    """Runs ``cadence`` in ``cwd`` against the SQLite file ``database``."""

    cwd: Path
    database: Path

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CADENCE_")}
        env.update(
            CADENCE_DATABASE_URL=f"sqlite+aiosqlite:///{self.database}",
            NO_COLOR="1",
            TERM="dumb",
        )
        return env

    def __call__(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CADENCE), *args],
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start ``cadence`` without waiting, to run independent commands side by side."""
        return subprocess.Popen(
            [str(CADENCE), *args],
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self(*args, stdin=stdin)
        assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr
        return result.stdout


def collect(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    """Wait for a started ``cadence``."""
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def finish(process: subprocess.Popen[str]) -> str:
    """Wait for a started ``cadence`` and return its output; it must have succeeded."""
    result = collect(process)
    assert result.returncode == 0, f"{result.args}: {result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    work = tmp_path / "work"
    work.mkdir()
    yield Cli(work, tmp_path / "cadence.db")


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store migrated once by ``cadence db upgrade``; tests copy it instead of migrating."""
    folder = tmp_path_factory.mktemp("cli-template")
    Cli(folder, folder / "template.db").ok("db", "upgrade", "--now", NOW)
    return folder / "template.db"


@pytest.fixture
def migrated(cli: Cli, migrated_template: Path) -> Cli:
    shutil.copy(migrated_template, cli.database)
    return cli


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def query(database: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(sql).fetchall()


def count(database: Path, table: str) -> int:
    (row,) = query(database, f"SELECT count(*) FROM {table}")  # noqa: S608 (fixed names)
    return int(str(row[0]))


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


# ---------------------------------------------------------------------- init


def test_init_writes_a_starter_configuration(cli: Cli) -> None:
    out = cli.ok("init", "starter", "--now", NOW)
    target = cli.cwd / "starter"
    assert "starter" in out
    assert (target / "cadence.toml").is_file()
    assert (target / "program" / "stages.toml").is_file()
    for part in ("html", "txt", "subject"):
        assert (target / "templates" / f"welcome.{part}.j2").is_file()
    assert not list(target.rglob("__init__.py"))
    assert not list(target.rglob("__pycache__"))
    shipped = sorted(
        p.relative_to(DEFAULT_CONFIG_DIR)
        for p in DEFAULT_CONFIG_DIR.rglob("*")
        if p.is_file() and p.suffix in (".toml", ".j2")
    )
    written = sorted(p.relative_to(target) for p in target.rglob("*") if p.is_file())
    assert written == shipped
    for relative in written:
        assert (target / relative).read_bytes() == (DEFAULT_CONFIG_DIR / relative).read_bytes()
    # The starter file is valid and is what --config then reads.
    shown = cli.ok("config", "show", "--config", str(target))
    assert shown.splitlines()[0] == f"# from {(target / 'cadence.toml').resolve()}"


def test_init_refuses_a_folder_that_is_not_empty_unless_forced(cli: Cli) -> None:
    target = cli.cwd / "existing"
    target.mkdir()
    write(target / "notes.txt", "keep me")
    refused = cli("init", str(target))
    assert_one_line_error(refused, str(target), "not empty", "--force")
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]

    cli.ok("init", str(target), "--force")
    assert (target / "cadence.toml").is_file()
    assert (target / "notes.txt").read_text() == "keep me"


def test_init_into_an_existing_empty_folder(cli: Cli) -> None:
    target = cli.cwd / "empty"
    target.mkdir()
    cli.ok("init", str(target))
    assert (target / "program" / "stages.toml").is_file()


# ------------------------------------------------------------------------ db


def test_db_upgrade_then_status(cli: Cli) -> None:
    before = cli.ok("db", "status")
    assert "Schema: empty" in before
    assert "cadence db upgrade" in before
    assert not cli.database.exists() or count(cli.database, "sqlite_master") == 0
    # Any other command on an empty store stops with what to run.
    assert_one_line_error(cli("campaign", "list"), "has no tables yet", "`cadence db upgrade`")

    upgraded = cli.ok("db", "upgrade")
    assert "Database at schema revision" in upgraded
    assert str(cli.database) in upgraded
    revision = upgraded.split("revision ")[1].split(":")[0]

    status = cli.ok("db", "status")
    assert f"Schema: {revision} (latest {revision})" in status
    assert "customers" in status
    tables = {name for (name,) in query(cli.database, "SELECT name FROM sqlite_master")}
    assert {"customers", "events", "customer_rollups", "suppressions", "audit_log"} <= tables

    again = cli.ok("db", "upgrade")  # upgrading an up-to-date store changes nothing
    assert f"revision {revision}" in again


# -------------------------------------------------------------------- import

CUSTOMERS_CSV = """\
customer_id,email,name,locale,time_zone,registered_at,consent_email,tier
c1,ana.silva@example.com,Ana Silva,pt-PT,Europe/Lisbon,2026-01-05T10:00:00Z,true,gold
c2,piotr@example.org,Piotr Nowak,pl-PL,Europe/Warsaw,2026-02-10,false,silver
c3,giulia@example.net,Giulia Rossi,it-IT,Europe/Rome,2026-03-15T08:30:00+01:00,true,
"""

EVENTS_JSONL = "".join(
    json.dumps(event) + "\n"
    for event in (
        {"customer_id": "c1", "type": "login", "occurred_at": "2026-11-01T09:00:00Z"},
        {
            "customer_id": "c1",
            "type": "purchase",
            "occurred_at": "2026-11-02T10:00:00Z",
            "value": 49.9,
            "properties": {"product_id": "slots-001"},
        },
        {"customer_id": "c2", "type": "page_view", "occurred_at": "2026-11-03T11:00:00Z"},
        {
            "customer_id": "c3",
            "type": "purchase",
            "occurred_at": "2026-11-04T12:00:00Z",
            "value": 10,
            "idempotency_key": "order-77",
        },
    )
)


def test_import_clean_files_exits_0_and_a_second_run_changes_nothing(migrated: Cli) -> None:
    cli = migrated
    customers = write(cli.cwd / "customers.csv", CUSTOMERS_CSV)
    events = write(cli.cwd / "events.jsonl", EVENTS_JSONL)

    out = cli.ok("import", "customers", customers.name, "--now", NOW)
    assert "rejected" in out
    assert count(cli.database, "customers") == 3
    out = cli.ok("import", "events", events.name, "--now", NOW)
    assert count(cli.database, "events") == 4
    assert not list(cli.cwd.glob("*.rejects.jsonl"))
    ((purchases, revenue),) = query(
        cli.database, "SELECT sum(purchase_count), sum(revenue_total) FROM customer_rollups"
    )
    assert purchases == 2
    assert float(str(revenue)) == pytest.approx(59.9)
    attributes = query(cli.database, "SELECT attributes FROM customers WHERE external_id = 'c1'")
    assert json.loads(str(attributes[0][0])) == {"tier": "gold"}

    snapshot = dump(cli.database)
    cli.ok("import", "customers", customers.name, "--now", NOW)
    cli.ok("import", "events", events.name, "--now", NOW)
    assert dump(cli.database) == snapshot


def test_import_with_rejected_rows_exits_3_and_writes_the_rejects_file(migrated: Cli) -> None:
    cli = migrated
    customers = write(
        cli.cwd / "customers.csv",
        "customer_id,email,name\n"
        "c1,ana@example.com,Ana\n"
        "c2,not-an-address,Bob\n"
        "c3,carla@example.com,Carla\n"
        "c4,dora@example.com\n",
    )
    result = cli("import", "customers", customers.name, "--now", NOW)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    rejects_path = cli.cwd / "customers.csv.rejects.jsonl"
    assert "customers.csv.rejects.jsonl" in result.stdout
    rejects = [json.loads(line) for line in rejects_path.read_text().splitlines()]
    assert [r["line"] for r in rejects] == [3, 5]
    assert "e-mail" in rejects[0]["reason"]
    assert "columns" in rejects[1]["reason"]
    # The good rows are in.
    stored = {
        external_id for (external_id,) in query(cli.database, "SELECT external_id FROM customers")
    }
    assert stored == {"c1", "c3"}

    events = write(
        cli.cwd / "events.jsonl",
        json.dumps({"customer_id": "c1", "type": "login", "occurred_at": "2026-11-01T09:00:00Z"})
        + "\n{not json\n"
        + json.dumps({"customer_id": "c1", "type": "login", "occurred_at": "yesterday"})
        + "\n",
    )
    custom_rejects = cli.cwd / "bad-events.jsonl"
    result = cli("import", "events", events.name, "--rejects", str(custom_rejects), "--now", NOW)
    assert result.returncode == 3, result.stdout + result.stderr
    rejects = [json.loads(line) for line in custom_rejects.read_text().splitlines()]
    assert [r["line"] for r in rejects] == [2, 3]
    assert all(r["reason"] for r in rejects)
    assert count(cli.database, "events") == 1


def test_import_maps_columns_and_reads_standard_input(migrated: Cli) -> None:
    cli = migrated
    crm = write(cli.cwd / "crm-export.csv", "cust_no,mail\nk1,k1@example.com\nk2,k2@example.com\n")
    cli.ok("import", "customers", crm.name, "--map", "customer_id=cust_no", "--map", "email=mail")
    assert query(cli.database, "SELECT external_id, email FROM customers ORDER BY 1") == [
        ("k1", "k1@example.com"),
        ("k2", "k2@example.com"),
    ]
    stdin = "".join(
        json.dumps({"customer_id": key, "type": "login", "occurred_at": "2026-11-20T08:00:00Z"})
        + "\n"
        for key in ("k1", "k2")
    )
    cli.ok("import", "events", "-", "--now", NOW, stdin=stdin)
    assert count(cli.database, "events") == 2

    bad_map = cli("import", "customers", crm.name, "--map", "customer_id")
    assert bad_map.returncode == 2
    assert "FIELD=COLUMN" in bad_map.stderr
    assert "Traceback" not in bad_map.stderr


def test_events_after_now_are_held_back(migrated: Cli) -> None:
    cli = migrated
    write(cli.cwd / "c.csv", "customer_id\nf1\n")
    cli.ok("import", "customers", "c.csv", "--now", NOW)
    write(
        cli.cwd / "e.csv",
        "customer_id,type,occurred_at,value\n"
        "f1,purchase,2026-11-01T00:00:00Z,10\n"
        "f1,purchase,2026-12-24T00:00:00Z,99\n",
    )
    out = cli.ok("import", "events", "e.csv", "--now", NOW)
    assert "dated after now" in out
    assert query(cli.database, "SELECT purchase_count FROM customer_rollups") == [(1,)]


# -------------------------------------------------------------------- errors


def test_a_missing_file_is_one_clear_error(migrated: Cli) -> None:
    result = migrated("import", "customers", "no-such-file.csv")
    assert_one_line_error(result, "no-such-file.csv")
    assert result.stdout == ""


def test_an_unknown_file_format_is_one_clear_error(migrated: Cli) -> None:
    write(migrated.cwd / "customers.xlsx", "customer_id\nc1\n")
    assert_one_line_error(migrated("import", "customers", "customers.xlsx"), "--format")


def test_a_missing_required_column_is_one_clear_error(migrated: Cli) -> None:
    write(migrated.cwd / "customers.csv", "email,name\na@example.com,A\n")
    assert_one_line_error(migrated("import", "customers", "customers.csv"), "customer_id")


def test_a_bad_now_is_one_clear_error(cli: Cli) -> None:
    assert_one_line_error(cli("db", "status", "--now", "next tuesday"), "next tuesday", "ISO 8601")


def test_a_bad_config_is_a_clear_error_without_traceback(cli: Cli) -> None:
    bad_toml = write(cli.cwd / "broken.toml", "[smtp\n")
    local = Cli(cli.cwd / "local", cli.database)
    local.cwd.mkdir()
    bad_value = write(local.cwd / "cadence.toml", '[imports]\nbatch_size = "lots"\n')
    started = [
        cli.start("db", "status", "--config", str(bad_toml)),
        local.start("db", "status"),  # ./cadence.toml is read without --config
        cli.start("db", "upgrade", "--config", str(cli.cwd / "nowhere")),
        cli.start("db", "status", env={"CADENCE_DATABASE_URL": "mysql://x@y/z"}),
    ]
    broken, invalid, missing, bad_url = (collect(process) for process in started)

    assert_one_line_error(broken, "broken.toml", "TOML", "line 1")
    assert invalid.returncode == 1
    assert "Traceback" not in invalid.stderr
    assert invalid.stderr.startswith(f"error: {bad_value.resolve()}: invalid settings")
    assert "line 2, key `imports.batch_size`" in invalid.stderr
    assert_one_line_error(missing, "nowhere", "cadence init")
    assert_one_line_error(bad_url, "mysql", "PostgreSQL")


# ---------------------------------------------------------------------- --now


def _leaf_commands(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    # Looked up as click does, so the commands that `cadence` imports lazily are there.
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, name
        path = f"{prefix} {name}".strip()
        if isinstance(command, click.Group):
            yield from _leaf_commands(command, path)
        else:
            yield path, command


def test_every_command_accepts_now_and_config() -> None:
    from core.cli import cli as root

    commands = dict(_leaf_commands(root))
    assert {"init", "db upgrade", "db status", "import", "demo-data", "demo", "config show"} <= set(
        commands
    )
    for path, command in [("", root), *commands.items()]:
        options = {option for param in command.params for option in param.opts}
        assert {"--now", "--config"} <= options, path or "cadence"


def _command_tree(command: click.Command) -> Iterator[click.Command]:
    yield command
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            yield from _command_tree(sub)


def test_the_command_table_names_every_command_and_the_modules_that_define_it() -> None:
    """`cadence` imports a command's modules only when it is looked up: a command left
    out of COMMAND_MODULES, or a subcommand in a module not listed there, would vanish."""
    import importlib
    import pkgutil

    import core.cli
    from core.cli.app import COMMAND_MODULES, cli

    for module in pkgutil.iter_modules(core.cli.__path__, "core.cli."):
        importlib.import_module(module.name)
    assert set(cli.commands) == set(COMMAND_MODULES)
    for name, command in cli.commands.items():
        for part in _command_tree(command):
            assert part.callback is not None, part.name
            assert part.callback.__module__ in COMMAND_MODULES[name], (name, part.name)


def test_importing_the_cli_leaves_the_commands_and_their_dependencies_for_later() -> None:
    """Every `cadence` process, and the tests start hundreds, paid about 0.8 s to import
    every command's dependencies; now it imports the ones of the command it runs."""
    probe = (
        "import sys, click\n"
        "from core.cli import cli\n"
        "heavy = ('sqlalchemy', 'textual', 'aiosmtplib', 'jinja2', 'pydantic')\n"
        "def loaded():\n"
        "    names = (m for m in sys.modules if m.startswith(heavy) or m.endswith('_commands'))\n"
        "    return sorted(names)\n"
        "print(loaded())\n"
        "cli.get_command(click.Context(cli), 'sink')\n"
        "print(loaded())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines() == ["[]", "['core.cli.sink_commands']"]


def test_now_and_config_are_accepted_before_and_after_the_command(migrated: Cli) -> None:
    started = [
        migrated.start("--now", NOW, "db", "status"),
        migrated.start(
            "--config", str(DEFAULT_CONFIG_DIR), "config", "show", "--now", "2026-11-23"
        ),
    ]
    status, shown = (finish(process) for process in started)
    assert "Schema:" in status
    assert str(DEFAULT_CONFIG_DIR / "cadence.toml") in shown


# ----------------------------------------------------------------- demo data


def dump(database: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Customers and their events, by external id, without row ids."""
    customers = query(
        database,
        "SELECT external_id, email, phone, name, locale, time_zone, birthday, registered_at, "
        "attributes, consent_email, consent_sms, consent_push FROM customers ORDER BY external_id",
    )
    events = query(
        database,
        "SELECT c.external_id, e.type, e.occurred_at, e.value, e.properties, e.source, "
        "e.idempotency_key FROM events e JOIN customers c ON c.id = e.customer_id "
        "ORDER BY c.external_id, e.occurred_at, e.type, e.dedupe_key",
    )
    return customers, events


def test_demo_data_is_deterministic(tmp_path: Path, migrated_template: Path) -> None:
    runs: dict[str, tuple[Cli, subprocess.Popen[str]]] = {}
    for run, seed in (("first", "3"), ("second", "3"), ("other-seed", "4")):
        work = tmp_path / run
        work.mkdir()
        cli = Cli(work, work / "demo.db")
        shutil.copy(migrated_template, cli.database)
        runs[run] = cli, cli.start(
            "demo-data",
            "--customers", "200",
            "--days", "120",
            "--seed", seed,
            "--now", "2026-06-01T12:00:00Z",
        )  # fmt: skip
    dumps = {}
    for run, (cli, process) in runs.items():
        assert "200 customers" in finish(process)
        dumps[run] = dump(cli.database)
    first, second, other = dumps["first"], dumps["second"], dumps["other-seed"]
    assert len(first[0]) == 200
    assert len(first[1]) > 200 * 10
    assert first == second
    assert first != other


def _demo_env(cli: Cli) -> dict[str, str]:
    """The test's environment without a database URL: the demo makes its own store."""
    return {k: v for k, v in cli.env.items() if k != "CADENCE_DATABASE_URL"}


def _run_demo(cli: Cli) -> subprocess.CompletedProcess[str]:
    """``cadence demo`` with 300 customers and a simulated week in ``cli``'s folder; it
    must succeed (with no terminal, it opens no console)."""
    result = subprocess.run(
        [str(CADENCE), "demo", "--customers", "300", "--month-days", "7", "--now", NOW],
        cwd=cli.cwd,
        env=_demo_env(cli),
        input="",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@dataclass(frozen=True)
class DemoRun:
    cli: Cli
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """One ``cadence demo`` in an empty folder for the module's tests (it takes the longest
    of them): the demo's own test reads what it printed and left, others copy its folder."""
    work = tmp_path_factory.mktemp("demo-work")
    cli = Cli(work, work / "unused.db")
    return DemoRun(cli, _run_demo(cli))


def _copy_demo(demo: DemoRun, to: Path) -> None:
    """The demo's folder copied into ``to``, its settings aimed at the copy's database."""
    source, target = demo.cli.cwd / "cadence-demo", to / "cadence-demo"
    shutil.copytree(source, target)
    settings_file = target / "cadence.toml"
    text = settings_file.read_text(encoding="utf-8")
    old, new = (str((folder / "cadence.db").resolve()) for folder in (source, target))
    assert old in text
    settings_file.write_text(text.replace(old, new), encoding="utf-8")


def test_demo_runs_in_an_empty_folder_and_prints_the_summary(demo_run: DemoRun) -> None:
    cli = demo_run.cli
    env = _demo_env(cli)
    out = demo_run.result.stdout
    assert "customers" in out
    assert "300" in out
    assert "who ever bought" in out
    assert "purchase" in out
    assert "Lifecycle stages" in out
    assert all(stage in out for stage in ("registered", "new", "active", "inactive"))
    assert "40 segments refreshed; the largest:" in out
    # The program went live a week ago, simulated: messages went out, customers answered,
    # and the stage KPIs and campaign uplift say how it went.
    assert "The simulated month:" in out and "messages sent" in out
    assert "Stage KPIs over 30 days" in out and "coverage" in out
    assert "Campaign uplift as of" in out and "inactive-winback" in out
    assert count(cli.cwd / "cadence-demo" / "cadence.db", "kpi_snapshots") > 0
    # Then the scheduler's first tick on the wall clock, and its jobs.
    assert "The scheduler's first tick" in out
    assert "scheduler jobs; the next cycle is" in out
    for campaign in ("active-hv-monthly-offer", "new-second-purchase", "inactive-winback"):
        assert campaign in out
    assert count(cli.cwd / "cadence-demo" / "cadence.db", "outbox") > 0
    # The first run goes out by e-mail to the demo's local SMTP sink and arrives there.
    delivered = re.search(r"(\d+) e-mails sent to a local SMTP sink, (\d+) arrived", out)
    assert delivered is not None, out
    sent, arrived = (int(figure) for figure in delivered.groups())
    assert sent == arrived > 0
    assert len(list((cli.cwd / "cadence-demo" / "sink" / "new").iterdir())) == arrived
    database = cli.cwd / "cadence-demo" / "cadence.db"
    assert database.is_file()
    assert count(database, "customers") == 300
    assert count(database, "events") > 300 * 10
    assert not list(cli.cwd.glob("*.rejects.jsonl"))

    status = subprocess.run(
        [str(CADENCE), "--config", "cadence-demo", "db", "status", "--now", NOW],
        cwd=cli.cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    assert "300" in status.stdout


# --------------------------------------------------------------------- bench


def test_bench_import_prints_one_json_line(cli: Cli) -> None:
    out = cli.ok("bench", "import", "--events", "3000", "--customers", "100")
    lines = out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert {"rows", "seconds", "rows_per_s", "floor_rows_per_s", "ratio"} <= set(result)
    assert result["rows"] == 3000
    assert result["ratio"] == pytest.approx(
        result["rows_per_s"] / result["floor_rows_per_s"], rel=0.01
    )


def test_program_validate_passes_the_default_program_and_names_a_mistake(cli: Cli) -> None:
    cli.ok("init", "mine")
    target = cli.cwd / "mine"
    valid = cli.ok("--config", str(target), "program", "validate")
    assert "is valid: 5 stages, 40 segments, 10 campaigns (1 ad-hoc, 4 cycle, 5 triggered)" in valid

    campaigns = target / "program" / "campaigns.toml"
    text = campaigns.read_text(encoding="utf-8")
    campaigns.write_text(text.replace('"0 10 * * MON"', '"0 10 * * MONDAY"'), encoding="utf-8")
    result = cli("--config", str(target), "program", "validate")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    line = text.splitlines().index('schedule = "0 10 * * MON"') + 1
    assert f"campaigns.toml:{line}: campaign `active-hv-monthly-offer`, field `schedule`:" in (
        result.stderr
    )
    assert "not a schedule: cron" in result.stderr


def test_planning_commands_on_the_demo_store(cli: Cli, demo_run: DemoRun) -> None:
    """preview, launch (refused, then confirmed), run and tick over the demo's data."""
    env = _demo_env(cli)

    def cadence(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CADENCE), "--config", "cadence-demo", *args, "--now", NOW],
            cwd=cli.cwd,
            env={**env, "COLUMNS": "200"},
            input="",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    _copy_demo(demo_run, cli.cwd)
    database = cli.cwd / "cadence-demo" / "cadence.db"
    outbox, campaigns = count(database, "outbox"), count(database, "campaigns")

    preview = cadence("campaign", "preview", "--segment", "value-high")
    assert preview.returncode == 0, preview.stderr
    assert "nothing written" in preview.stdout and "launch-value-high" in preview.stdout
    assert count(database, "outbox") == outbox

    assert_one_line_error(
        cadence("campaign", "launch", "--segment", "value-hihg", "--template", "offer_b"),
        "segment `value-hihg` is not in the database",
    )
    (cli.cwd / "cadence-demo" / "cadence.toml").write_text(
        (cli.cwd / "cadence-demo" / "cadence.toml")
        .read_text(encoding="utf-8")
        .replace("launch_confirm_above = 50000", "launch_confirm_above = 10"),
        encoding="utf-8",
    )
    assert_one_line_error(
        cadence("campaign", "launch", "--segment", "value-high", "--template", "offer_b"),
        "add --yes to launch it",
    )
    assert count(database, "campaigns") == campaigns  # the refused launches stored nothing
    launched = cadence(
        "campaign",
        "launch",
        "--segment",
        "value-high",
        "--template",
        "offer_b",
        "--name",
        "flash-sale",
        "--yes",
    )
    assert launched.returncode == 0, launched.stderr
    assert "Launched flash-sale." in launched.stdout
    assert count(database, "campaigns") == campaigns + 1
    assert "flash-sale excluded:" in launched.stdout  # a message from the first tick caps many

    ran = cadence("campaign", "run", "inactive-winback")
    assert ran.returncode == 0, ran.stderr
    assert "inactive-winback excluded:" in ran.stdout and "cooldown" in ran.stdout
    tick = cadence("campaign", "tick")
    assert "Nothing was due" in tick.stdout
    shown = cadence("campaign", "show", "flash-sale")
    assert "ad-hoc · active" in shown.stdout and "launch" in shown.stdout
