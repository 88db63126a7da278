"""``mentordesk check-config --connect`` against the real Dovecot and aiosmtpd servers.

Each failure a deployer meets — a wrong password, a wrong host, a missing folder, a busy
web port — gives its one ✗ line with the fix and a non-zero exit; a good config passes
every check and leaves the two folders mail moves to created.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.desk import ENVIRON, config_text
from tests.servers import PROGRAM_PASSWORD, PROGRAM_USER, Dovecot, SmtpSink, free_port

ROOT = Path(__file__).resolve().parent.parent
CLI = (sys.executable, "-m", "mentordesk.cli")


def check(
    tmp_path: Path,
    dovecot: Dovecot,
    sink: SmtpSink,
    *,
    web_port: int | None = None,
    environ: Mapping[str, str] = ENVIRON,
    **tables: Mapping[str, Any],
) -> subprocess.CompletedProcess[str]:
    """Run ``mentordesk check-config --connect`` on a config for these servers."""
    path = tmp_path / "config.toml"
    port = web_port if web_port is not None else free_port()
    path.write_text(config_text(tmp_path, dovecot, sink, port, **tables), "utf-8")
    return subprocess.run(
        [*CLI, "check-config", "--connect", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **environ},
        timeout=120,
        check=False,
    )


@pytest.fixture
def auth_sink() -> Iterator[SmtpSink]:
    """An SMTP server that wants a login (AUTH PLAIN/LOGIN over loopback)."""
    sink = SmtpSink(credentials={"sender@program.test": "smtp-password"})
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


SMTP_LOGIN = {"username": "sender@program.test", "password_env": "MD_TEST_SMTP_PASSWORD"}
WITH_SMTP_PASSWORD = {**ENVIRON, "MD_TEST_SMTP_PASSWORD": "smtp-password"}


def test_good_config_passes_every_check_and_creates_the_folders(
    tmp_path: Path, dovecot: Dovecot, auth_sink: SmtpSink
) -> None:
    assert "Processed" not in dovecot.folders(PROGRAM_USER)
    result = check(tmp_path, dovecot, auth_sink, environ=WITH_SMTP_PASSWORD, smtp=SMTP_LOGIN)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    where = f"{dovecot.host}:{dovecot.port}"
    assert f"✓ IMAP login as {PROGRAM_USER} at {where}" in out
    assert "✓ IMAP folder 'INBOX' opened" in out
    assert "✓ IMAP folder 'Processed' created" in out
    assert "✓ IMAP folder 'Quarantine' created" in out
    assert f"✓ SMTP login as sender@program.test at {auth_sink.host}:{auth_sink.port}" in out
    assert "✓ web port 127.0.0.1:" in out
    assert f"✓ state folder {tmp_path / 'state'} will be created" in out
    assert "✗" not in out
    assert {"Processed", "Quarantine"} <= set(dovecot.folders(PROGRAM_USER))
    # A second run finds them.
    again = check(tmp_path, dovecot, auth_sink, environ=WITH_SMTP_PASSWORD, smtp=SMTP_LOGIN)
    assert "✓ IMAP folder 'Processed' exists" in again.stdout, again.stdout
    # No secret is printed.
    for secret in (PROGRAM_PASSWORD, "smtp-password", ENVIRON["MD_TEST_SECRET"]):
        assert secret not in result.stdout + result.stderr


def test_wrong_imap_password(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> None:
    result = check(
        tmp_path, dovecot, smtp_sink, environ={**ENVIRON, "MD_TEST_IMAP_PASSWORD": "wrong-pw"}
    )
    assert result.returncode == 1, result.stdout
    where = f"{dovecot.host}:{dovecot.port}"
    assert (
        f"✗ IMAP login as {PROGRAM_USER} at {where} refused: "
        "[AUTHENTICATIONFAILED] Authentication failed. — check [inbox] username and the "
        "password in MD_TEST_IMAP_PASSWORD"
    ) in result.stdout
    assert "wrong-pw" not in result.stdout + result.stderr
    assert "checks failed." in result.stdout


def test_wrong_smtp_password(tmp_path: Path, dovecot: Dovecot, auth_sink: SmtpSink) -> None:
    result = check(
        tmp_path,
        dovecot,
        auth_sink,
        environ={**ENVIRON, "MD_TEST_SMTP_PASSWORD": "not-it"},
        smtp=SMTP_LOGIN,
    )
    assert result.returncode == 1, result.stdout
    where = f"{auth_sink.host}:{auth_sink.port}"
    assert (
        f"✗ SMTP login as sender@program.test at {where} refused: 535 5.7.8 "
        "Authentication credentials invalid — check [smtp] username and the password in "
        "MD_TEST_SMTP_PASSWORD"
    ) in result.stdout


def test_wrong_host(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> None:
    nobody = free_port()  # nothing listens there
    result = check(tmp_path, dovecot, smtp_sink, inbox={"port": nobody}, smtp={"port": free_port()})
    assert result.returncode == 1
    assert (
        f"✗ IMAP server 127.0.0.1:{nobody} cannot be reached: [Errno 111] Connection refused "
        "— check [inbox] host, port and tls"
    ) in result.stdout
    assert "✗ SMTP server 127.0.0.1:" in result.stdout
    assert "— check [smtp] host, port and tls" in result.stdout


def test_missing_folder(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> None:
    result = check(tmp_path, dovecot, smtp_sink, inbox={"folder": "Requests"})
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if line.startswith("✗"))
    assert line.startswith(
        f"✗ IMAP folder 'Requests' at {dovecot.host}:{dovecot.port} cannot be opened: "
        "select failed: Mailbox doesn't exist: Requests"
    ), line
    assert line.endswith("— check [inbox] folder")


def test_missing_folder_that_may_not_be_created(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    result = check(tmp_path, dovecot, smtp_sink, inbox={"create_folders": False})
    assert result.returncode == 1
    assert (
        "✗ IMAP folder 'Processed' does not exist — create it, set [inbox] processed_folder "
        "to a folder that exists, or set [inbox] create_folders = true"
    ) in result.stdout
    assert "Processed" not in dovecot.folders(PROGRAM_USER)


def test_busy_web_port(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        result = check(tmp_path, dovecot, smtp_sink, web_port=port)
    assert result.returncode == 1
    assert (
        f"✗ web port 127.0.0.1:{port} is in use — stop the other program or set [web] port"
    ) in result.stdout
    assert "✓ IMAP login" in result.stdout  # the other checks still ran


def test_state_folder_that_cannot_be(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = check(tmp_path, dovecot, smtp_sink, state={"path": str(blocker / "state" / "md.db")})
    assert result.returncode == 1
    assert (
        f"✗ state folder {blocker / 'state'} does not exist — create it "
        f"(mkdir -p {blocker / 'state'}) or set [state] path"
    ) in result.stdout


def test_plain_check_judges_without_connecting(tmp_path: Path) -> None:
    """No IMAP user, port 0: caught by plain check-config, before any connection."""
    base = {
        "program": {
            "name": "P",
            "address": "p@program.test",
            "coordinator": "c@program.test",
            "secret_env": "MD_TEST_SECRET",
        }
    }
    cases = {
        '[inbox] username: is required with kind = "imap"': {
            "inbox": {"kind": "imap", "port": 993}
        },
        "[inbox] port: must be the server's port number, 1–65535, got 0": {
            "inbox": {"kind": "imap", "username": "u", "port": 0}
        },
    }
    from tests.desk import toml_text

    for expected, tables in cases.items():
        path = tmp_path / "config.toml"
        path.write_text(toml_text({**base, **tables}), "utf-8")
        result = subprocess.run(
            [sys.executable, "-m", "mentordesk.cli", "check-config", "--config", str(path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **ENVIRON},
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, result.stdout
        assert expected in result.stderr
