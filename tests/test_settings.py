"""Settings: a TOML file, ``CADENCE_*`` environment variables, clear errors, hidden secrets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from config import DEFAULT_SETTINGS_FILE
from core.errors import ConfigError
from core.settings import Settings, load_settings

CADENCE = Path(sys.executable).with_name("cadence")
"""The console script installed next to this Python, as ``pip install`` puts it."""
if not CADENCE.exists():  # pragma: no cover - an unusual install; use the one on PATH
    CADENCE = Path(shutil.which("cadence") or CADENCE)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No CADENCE_* variables from the caller, and a working directory without cadence.toml."""
    for name in list(os.environ):
        if name.upper().startswith("CADENCE_"):
            monkeypatch.delenv(name)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def config_error(config: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    return str(caught.value)


SAMPLE = """\
database_url = "postgresql+asyncpg://cadence@db.internal:5432/crm"
time_zone = "Europe/Lisbon"
program_dir = "my-program"

[smtp]
host = "mail.example.com"
port = 587
starttls = true

[imports]
batch_size = 1000
"""


def test_reads_the_toml_file(tmp_path: Path) -> None:
    path = write(tmp_path / "conf" / "cadence.toml", SAMPLE)
    settings = load_settings(path)
    assert settings.database_url == "postgresql+asyncpg://cadence@db.internal:5432/crm"
    assert settings.time_zone == "Europe/Lisbon"
    assert settings.zone.key == "Europe/Lisbon"
    assert settings.smtp.host == "mail.example.com"
    assert settings.smtp.port == 587
    assert settings.smtp.starttls is True
    assert settings.imports.batch_size == 1000
    # Keys the file leaves out keep their defaults, also inside a section.
    assert settings.imports.max_field_bytes == 64 * 1024
    assert settings.smtp.tls is False
    assert settings.api.port == 8625
    assert settings.settings_file == path.resolve()
    # Relative paths are read from the file's folder, wherever the command runs.
    assert settings.resolve(settings.program_dir) == path.resolve().parent / "my-program"
    assert settings.resolve(Path("/abs/templates")) == Path("/abs/templates")


def test_config_may_name_the_file_or_its_folder(tmp_path: Path) -> None:
    path = write(tmp_path / "conf" / "cadence.toml", SAMPLE)
    by_file = load_settings(path)
    by_folder = load_settings(tmp_path / "conf")
    assert by_folder.settings_file == by_file.settings_file == path.resolve()
    assert by_folder.model_dump() == by_file.model_dump()


def test_a_settings_file_may_have_any_name(tmp_path: Path) -> None:
    path = write(tmp_path / "staging.toml", 'time_zone = "Europe/Rome"\n')
    assert load_settings(path).time_zone == "Europe/Rome"


def test_without_config_reads_the_working_directory_then_the_shipped_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defaults = load_settings()
    assert defaults.settings_file == DEFAULT_SETTINGS_FILE
    assert defaults.database_url == "sqlite+aiosqlite:///cadence.db"
    assert defaults.time_zone == "UTC"

    local = write(Path.cwd() / "cadence.toml", 'time_zone = "Europe/Warsaw"\n')
    assert load_settings().settings_file == local.resolve()
    assert load_settings().time_zone == "Europe/Warsaw"

    elsewhere = write(tmp_path / "elsewhere" / "cadence.toml", 'time_zone = "Europe/Rome"\n')
    monkeypatch.setenv("CADENCE_CONFIG", str(elsewhere.parent))
    assert load_settings().time_zone == "Europe/Rome"
    # --config wins over CADENCE_CONFIG.
    assert load_settings(local).time_zone == "Europe/Warsaw"


def test_shipped_defaults_are_valid_and_match_the_model() -> None:
    shipped = load_settings(DEFAULT_SETTINGS_FILE)
    assert shipped.model_dump() == Settings(settings_file=DEFAULT_SETTINGS_FILE).model_dump()


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "cadence.toml", SAMPLE)
    monkeypatch.setenv("CADENCE_DATABASE_URL", "sqlite+aiosqlite:////tmp/other.db")
    monkeypatch.setenv("CADENCE_TIME_ZONE", "Europe/Warsaw")
    monkeypatch.setenv("CADENCE_SMTP__PORT", "2525")
    monkeypatch.setenv("CADENCE_IMPORTS__MAX_FIELD_BYTES", "1024")
    settings = load_settings(path)
    assert settings.database_url == "sqlite+aiosqlite:////tmp/other.db"
    assert settings.time_zone == "Europe/Warsaw"
    assert settings.smtp.port == 2525
    assert settings.imports.max_field_bytes == 1024
    # A nested variable changes one key; the rest of the file's section stays.
    assert settings.smtp.host == "mail.example.com"
    assert settings.smtp.starttls is True
    assert settings.imports.batch_size == 1000


