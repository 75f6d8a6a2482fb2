"""Typed settings: a TOML file, overridden by ``CADENCE_*`` environment variables.

Where the file comes from, in order: ``--config`` (a file, or a folder that
holds ``cadence.toml``), ``$CADENCE_CONFIG``, ``./cadence.toml``, then the
defaults shipped in the ``config`` package. Relative paths in the file are
read from the file's folder, except the SQLite database, which lives in the
working directory unless the URL says otherwise. Secrets are ``SecretStr``:
they come from the environment or from files in ``secrets_dir`` and are never
printed.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from config import DEFAULT_SETTINGS_FILE
from core.errors import ConfigError
from core.policy.quiet_hours import QuietHours, parse_quiet_hours
from core.tomlfile import line_of, read_toml

SETTINGS_FILE_NAME = "cadence.toml"
ENV_PREFIX = "CADENCE_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SqliteSettings(_Section):
    """Tuning for the SQLite store; PostgreSQL ignores it."""

    busy_timeout_ms: int = Field(30_000, ge=0)
    cache_size_mib: int = Field(64, ge=1)
    mmap_size_mib: int = Field(256, ge=0)
    """Reads come straight from the OS page cache: a page another process changed costs
    nothing to re-read, where the private page cache would be thrown away (0: off)."""


class ImportSettings(_Section):
    """Limits and batching for ``cadence import``."""

    # Rows per transaction. A batch folds into the rollups as one upsert per customer in
    # it, so larger batches mean fewer upserts; 100,000 still commits about thrice a second.
    batch_size: int = Field(100_000, ge=1)
    max_field_bytes: int = Field(64 * 1024, ge=1)
    # Files at least this large are parsed in a second process while this one writes;
    # below it the process start-up (about a third of a second) is not worth it.
    parallel_parse_min_bytes: int = Field(8 * 1024 * 1024, ge=0)


class IngestSettings(_Section):
    """Events that arrive one batch at a time: ``POST /v1/events`` and ``cadence ingest -``."""

    max_batch_events: int = Field(1000, ge=1, le=100_000)
    """Events one request may carry (``cadence ingest -`` stores this many per transaction)."""
    unknown_customers: Literal["reject", "create"] = "reject"
    """An event of a customer Cadence does not know: refused, or the customer is created."""
    max_future_minutes: float = Field(60.0, ge=0)
    """An event dated further ahead of the server's clock than this is refused."""


