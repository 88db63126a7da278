"""``mentordesk run`` as a service: the log, systemd's notify protocol, clear start errors,
the unit file, ``--version``, ``init`` and ``status`` on a missing state.

The daemon runs as its own process (``python -m mentordesk.cli run``) against the real
Dovecot and SMTP sink, as systemd would start it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mentordesk import __version__
from mentordesk.config import load_config
from mentordesk.state.store import Store
from tests.desk import ENVIRON, SECRET, config_text, mail
from tests.servers import PROGRAM_PASSWORD, PROGRAM_USER, Dovecot, SmtpSink, free_port
from tests.test_claims import REQUEST, TEAM

ROOT = Path(__file__).resolve().parent.parent
CLI = (sys.executable, "-m", "mentordesk.cli")


def environ(**more: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **ENVIRON, **more}


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET; a thread reads it."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="md-notify-")  # short: paths < 108 bytes
        self.address = os.path.join(self.folder, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.address)
        self.sock.settimeout(0.1)
        self.received: list[str] = []
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                self.received.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def wait_for(self, state: str, count: int = 1, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.received.count(state) < count:
            assert time.monotonic() < deadline, f"no {count}× {state}: {self.received}"
            time.sleep(0.05)

    def close(self) -> None:
        self._closed.set()
        self._reader.join()
        self.sock.close()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    try:
        yield sock
    finally:
        sock.close()


def healthz(port: int) -> tuple[int, dict[str, str]]:
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with direct.open(f"http://127.0.0.1:{port}/healthz", timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def write_config(tmp_path: Path, dovecot: Dovecot, sink: SmtpSink) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(config_text(tmp_path, dovecot, sink, free_port()), "utf-8")
    return path


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_run_logs_what_happened_and_talks_to_systemd(
    tmp_path: Path,
    dovecot: Dovecot,
    smtp_sink: SmtpSink,
    notify_socket: NotifySocket,
    log_format: str,
) -> None:
    config_path = write_config(tmp_path, dovecot, smtp_sink)
    store = Store(load_config(config_path, environ=ENVIRON).state.path, fsync=False)
    for mentor in TEAM:
        store.save_mentor(mentor)
    store.close()
    for n in range(2):
        dovecot.append(
            PROGRAM_USER,
            "INBOX",
            mail(f"Mentee {n} <mentee{n}@example.net>", "Mentor request", REQUEST),
        )
    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log_file:
        daemon = subprocess.Popen(
            [*CLI, "--log-format", log_format, "run", "--config", str(config_path)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=environ(NOTIFY_SOCKET=notify_socket.address, WATCHDOG_USEC="400000"),
        )
        try:
            notify_socket.wait_for("READY=1")
            # Every half WATCHDOG_USEC while it runs.
            notify_socket.wait_for("WATCHDOG=1", count=3, timeout_s=30)
            assert notify_socket.received[0] == "READY=1"
            dovecot.wait_for_count(PROGRAM_USER, "Processed", 2, timeout_s=60)
            # Two acknowledgements and the invitations: wait until the outbox is quiet.
            sent = smtp_sink.wait_for(2, timeout_s=60)
            previous = -1
            while previous != len(sent := smtp_sink.messages):
                previous = len(sent)
                time.sleep(1.0)
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=60) == 0
            notify_socket.wait_for("STOPPING=1", timeout_s=5)
            assert set(notify_socket.received) == {"READY=1", "WATCHDOG=1", "STOPPING=1"}
            assert notify_socket.received.count("STOPPING=1") == 1
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
    text = log_path.read_text()
    if log_format == "json":
        records = [json.loads(line) for line in text.splitlines()]
        lines = [f"{r['level']} {r['logger']}: {r['message']}" for r in records]
        assert all("time" in r for r in records)
    else:
        lines = [line.split(" ", 2)[2] for line in text.splitlines() if line[:2] == "20"]
    assert lines[0].startswith(f"INFO mentordesk: mentordesk {__version__} starting: Test Mentors")
    assert f"INFO mentordesk: mentordesk running (pid {daemon.pid})" in lines
    assert lines[-2] == "INFO mentordesk: mentordesk stopping (SIGTERM)"
    assert lines[-1] == "INFO mentordesk: mentordesk stopped"
    handled = [line for line in lines if re.search(r"activity: message imap:\S+: ", line)]
    assert sorted(re.sub(r"imap:\S+:", "KEY:", line) for line in handled) == [
        "INFO mentordesk.activity: message KEY: request MD-0001 (done)",
        "INFO mentordesk.activity: message KEY: request MD-0002 (done)",
    ]
    sent_lines = [line for line in lines if "activity: sent " in line]
    assert len(sent_lines) == len(sent), sent_lines
    for message in sent:
        # The reference (or "-" for mail about no request, like the end of a term).
        number = re.search(r"\[(MD-\d{4})\]", message.subject)
        reference = number.group(1) if number else "-"
        assert any(f" {reference} to {message.rcpt_tos[0]} " in line for line in sent_lines), (
            message.subject,
            sent_lines,
        )
    assert not [line for line in lines if line.startswith("INFO apscheduler")]
    for secret in (PROGRAM_PASSWORD, SECRET):
        assert secret not in text


def test_a_busy_web_port_is_one_clear_line(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        path = tmp_path / "config.toml"
        path.write_text(config_text(tmp_path, dovecot, smtp_sink, port), "utf-8")
        result = subprocess.run(
            [*CLI, "run", "--config", str(path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=environ(),
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"mentordesk: web port 127.0.0.1:{port} is in use — stop the other program or set "
        "[web] port"
    )
    assert "Traceback" not in result.stderr


def test_an_unreachable_mailbox_at_start_is_said_once_and_retried(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    dovecot.stop()
    path = write_config(tmp_path, dovecot, smtp_sink)
    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log_file:
        daemon = subprocess.Popen(
            [*CLI, "run", "--config", str(path)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=environ(),
        )
        try:
            deadline = time.monotonic() + 60
            while "cannot reach the mailbox" not in log_path.read_text():
                assert daemon.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            status, body = healthz(load_config(path, environ=ENVIRON).web.port)
            assert status == 503 and "IMAP 127.0.0.1:" in body["inbox"], body
            dovecot.start()
            dovecot.append(PROGRAM_USER, "INBOX", mail("M <m@example.net>", "Hi", REQUEST))
            dovecot.wait_for_count(PROGRAM_USER, "Processed", 1, timeout_s=60)
            assert healthz(load_config(path, environ=ENVIRON).web.port)[0] == 200
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=60) == 0
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
    text = log_path.read_text()
    [line] = [line for line in text.splitlines() if "cannot reach the mailbox" in line]
    assert " ERROR mentordesk.daemon: cannot reach the mailbox: IMAP 127.0.0.1:" in line
    assert "mentordesk keeps trying; /healthz answers 503 until it can" in line
    assert "Traceback" not in text
    assert "mailbox connected" in text


def test_status_on_a_missing_state_says_so(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        "[program]\nname = 'P'\naddress = 'p@program.test'\ncoordinator = 'c@program.test'\n"
        "secret_env = 'MD_TEST_SECRET'\n[state]\npath = 'stat/md.db'\n",
        "utf-8",
    )
    for command in (["status"], ["backup", str(tmp_path / "b")], ["export", "--csv", "x"]):
        args = [*CLI, *command, "--config", str(path)]
        result = subprocess.run(
            args, capture_output=True, text=True, cwd=ROOT, env=environ(), timeout=60, check=False
        )
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert f"mentordesk: no state at {tmp_path / 'stat' / 'md.db'} — check [state] path" in (
            result.stderr
        )
        assert result.stdout == ""
    assert not (tmp_path / "stat").exists()  # nothing was created by looking


def test_version_and_init(tmp_path: Path) -> None:
    version = subprocess.run(
        [*CLI, "--version"], capture_output=True, text=True, cwd=ROOT, env=environ(), check=True
    )
    assert version.stdout.strip() == f"mentordesk {__version__}"
    target = tmp_path / "etc" / "mentordesk"
    done = subprocess.run(
        [*CLI, "init", str(target)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environ(),
        check=True,
    )
    assert f"Wrote {target / 'config.toml'}" in done.stdout
    written = (target / "config.toml").read_text("utf-8")
    assert written == (ROOT / "config.toml").read_text("utf-8")
    assert written.startswith("# mentordesk configuration")
    again = subprocess.run(
        [*CLI, "init", str(target)], capture_output=True, text=True, cwd=ROOT, env=environ()
    )
    assert again.returncode == 2
    assert "exists already; nothing was written" in again.stderr
    # What init wrote is a config mentordesk accepts as it is.
    checked = subprocess.run(
        [*CLI, "check-config", "--config", str(target / "config.toml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environ(MENTORDESK_SECRET="s" * 32),
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_the_service_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: run scripts/setup-tests.sh (Debian: systemd)"
    unit = (ROOT / "contrib" / "mentordesk.service").read_text("utf-8")
    assert "Type=notify" in unit and "WatchdogSec=" in unit and "DynamicUser=yes" in unit
    assert "StateDirectory=mentordesk" in unit and "ProtectSystem=strict" in unit
    # verify also checks that the program exists: point it at this checkout's mentordesk.
    program = Path(sys.executable).parent / "mentordesk"
    assert program.exists(), f"{program} missing: install mentordesk into the venv"
    (tmp_path / "mentordesk.service").write_text(
        unit.replace("/usr/local/bin/mentordesk", str(program)), "utf-8"
    )
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "mentordesk.service")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Unknown or misspelt keys are only warnings: any output at all fails the test.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