def test_environment_overrides_the_shipped_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADENCE_SMTP__PORT", "2526")
    monkeypatch.setenv("CADENCE_API__HOST", "0.0.0.0")
    settings = load_settings()
    assert settings.smtp.port == 2526
    assert settings.api.host == "0.0.0.0"
    assert settings.smtp.host == "127.0.0.1"


def test_unrelated_cadence_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADENCE_TEST_POSTGRES_URL", "postgresql+asyncpg://x@y/z")
    monkeypatch.setenv("CADENCE_SOMETHING_ELSE", "1")
    assert load_settings().database_url == "sqlite+aiosqlite:///cadence.db"


def test_secrets_are_secret_str_and_never_in_repr_or_dump(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CADENCE_SMTP__PASSWORD", "hunter2-smtp")
    monkeypatch.setenv("CADENCE_API__TOKEN", "tok-5ecret")
    settings = load_settings(write(tmp_path / "cadence.toml", SAMPLE))
    assert isinstance(settings.smtp.password, SecretStr)
    assert isinstance(settings.api.token, SecretStr)
    assert settings.smtp.password.get_secret_value() == "hunter2-smtp"
    assert settings.api.token.get_secret_value() == "tok-5ecret"
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert "hunter2-smtp" not in text
        assert "tok-5ecret" not in text


def test_secrets_can_come_from_files_in_secrets_dir(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    # One file per section, named after its variable, holding the section's secrets as JSON.
    write(secrets / "cadence_smtp", json.dumps({"password": "from-a-file"}))
    write(secrets / "cadence_api", json.dumps({"token": "token-from-a-file"}))
    path = write(
        tmp_path / "conf" / "cadence.toml",
        'secrets_dir = "../secrets"\n[smtp]\nhost = "mail.example.com"\n',
    )
    settings = load_settings(path)
    assert settings.smtp.password is not None
    assert settings.smtp.password.get_secret_value() == "from-a-file"
    assert settings.api.token is not None
    assert settings.api.token.get_secret_value() == "token-from-a-file"
    assert settings.smtp.host == "mail.example.com"


def test_a_missing_settings_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "cadence.toml"
    message = config_error(missing)
    assert str(missing) in message
    assert "cadence init" in message
    empty_folder = tmp_path / "empty"
    empty_folder.mkdir()
    assert str(empty_folder / "cadence.toml") in config_error(empty_folder)


def test_invalid_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "cadence.toml", 'time_zone = "UTC"\n\n[smtp\nport = 25\n')
    message = config_error(path)
    assert message.startswith(f"{path.resolve()}: not valid TOML")
    assert "line 3" in message


def test_a_wrong_value_names_the_file_line_key_and_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path / "cadence.toml",
        'database_url = "sqlite+aiosqlite:///x.db"\n'
        "\n"
        "[smtp]\n"
        'host = "mail.example.com"\n'
        'port = "high"\n',
    )
    message = config_error(path)
    lines = message.splitlines()
    assert lines[0] == f"{path.resolve()}: invalid settings"
    assert len(lines) == 2
    assert "line 5" in lines[1]
    assert "`smtp.port`" in lines[1]
    assert "valid integer" in lines[1]


def test_out_of_range_and_unknown_time_zone_are_explained(tmp_path: Path) -> None:
    path = write(
        tmp_path / "cadence.toml",
        'time_zone = "Mars/Olympus_Mons"\n[api]\nport = 70000\n',
    )
    lines = config_error(path).splitlines()[1:]
    by_key = {line.split("`")[1]: line for line in lines}
    assert set(by_key) == {"time_zone", "api.port"}
    assert "line 1" in by_key["time_zone"]
    assert "unknown time zone 'Mars/Olympus_Mons'" in by_key["time_zone"]
    assert "Europe/Lisbon" in by_key["time_zone"]  # an example of a valid name
    assert "line 3" in by_key["api.port"]
    assert "65535" in by_key["api.port"]