class SmtpSettings(_Section):
    """The outgoing mail server."""

    host: str = "127.0.0.1"
    port: int = Field(1025, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    """Upgrade the connection with STARTTLS (port 587); ``tls`` is TLS from the start (465)."""
    tls: bool = False
    validate_certs: bool = True
    timeout_seconds: float = Field(30.0, gt=0)
    local_hostname: str | None = None
    """The name this host gives in EHLO; default: the machine's name."""


class ChannelLimits(_Section):
    """How fast one channel may send: a steady rate and an hourly ceiling."""

    rate_per_second: float | None = Field(None, gt=0)
    """Token bucket: at most this many messages a second on average (none: no limit)."""
    burst: int = Field(50, ge=1)
    """How many messages may go at once after a quiet spell, under ``rate_per_second``."""
    max_per_hour: int | None = Field(None, ge=1)
    """Sliding window: at most this many messages in any 60 minutes, across all nodes."""


class EmailSettings(ChannelLimits):
    """The e-mail channel: who the mail is from, and the pool of SMTP connections."""

    from_address: str = "news@cadence.example"
    from_name: str | None = "Cadence"
    reply_to: str | None = None
    connections: int = Field(8, ge=1, le=256)
    """Persistent SMTP connections per delivery process; each sends one message at a time."""
    unsubscribe_mailto: str | None = None
    """An address that takes unsubscribe requests by mail (``List-Unsubscribe: <mailto:...>``)."""
    message_id_domain: str | None = None
    """The right-hand side of Message-IDs; default: the domain of ``from_address``."""


class SmsSettings(ChannelLimits):
    """The SMS channel: an HTTP gateway that takes one message per request."""

    url: str | None = None
    """The gateway's endpoint; none: SMS is not configured and SMS messages wait."""
    format: Literal["json", "form"] = "json"
    fields: dict[str, str] = Field(
        default_factory=lambda: {"to": "to", "text": "text", "from": "from"}
    )
    """The names the gateway gives the recipient, the text and the sender."""
    sender: str | None = None
    username: str | None = None
    """With ``password``: HTTP basic authentication."""
    password: SecretStr | None = None
    token: SecretStr | None = None
    """A bearer token (``Authorization: Bearer ...``), instead of basic authentication."""
    timeout_seconds: float = Field(10.0, gt=0)
    concurrency: int = Field(8, ge=1, le=256)


class WebhookSettings(ChannelLimits):
    """The webhook channel: each message is POSTed as JSON to one URL, signed."""

    url: str | None = None
    secret: SecretStr | None = None
    """Signs each body with HMAC-SHA256 (header ``X-Cadence-Signature: t=...,v1=...``)."""
    timeout_seconds: float = Field(10.0, gt=0)
    concurrency: int = Field(8, ge=1, le=256)


class FileChannelSettings(ChannelLimits):
    """The file channel, for dry runs and the demo: messages written to a file or a maildir."""

    path: Path = Path("outbox.jsonl")
    format: Literal["jsonl", "maildir"] = "jsonl"


class ChannelSettings(_Section):
    """Every channel's settings (the in-app channel needs none but its limits)."""

    email: EmailSettings = EmailSettings()
    sms: SmsSettings = SmsSettings()
    webhook: WebhookSettings = WebhookSettings()
    in_app: ChannelLimits = ChannelLimits()
    file: FileChannelSettings = FileChannelSettings()


class DeliverySettings(_Section):
    """How delivery workers take messages from the outbox, and how they retry."""

    processes: int = Field(1, ge=1, le=64)
    """Worker processes ``cadence deliver`` runs; each sends on its own core with its own
    ``channels.email.connections`` connections."""
    batch_size: int = Field(500, ge=1, le=10_000)
    """Messages a worker claims at once."""
    lease_seconds: float = Field(300.0, gt=0)
    """A claimed message not recorded by then goes back to the queue (the worker died)."""
    max_attempts: int = Field(8, ge=1)
    retry_base_seconds: float = Field(30.0, gt=0)
    """The first retry waits this long, each later one twice as long (with jitter)."""
    retry_max_seconds: float = Field(3600.0, gt=0)
    idle_seconds: float = Field(1.0, gt=0)
    """How long a worker with nothing to send waits before looking again."""


class SchedulerSettings(_Section):
    """What ``cadence run`` schedules, how often, and how its nodes find their leader."""

    refresh_minutes: float = Field(15.0, gt=0)
    """Lifecycle stages and segments are refreshed this often."""
    intel_schedule: str = "0 3 * * *"
    """Cron (in ``time_zone``) of the nightly scores, CLV and recommendations refresh."""
    journeys_seconds: float = Field(30.0, gt=0)
    """How often journeys advance: waits end, branches are taken, steps send."""
    tick_seconds: float = Field(1.0, gt=0, le=2)
    """How often the leader looks for work requested in the store (a launch, run now,
    pause, resume, a new program version): within two seconds, whoever wrote it."""
    heartbeat_seconds: float = Field(5.0, gt=0)
    leader_check_seconds: float = Field(3.0, gt=0)
    """How often a follower tries to become the leader (PostgreSQL)."""
    missed_cycles: Literal["run_once", "skip"] = "run_once"
    """After downtime, a cycle campaign's missed slots run once (the latest), or, with
    ``skip``, not at all when the latest is older than ``missed_cycle_grace_minutes``."""
    missed_cycle_grace_minutes: float = Field(60.0, ge=0)
    keep_job_runs_days: int = Field(30, ge=1)
    """Clean-up deletes job runs older than this."""


class TemplateSettings(_Section):
    """What templates may use and how much they may cost."""

    brand: str = "Cadence"
    """Offered to every template as ``brand``."""
    max_template_bytes: int = Field(256 * 1024, ge=1)
    max_output_bytes: int = Field(1024 * 1024, ge=1)
    render_timeout_ms: int = Field(250, ge=1)


class PolicySettings(_Section):
    """The contact policy every campaign obeys (see :mod:`core.policy`)."""

    max_per_day: int = Field(1, ge=0)
    """Marketing messages a customer may get in any 24 hours, across campaigns and channels."""
    max_per_week: int = Field(3, ge=0)
    """Marketing messages a customer may get in any 7 days."""
    quiet_hours: str | None = "21:00-08:00"
    """Local time window when marketing waits (``HH:MM-HH:MM``); ``"off"``: none."""
    launch_confirm_above: int = Field(50_000, ge=0)
    """A launch aimed at more customers than this needs ``--yes``."""

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours_parse(cls, value: str | None) -> str | None:
        # TOML has no null: "off" is how a settings file says there are none.
        if value is None or value.strip().lower() == "off":
            return None
        parse_quiet_hours(value)
        return value

    @property
    def quiet(self) -> QuietHours | None:
        return None if self.quiet_hours is None else parse_quiet_hours(self.quiet_hours)


class MeasureSettings(_Section):
    """How campaign results are judged (see :mod:`core.measure`)."""

    min_sample_per_arm: int = Field(100, ge=1)
    """Below this many customers in either arm (treated or control) of the runs whose goal
    window closed, a campaign's uplift reads "not enough data" instead of a number."""
    kpi_window_days: int = Field(30, ge=1, le=365)
    """Stage and program KPIs (coverage, conversion, revenue, churn, message rates) are
    measured over this many days up to the moment they describe; a stage's KPI target
    applies when its name says the same window (``coverage_30d`` for 30)."""


class ConsoleSettings(_Section):
    """The operations console (``cadence console``)."""

    launchers: list[str] | None = None
    """The operators (OS user names, or ``$CADENCE_ACTOR``) who may launch, pause, resume and
    run campaigns from the console; unset: everyone who can open it. Others see it read-only."""
    refresh_seconds: float = Field(2.0, gt=0, le=60)
    """How often live screens (dashboard, scheduler) read the store again."""


class ApiSettings(_Section):
    """The HTTP API inside the scheduler process."""

    host: str = "127.0.0.1"
    port: int = Field(8625, ge=1, le=65535)
    token: SecretStr | None = None
    public_url: str = "http://127.0.0.1:8625"
    """Where customers reach the API: unsubscribe, tracking and click links start with it."""
    link_ttl_days: int = Field(365, ge=1)
    """How long unsubscribe and tracking links in a message keep working."""
    link_secret: SecretStr | None = None
    """Signs links; default: a key generated once and kept in the store for every node."""
    max_body_bytes: int = Field(1024 * 1024, ge=1)
    ingest_token_hashes: list[str] = Field(default_factory=list)
    """Tokens that may post events, stored as ``sha256:<hex>`` (``cadence api token``
    makes one); the tokens themselves are never stored."""

    @field_validator("ingest_token_hashes")
    @classmethod
    def _token_hashes(cls, value: list[str]) -> list[str]:
        for entry in value:
            algorithm, _, digest = entry.partition(":")
            if algorithm != "sha256" or len(digest) != 64 or digest.strip("0123456789abcdef"):
                raise ValueError(
                    f"{entry[:20]!r} is not a token hash; use the `sha256:<hex>` line that "
                    "`cadence api token` prints"
                )
        return value


class Settings(BaseSettings):
    """Everything Cadence reads from its settings file and the environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    database_url: str = "sqlite+aiosqlite:///cadence.db"
    time_zone: str = "UTC"
    program_dir: Path = Path("program")
    templates_dir: Path = Path("templates")
    secrets_dir: Path | None = None
    sqlite: SqliteSettings = SqliteSettings()
    imports: ImportSettings = ImportSettings()
    ingest: IngestSettings = IngestSettings()
    smtp: SmtpSettings = SmtpSettings()
    api: ApiSettings = ApiSettings()
    policy: PolicySettings = PolicySettings()
    channels: ChannelSettings = ChannelSettings()
    delivery: DeliverySettings = DeliverySettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    templates: TemplateSettings = TemplateSettings()
    measure: MeasureSettings = MeasureSettings()
    console: ConsoleSettings = ConsoleSettings()
    settings_file: Path = Field(DEFAULT_SETTINGS_FILE, exclude=True)

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'Europe/Lisbon'"
            ) from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init arguments; the environment wins over them.
        return env_settings, init_settings, file_secret_settings

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def config_dir(self) -> Path:
        return self.settings_file.parent

    def resolve(self, path: Path) -> Path:
        """A path from the settings file, read relative to the file's folder."""
        return path if path.is_absolute() else self.config_dir / path


def find_settings_file(config: Path | None) -> Path:
    """The settings file to read, following the order in the module docstring."""
    explicit = config or (
        Path(os.environ[f"{ENV_PREFIX}CONFIG"]) if os.environ.get(f"{ENV_PREFIX}CONFIG") else None
    )
    if explicit is not None:
        candidate = explicit / SETTINGS_FILE_NAME if explicit.is_dir() else explicit
        if not candidate.is_file():
            raise ConfigError(
                f"{candidate}: no such settings file; run `cadence init DIR` to create one"
            )
        return candidate.resolve()
    local = Path.cwd() / SETTINGS_FILE_NAME
    return local.resolve() if local.is_file() else DEFAULT_SETTINGS_FILE


def load_settings(config: Path | None = None) -> Settings:
    """Read and validate the settings; a bad file raises :class:`ConfigError`."""
    path = find_settings_file(config)
    text, data = read_toml(path, "settings file")
    secrets_dir = data.get("secrets_dir") or os.environ.get(f"{ENV_PREFIX}SECRETS_DIR")
    kwargs: dict[str, Any] = {}
    if secrets_dir:
        kwargs["_secrets_dir"] = str(_relative_to(path, Path(secrets_dir)))
    try:
        return Settings(**data, settings_file=path, **kwargs)
    except ValidationError as exc:
        raise ConfigError(_describe_errors(path, text, data, exc)) from None


def _relative_to(settings_file: Path, path: Path) -> Path:
    return path if path.is_absolute() else settings_file.parent / path


def _describe_errors(path: Path, text: str, data: dict[str, Any], exc: ValidationError) -> str:
    lines = [f"{path}: invalid settings"]
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        key = ".".join(loc)
        if error["type"] == "extra_forbidden":
            message = f"unknown key{_suggestion(loc)}"
        else:
            message = error["msg"].removeprefix("Value error, ")
        variable = f"{ENV_PREFIX}{'__'.join(loc).upper()}"
        if _in_environment(variable) or not _in_file(data, loc):
            # The environment wins over the file, so a value set in both came from there.
            where = f"environment variable {variable}"
        else:
            line = line_of(text, loc)
            where = f"line {line}, key `{key}`" if line else f"key `{key}`"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def _suggestion(loc: list[str]) -> str:
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1)
    return f"; did you mean `{close[0]}`?" if close else ""


def _in_environment(variable: str) -> bool:
    return any(name.upper() == variable for name in os.environ)


def _in_file(data: dict[str, Any], loc: list[str]) -> bool:
    node: Any = data
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True
