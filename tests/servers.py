"""Real mail servers for the tests: a private Dovecot (IMAP) and an aiosmtpd sink (SMTP).

Both listen on a free loopback port, start in well under a second and are plain
objects, so sync tests, async tests and tests that run mentordesk in a subprocess
all use them the same way: point the code under test at ``host``/``port``.

    dovecot = Dovecot()
    dovecot.add_user("mentors@program.test", "secret")
    dovecot.start()
    dovecot.append("mentors@program.test", "INBOX", raw_bytes)
    ...
    dovecot.close()

Nothing here is mocked: Dovecot is the Debian ``dovecot-imapd`` binary run with a
config written to a temporary directory (see CONTRIBUTING.md, "How the test servers
start"), and the SMTP sink is aiosmtpd speaking real SMTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from imapclient import IMAPClient

DOVECOT_BINARY = "/usr/sbin/dovecot"
INSTALL_HINT = "Dovecot is not installed: run scripts/setup-tests.sh"
LOOPBACK = "127.0.0.1"

# The accounts the `dovecot` fixture creates.
PROGRAM_USER = "mentors@program.test"
PROGRAM_PASSWORD = "mentors-password"
OTHER_USER = "other@program.test"
OTHER_PASSWORD = "other-password"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    The kernel picks it; another process could take it before we bind it, so the
    servers below retry with a new port when that happens on their first start.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    condition: Callable[[], Any], *, timeout_s: float = 10.0, interval_s: float = 0.02
) -> Any:
    """Call ``condition`` until it returns something truthy; return that.

    Raises TimeoutError after ``timeout_s``. Tests use this instead of fixed sleeps.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition still false after {timeout_s:.1f} s: {condition!r}")
        time.sleep(interval_s)