@pytest.mark.parametrize(
    ("text", "line", "key", "suggestion"),
    [
        ('databse_url = "sqlite:///x.db"\n', 1, "databse_url", "database_url"),
        ('time_zone = "UTC"\ntimezone = "UTC"\n', 2, "timezone", "time_zone"),
        ('[smtp]\nhost = "h"\npasword = "x"\n', 3, "smtp.pasword", "password"),
        ("[imports]\nbatchsize = 5\n", 2, "imports.batchsize", "batch_size"),
    ],
)
def test_an_unknown_key_suggests_the_close_name(
    tmp_path: Path, text: str, line: int, key: str, suggestion: str
) -> None:
    path = write(tmp_path / "cadence.toml", text)
    message = config_error(path)
    assert str(path.resolve()) in message
    assert f"line {line}, key `{key}`: unknown key; did you mean `{suggestion}`?" in message


def test_an_unknown_key_with_no_close_name_says_so_plainly(tmp_path: Path) -> None:
    path = write(tmp_path / "cadence.toml", "[smtp]\nzzz = 1\n")
    message = config_error(path)
    assert "line 2, key `smtp.zzz`: unknown key" in message
    assert "did you mean" not in message


def test_an_unknown_section_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "cadence.toml", "[smpt]\nport = 25\n")
    message = config_error(path)
    assert "line 1, key `smpt`: unknown key; did you mean `smtp`?" in message


def test_a_bad_environment_variable_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CADENCE_SMTP__PORT", "not-a-number")
    path = write(tmp_path / "cadence.toml", SAMPLE)
    message = config_error(path)
    assert "environment variable CADENCE_SMTP__PORT" in message
    assert "valid integer" in message


def test_a_settings_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "cadence.toml"
    path.write_bytes('time_zone = "Europe/Lisbon" # Configuração\n'.encode("latin-1"))
    message = config_error(path)
    assert str(path.resolve()) in message
    assert "not UTF-8" in message


def run_cadence(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CADENCE), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cli_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CADENCE_")}
    env.update(NO_COLOR="1", **extra)
    return env


def test_config_show_prints_the_settings_and_masks_every_secret(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    write(secrets / "cadence_api", json.dumps({"token": "file-token-0xBEEF"}))
    conf = tmp_path / "conf"
    write(conf / "cadence.toml", 'secrets_dir = "../secrets"\n' + SAMPLE)
    env = cli_environment(
        CADENCE_SMTP__PASSWORD="env-password-0xCAFE",
        CADENCE_SMTP__USERNAME="mailer",
        CADENCE_SMTP__PORT="2525",
        CADENCE_DATABASE_URL="postgresql+asyncpg://cadence:db-pass-0xF00D@db.internal:5432/crm",
    )
    result = run_cadence("config", "show", "--config", str(conf), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "env-password-0xCAFE" not in output
    assert "file-token-0xBEEF" not in output
    assert "db-pass-0xF00D" not in output
    first, _, body = result.stdout.partition("\n")
    assert first == f"# from {(conf / 'cadence.toml').resolve()}"
    shown = json.loads(body)
    assert shown["smtp"]["password"] == "**********"
    assert shown["api"]["token"] == "**********"
    assert shown["smtp"]["username"] == "mailer"
    assert shown["smtp"]["port"] == 2525
    assert shown["smtp"]["host"] == "mail.example.com"
    assert shown["database_url"] == "postgresql+asyncpg://cadence:***@db.internal:5432/crm"
    assert "settings_file" not in shown


def test_config_show_reports_a_bad_file_in_one_clear_message(tmp_path: Path) -> None:
    path = write(tmp_path / "cadence.toml", "[smtp]\nprot = 25\n")
    result = run_cadence(
        "config", "show", "--config", str(path), env=cli_environment(), cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error:")
    assert str(path.resolve()) in result.stderr
    assert "line 2, key `smtp.prot`: unknown key; did you mean `port`?" in result.stderr


@pytest.mark.parametrize(("written", "window"), [('"off"', None), ('"22:00-07:30"', "22:00-07:30")])
def test_quiet_hours_are_a_window_or_off(tmp_path: Path, written: str, window: str | None) -> None:
    path = tmp_path / "cadence.toml"
    path.write_text(f"[policy]\nquiet_hours = {written}\n", encoding="utf-8")

    policy = load_settings(path).policy

    assert policy.quiet_hours == window
    assert (policy.quiet is None) == (window is None)
