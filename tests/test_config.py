"""config.toml parsing: the shipped file works, every bad value is named precisely."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import time, timedelta
from pathlib import Path

import pytest

from mentordesk.config import SCHEMA, load_config, parse_duration
from mentordesk.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SECRET = {"MENTORDESK_SECRET": "s" * 32}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = """
[program]
name = "Test Mentors"
address = "mentors@program.test"
coordinator = "coord@program.test"
"""


def test_shipped_config_loads_with_embedded_default() -> None:
    config = load_config(ROOT / "config.toml", environ=SECRET)
    assert config.inbox.kind == "maildir"
    assert config.smtp.kind == "maildir"
    assert config.inbox.path == (ROOT / "state" / "mail").resolve()
    assert config.timers.bump_after == timedelta(days=3)
    assert config.timers.escalate_after == timedelta(days=10)
    assert config.timers.digest_time == time(8, 0)
    assert config.matching.synonyms["js"] == "javascript"
    assert config.matching.synonyms["javascript"] == "javascript"
    assert config.secret == b"s" * 32


def test_packaged_default_is_the_shipped_config() -> None:
    # `mentordesk demo` uses the packaged copy; it must not drift from config.toml.
    packaged = (ROOT / "mentordesk" / "default_config.toml").read_text(encoding="utf-8")
    assert packaged == (ROOT / "config.toml").read_text(encoding="utf-8")


def test_every_option_is_in_the_sample_config_and_the_readme() -> None:
    sample = (ROOT / "config.toml").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for table, options in SCHEMA.items():
        assert f"[{table}]" in sample, f"[{table}] missing from config.toml"
        for key in options:
            assert re.search(rf"^#?\s*{key}\s*=", sample, re.M), f"{table}.{key} not in config.toml"
            assert f"`{key}`" in readme, f"{table}.{key} not documented in README.md"


def test_defaults_fill_everything_but_program(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), environ=SECRET)
    assert config.program.domain == "program.test"
    assert config.program.escalation == ()
    assert config.limits.open_requests_per_mentee == 2
    assert config.state.path == (tmp_path / "state" / "mentordesk.db").resolve()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[program]\nname = 'x'\ncoordinator = 'c@p.test'\n",
            r"\[program\] address: is required\. Example: address = \"mentors@program\.org\"",
        ),
        (
            MINIMAL.replace("mentors@program.test", "not an address"),
            r"\[program\] address: 'not an address' is not a plain email address",
        ),
        (
            MINIMAL + "[inbox]\nkind = 'pop3'\n",
            r"\[inbox\] kind: 'pop3' is not one of imap, maildir\. Example: kind = \"imap\"",
        ),
        (MINIMAL + "[inbox]\nport = 'nine'\n", r"\[inbox\] port: expected a whole number"),
        (MINIMAL + "[inbox]\nport = 70000\n", r"\[inbox\] port: must be the server.s port number"),
        (
            MINIMAL + "[smtp]\nport = 0\n",
            r"\[smtp\] port: must be the server.s port number, 1–65535, got 0",
        ),
        (MINIMAL + "[web]\nport = 70000\n", r"\[web\] port: must be a port number 0–65535"),
        (
            MINIMAL + '[inbox]\nkind = "imap"\n',
            r"\[inbox\] username: is required with kind = \"imap\"",
        ),
        (MINIMAL + "[inbox]\nidle = 'yes'\n", r"\[inbox\] idle: expected true or false"),
        (
            MINIMAL + "[timers]\nbump_after = 'three days'\n",
            r"\[timers\] bump_after: 'three days' is not a duration like '3d'",
        ),
        (
            MINIMAL + "[timers]\ndigest_time = '25:00'\n",
            r"\[timers\] digest_time: '25:00' is not a time",
        ),
        (
            MINIMAL + "[timers]\nsurvey_date = '02-30'\n",
            r"survey_date: '02-30' is not a day that comes every year",
        ),
        (MINIMAL + "[program.x]\n", r"\[program\] x: unknown key"),
        (
            MINIMAL.replace('name = "Test Mentors"', 'name = "T"\ntimezone = "Mars/Olympus"'),
            r"\[program\] timezone: 'Mars/Olympus' is not an IANA timezone name",
        ),
        (MINIMAL + "[inbox]\nfolder = ''\n", r"\[inbox\] folder: must not be empty"),
        (MINIMAL + "[mailer]\n", r"unknown table \[mailer\]"),
        (
            MINIMAL + "[matching.synonyms]\njavascript = 'js'\n",
            r"\[matching\] synonyms\.javascript: must be a list",
        ),
        (MINIMAL + "[matching.synonyms]\na = ['x']\nb = ['x']\n", r"'x' is already a name for 'a'"),
        ("[program\nname=", r"is not valid TOML"),
    ],
)
def test_bad_values_name_file_table_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as caught:
        load_config(path, environ=SECRET)
    assert str(caught.value).startswith(str(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml", environ=SECRET)


def test_secret_must_come_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    with pytest.raises(
        ConfigError, match=r"secret_env: the environment variable MENTORDESK_SECRET is not set"
    ):
        load_config(path, environ={})
    with pytest.raises(ConfigError, match="shorter than 16"):
        load_config(path, environ={"MENTORDESK_SECRET": "short"})


def test_passwords_come_from_named_variables_and_never_show(tmp_path: Path) -> None:
    text = MINIMAL + (
        "[inbox]\nkind = 'imap'\nhost = '127.0.0.1'\nusername = 'u'\npassword_env = 'IMAP_PW'\n"
    )
    path = write(tmp_path, text)
    with pytest.raises(
        ConfigError, match=r"\[inbox\] password_env: the environment variable IMAP_PW is not set"
    ):
        load_config(path, environ=SECRET)
    config = load_config(path, environ={**SECRET, "IMAP_PW": "hunter2-very-secret"})
    assert config.inbox.password == "hunter2-very-secret"
    assert "hunter2" not in repr(config)
    assert "s" * 32 not in repr(config)


def test_parse_duration() -> None:
    assert parse_duration("3d") == timedelta(days=3)
    assert parse_duration("1.5h") == timedelta(minutes=90)
    assert parse_duration(" 45S ") == timedelta(seconds=45)
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_check_config_command_reports_errors(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[smtp]\nport = -1\n")
    result = subprocess.run(
        [sys.executable, "-m", "mentordesk.cli", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        env={"MENTORDESK_SECRET": "x" * 20, "PATH": ""},
        check=False,
    )
    assert result.returncode == 2
    assert (
        f"mentordesk: {path}: [smtp] port: must be the server's port number, 1–65535, got -1"
        in result.stderr
    )
    good = write(tmp_path, MINIMAL)
    result = subprocess.run(
        [sys.executable, "-m", "mentordesk.cli", "check-config", "--config", str(good)],
        capture_output=True,
        text=True,
        env={"MENTORDESK_SECRET": "x" * 20, "PATH": ""},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