async def until(
    condition: Callable[[], Any], *, timeout_s: float = 10.0, interval_s: float = 0.02
) -> Any:
    """``wait_until`` for a test on the event loop that serves what it waits for: the
    loop runs between the calls."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition still false after {timeout_s:.1f} s: {condition!r}")
        await asyncio.sleep(interval_s)


# --- Dovecot ---------------------------------------------------------------------------


def dovecot_installed() -> bool:
    return os.access(DOVECOT_BINARY, os.X_OK)


_DOVECOT_CONF = """\
# Written by tests/servers.py for one private test instance.
protocols = imap
listen = {host}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
# Test mail is disposable: skipping fsync keeps appends fast.
mail_fsync = never
mail_location = maildir:{root}/mail/%u
mail_uid = {user}
mail_gid = {group}
default_login_user = {user}
default_internal_user = {user}
default_internal_group = {group}
first_valid_uid = {first_uid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users/%u
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={root}/mail/%u
}}
# No growing delay after failed logins (Dovecot's "auth penalty"): the auth process
# skips it when it cannot reach this anvil socket, and tests log in badly on purpose.
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
# chroot needs root, and buys a test server nothing.
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class Dovecot:
    """A private Dovecot 2.3 IMAP server on 127.0.0.1 with passwd-file users.

    Users may be added before or after ``start()``. ``stop()`` then ``start()`` restarts
    it on the same port with the same mail, which is how tests simulate a server restart.
    ``close()`` stops it and deletes its directory. Helper methods (``append``,
    ``fetch_all``, ...) log in as the given user over IMAP, like any other client.
    """

    host = LOOPBACK

    def __init__(self, *, binary: str = DOVECOT_BINARY, ready_timeout_s: float = 15.0) -> None:
        if not os.access(binary, os.X_OK):
            raise RuntimeError(INSTALL_HINT)
        self.binary = binary
        self.ready_timeout_s = ready_timeout_s
        # Under /tmp rather than pytest's tmp_path: Dovecot's sockets live in base_dir and
        # a Unix socket path must stay under 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="mentordesk-dovecot-"))
        self.port = free_port()
        self._port_fixed = False  # becomes True after the first successful start
        self._passwords: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._log_offsets: dict[str, int] = {}
        self._setup_tree()

    # -- lifecycle ------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start Dovecot and return once it greets IMAP clients.

        Raises RuntimeError with the tail of Dovecot's log if it does not come up.
        """
        if self.running:
            return
        attempts = 1 if self._port_fixed else 3
        for attempt in range(attempts):
            self._write_config()
            self._spawn()
            try:
                self._wait_ready()
            except RuntimeError:
                port_taken = "Address already in use" in self._log_since_spawn()
                self._terminate(serving=False)
                if port_taken and attempt + 1 < attempts:
                    # Someone took our free port between free_port() and bind: pick another.
                    self.port = free_port()
                    continue
                raise
            self._port_fixed = True
            return

    def stop(self, *, crash: bool = False) -> None:
        """Stop Dovecot, closing every client connection; the mail stays for ``start()``.

        Clients get ``* BYE``; with ``crash=True`` every process is killed at once and
        clients just see the connection close, as when a server crashes.
        """
        self._terminate(crash=crash)

    def close(self) -> None:
        """Stop Dovecot and delete its directory."""
        self._terminate()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of Dovecot's log and of its stderr."""
        parts = []
        for name in ("dovecot.log", "dovecot.stderr"):
            path = self.root / name
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                if text:
                    parts.append(f"--- {path} ---\n" + "\n".join(text))
        return "\n".join(parts) or "(Dovecot wrote no log)"

    # -- users and mail ---------------------------------------------------------------

    def add_user(self, name: str, password: str) -> None:
        """Create (or change the password of) an IMAP user; works while running too."""
        for text in (name, password):
            if not text or any(c in text for c in ":/\n") or text.startswith("."):
                raise ValueError(f"{text!r} cannot be written to a passwd-file")
        self._passwords[name] = password
        # One passwd-file per user: Dovecot re-reads a passwd-file at most once a second,
        # so a user added to a shared file could not log in for up to a second. Written
        # then renamed so Dovecot never reads half a file.
        staging = self.root / "users" / f".{name}.new"
        staging.write_text(f"{name}:{{PLAIN}}{password}\n")
        staging.chmod(0o644)
        staging.replace(self.root / "users" / name)

    def password(self, user: str) -> str:
        return self._passwords[user]

    @contextlib.contextmanager
    def client(self, user: str) -> Iterator[IMAPClient]:
        """An IMAPClient logged in as ``user``; logged out afterwards."""
        client = IMAPClient(self.host, self.port, ssl=False, timeout=10)
        try:
            client.login(user, self._passwords[user])
            yield client
        finally:
            try:
                client.logout()
            except Exception:
                client.shutdown()

    def append(
        self, user: str, folder: str, raw: bytes, flags: tuple[bytes | str, ...] = ()
    ) -> int:
        """Store ``raw`` in ``folder`` (created if missing); return its UID."""
        with self.client(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            response = client.append(folder, raw, flags=flags)
        # b"[APPENDUID <uidvalidity> <uid>] Append completed ..."
        text = response.decode() if isinstance(response, bytes) else str(response)
        return int(text.split("]", 1)[0].split()[2])

    def fetch_all(self, user: str, folder: str) -> list[bytes]:
        """Every message in ``folder``, oldest first; [] if the folder does not exist."""
        return [data for data, _ in self._fetch(user, folder)]

    def fetch_flags(self, user: str, folder: str) -> list[tuple[bytes, ...]]:
        """The flags of every message in ``folder``, oldest first."""
        return [flags for _, flags in self._fetch(user, folder)]

    def count(self, user: str, folder: str) -> int:
        """How many messages ``folder`` holds (0 if it does not exist)."""
        with self.client(user) as client:
            if not client.folder_exists(folder):
                return 0
            status = client.folder_status(folder, [b"MESSAGES"])
        return int(status[b"MESSAGES"])

    def wait_for_count(self, user: str, folder: str, count: int, timeout_s: float = 10.0) -> None:
        """Poll until ``folder`` holds exactly ``count`` messages."""
        try:
            wait_until(
                lambda: self.count(user, folder) == count, timeout_s=timeout_s, interval_s=0.05
            )
        except TimeoutError:
            raise AssertionError(
                f"{user} {folder}: expected {count} messages, "
                f"found {self.count(user, folder)} after {timeout_s} s"
            ) from None

    def folders(self, user: str) -> list[str]:
        with self.client(user) as client:
            return sorted(str(name) for _, _, name in client.list_folders())

    def _fetch(self, user: str, folder: str) -> list[tuple[bytes, tuple[bytes, ...]]]:
        with self.client(user) as client:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            uids = sorted(client.search("ALL"))
            if not uids:
                return []
            found = client.fetch(uids, ["BODY.PEEK[]", "FLAGS"])
        return [(found[uid][b"BODY[]"], tuple(found[uid][b"FLAGS"])) for uid in uids]

    # -- internals --------------------------------------------------------------------

    def _setup_tree(self) -> None:
        # Mail processes run as an unprivileged user and must reach root/mail.
        self.root.chmod(0o755)
        mail = self.root / "mail"
        mail.mkdir()
        if os.geteuid() == 0:
            uid, gid = self._ids()
            os.chown(mail, uid, gid)
        (self.root / "users").mkdir()
        (self.root / "users").chmod(0o755)

    @staticmethod
    def _ids() -> tuple[int, int]:
        return pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid

    def _write_config(self) -> None:
        if os.geteuid() == 0:
            # We run as root in CI; Dovecot refuses to run mail processes as root.
            user, group = "nobody", "nogroup"
            uid = self._ids()[0]
        else:
            # Unprivileged: every Dovecot process runs as the current user.
            uid = os.getuid()
            user, group = pwd.getpwuid(uid).pw_name, grp.getgrgid(os.getgid()).gr_name
        text = _DOVECOT_CONF.format(
            host=self.host,
            port=self.port,
            root=self.root,
            user=user,
            group=group,
            first_uid=min(uid, 500),
        )
        text = self._adjust_config(text)
        (self.root / "dovecot.conf").write_text(text)

    def _adjust_config(self, text: str) -> str:
        """Subclasses change the written config here (TLS, OAuth2: tests/oauth_servers.py)."""
        return text

    def _log_since_spawn(self) -> str:
        """What Dovecot logged since the last ``_spawn()``."""
        text = []
        for name, offset in self._log_offsets.items():
            with contextlib.suppress(FileNotFoundError), (self.root / name).open("rb") as log:
                log.seek(offset)
                text.append(log.read().decode(errors="replace"))
        return "".join(text)

    def _spawn(self) -> None:
        self._log_offsets = {
            name: (self.root / name).stat().st_size if (self.root / name).exists() else 0
            for name in ("dovecot.log", "dovecot.stderr")
        }
        stderr = (self.root / "dovecot.stderr").open("ab")
        try:
            # A session of its own so stop() can reach the auth/login/imap children too.
            self._proc = subprocess.Popen(
                [self.binary, "-F", "-c", str(self.root / "dovecot.conf")],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        finally:
            stderr.close()
        # If the test process dies without close(), do not leave Dovecot behind.
        self._finalizer = weakref.finalize(self, _kill_group, self._proc.pid)

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.ready_timeout_s
        last_error = "no attempt yet"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"Dovecot exited with status {self._proc.returncode} while starting:\n"
                    + self.log_tail()
                )
            if "Fatal:" in self._log_since_spawn():
                # A service that cannot start is retried with growing pauses; say why now.
                raise RuntimeError(f"Dovecot failed to start:\n{self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    greeting = sock.recv(512)
                if greeting.startswith(b"* OK"):
                    return
                last_error = f"unexpected greeting {greeting!r}"
            except OSError as exc:
                last_error = str(exc)
            time.sleep(0.02)
        raise RuntimeError(
            f"Dovecot did not greet on {self.host}:{self.port} within "
            f"{self.ready_timeout_s:.0f} s ({last_error}):\n" + self.log_tail()
        )

    def _terminate(self, *, crash: bool = False, serving: bool = True) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if crash:
            _kill_group(proc.pid)
        # SIGTERM to the whole process group: clients get "* BYE" and the master usually
        # reaps everything within milliseconds. Now and then the master waits a full
        # second on a child for no reason that matters here; then SIGKILL finishes the job
        # (its orphans are reaped by init).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=0.3)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if not serving:
            return  # it never listened (or someone else holds the port)
        # A restart must be able to bind the same port: wait until nothing accepts on it;
        # a killed login process may hold the listener a moment longer than the master.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
            except OSError:
                return
            time.sleep(0.01)
        raise RuntimeError(f"{self.host}:{self.port} still accepts connections after stop")


# --- SMTP sink -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the sink accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    message: EmailMessage
    login: str | None = None  # the AUTH user, when the client authenticated

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))


_parser = email.parser.BytesParser(policy=email.policy.default)


class _SinkHandler:
    """aiosmtpd handler hooks; runs on the controller's thread."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        refusal = self.sink._refusal_for(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        failure = self.sink._take_failure()
        if failure is not None:
            return failure
        raw = envelope.original_content or b""
        login = session.auth_data if isinstance(session.auth_data, str) else None
        self.sink._record(
            ReceivedMessage(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=raw,
                message=_parser.parsebytes(raw),
                login=login,
            )
        )
        return "250 2.0.0 Message accepted"


class SmtpSink:
    """An SMTP server on 127.0.0.1 that keeps every message it accepts.

    Failures are programmable: ``fail_next`` answers the next DATA commands with a
    4xx/5xx code, ``refuse_recipient`` refuses RCPT TO for an address. With
    ``credentials`` it offers AUTH PLAIN/LOGIN without TLS (loopback only) and checks
    them; without, it offers no AUTH. ``stop()``/``start()`` keep port and messages.
    """

    host = LOOPBACK

    def __init__(self, *, credentials: Mapping[str, str] | None = None) -> None:
        self.port = free_port()
        self.credentials = dict(credentials) if credentials is not None else None
        self._lock = threading.Lock()
        self._messages: list[ReceivedMessage] = []
        self._failures: list[str] = []
        self._refused: dict[str, str] = {}
        self._controller: Controller | None = None
        self._port_fixed = False

    # -- lifecycle ------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        if self._controller is not None:
            return
        attempts = 1 if self._port_fixed else 3
        for attempt in range(attempts):
            controller = self._make_controller()
            try:
                controller.start()
            except OSError:
                if attempt + 1 < attempts:
                    self.port = free_port()
                    continue
                raise
            self._controller = controller
            self._port_fixed = True
            return

    def stop(self) -> None:
        """Stop listening and drop open connections; recorded messages stay."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    close = stop

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- programming failures ----------------------------------------------------------

    def fail_next(self, n: int = 1, code: int = 451, text: str = "4.3.0 Try again later") -> None:
        """Answer the next ``n`` DATA commands with ``code text`` instead of accepting."""
        with self._lock:
            self._failures.extend([f"{code} {text}"] * n)

    def refuse_recipient(
        self, addr: str, code: int = 550, text: str = "5.1.1 No such user here"
    ) -> None:
        """Answer RCPT TO:<addr> with ``code text`` from now on."""
        with self._lock:
            self._refused[addr.lower()] = f"{code} {text}"

    def accept_recipient(self, addr: str) -> None:
        """Undo ``refuse_recipient``."""
        with self._lock:
            self._refused.pop(addr.lower(), None)

    # -- what arrived --------------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        """A snapshot of every accepted message, in arrival order."""
        with self._lock:
            return list(self._messages)

    def messages_to(self, addr: str) -> list[ReceivedMessage]:
        wanted = addr.lower()
        return [m for m in self.messages if wanted in (r.lower() for r in m.rcpt_tos)]

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[ReceivedMessage]:
        """Poll until at least ``count`` messages arrived; return all of them.

        Raises AssertionError describing what did arrive. Blocks: from a coroutine
        whose event loop also runs the sender, use ``await wait_for_async(...)``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            messages = self.messages
            if len(messages) >= count or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        return self._check_count(messages, count, timeout_s)

    async def wait_for_async(self, count: int, timeout_s: float = 10.0) -> list[ReceivedMessage]:
        """``wait_for`` for coroutines: yields to the event loop while polling."""
        deadline = time.monotonic() + timeout_s
        while True:
            messages = self.messages
            if len(messages) >= count or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.02)
        return self._check_count(messages, count, timeout_s)

    def _check_count(
        self, messages: list[ReceivedMessage], count: int, timeout_s: float
    ) -> list[ReceivedMessage]:
        if len(messages) >= count:
            return messages
        arrived = "\n".join(
            f"  {m.mail_from} -> {', '.join(m.rcpt_tos)}: {m.subject!r}" for m in messages
        )
        raise AssertionError(
            f"expected {count} messages within {timeout_s} s, got {len(messages)}"
            + (f":\n{arrived}" if messages else "")
        )

    # -- called by the handler on the controller's thread ---------------------------------

    def _make_controller(self) -> Controller:
        kwargs: dict[str, Any] = {}
        if self.credentials is not None:
            # Loopback test server: AUTH without TLS is what we want. auth_required stays
            # False because aiosmtpd warns when AUTH is required without TLS.
            kwargs.update(auth_require_tls=False, authenticator=self._authenticate)
        return Controller(
            _SinkHandler(self), hostname=self.host, port=self.port, ready_timeout=10, **kwargs
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self.credentials is None:
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = self.credentials.get(login) == password
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

    def _refusal_for(self, address: str) -> str | None:
        with self._lock:
            return self._refused.get(address.lower())

    def _take_failure(self) -> str | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def _record(self, message: ReceivedMessage) -> None:
        with self._lock:
            self._messages.append(message)
