"""A mentordesk daemon wired to the real test servers, for end-to-end tests.

``Desk`` writes a config pointing at the test Dovecot (IMAP) and SmtpSink (SMTP), runs
the daemon as a task in the test's event loop, and gives the tests the two things a
person has: a way to send mail to the program address, and what came back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from mentordesk.config import Config, load_config
from mentordesk.daemon import Daemon
from mentordesk.state.store import Store

from .servers import (
    PROGRAM_PASSWORD,
    PROGRAM_USER,
    Dovecot,
    ReceivedMessage,
    SmtpSink,
    free_port,
)

PROGRAM = PROGRAM_USER
COORDINATOR = "coord@program.test"
SECRET = "test-secret-0123456789abcdef"
POLL_S = 0.02


def mail(
    sender: str,
    subject: str,
    body: str = "",
    *,
    html: str | None = None,
    to: str = PROGRAM,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    headers: Mapping[str, str] | None = None,
    charset: str = "utf-8",
) -> bytes:
    """One email as a mail client would send it."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message_id or make_msgid(domain="client.test")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = references or in_reply_to
    for name, value in (headers or {}).items():
        msg[name] = value
    if html is not None and not body:
        msg.set_content(html, subtype="html", charset=charset)
    else:
        msg.set_content(body, charset=charset)
    return msg.as_bytes()


def config_text(
    root: Path, dovecot: Dovecot, sink: SmtpSink, web_port: int, **tables: Mapping[str, Any]
) -> str:
    """A config for this test: real servers, state under ``root``, fast retries."""
    base: dict[str, dict[str, Any]] = {
        "program": {
            "name": "Test Mentors",
            "address": PROGRAM,
            "coordinator": COORDINATOR,
            "escalation": ["boss@program.test"],
            "timezone": "America/New_York",
            "base_url": f"http://127.0.0.1:{web_port}",
            "secret_env": "MD_TEST_SECRET",
        },
        "inbox": {
            "kind": "imap",
            "host": dovecot.host,
            "port": dovecot.port,
            "tls": "none",
            "username": PROGRAM_USER,
            "password_env": "MD_TEST_IMAP_PASSWORD",
            "poll_interval": "5s",
            "max_attempts": 2,
        },
        "smtp": {
            "kind": "smtp",
            "host": sink.host,
            "port": sink.port,
            "tls": "none",
            "retry_after": "0.05s",
            "max_retry_after": "0.2s",
            "max_attempts": 4,
            "timeout": "5s",
        },
        "state": {"path": str(root / "state" / "md.db"), "fsync": False},
        "web": {"host": "127.0.0.1", "port": web_port},
        "matching": {
            "synonyms": {"javascript": ["js"], "python": ["py"], "career advice": ["resume"]}
        },
    }
    for table, values in tables.items():
        base.setdefault(table, {}).update(values)
    return toml_text(base)


def toml_text(tables: Mapping[str, Mapping[str, Any]]) -> str:
    """Config tables as TOML text; a dict value becomes a sub-table ([matching.synonyms])."""
    lines: list[str] = []
    for table, values in tables.items():
        lines.append(f"[{table}]")
        nested = {k: v for k, v in values.items() if isinstance(v, dict)}
        for key, value in values.items():
            if key not in nested:
                lines.append(f"{key} = {_toml(value)}")
        for key, value in nested.items():
            lines.append(f"[{table}.{key}]")
            lines += [f"{_toml_key(k)} = {_toml(v)}" for k, v in value.items()]
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").isalnum() else f'"{key}"'


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


ENVIRON = {"MD_TEST_SECRET": SECRET, "MD_TEST_IMAP_PASSWORD": PROGRAM_PASSWORD}


class Desk:
    """The daemon under test plus its mailbox and the SMTP sink."""

    def __init__(self, root: Path, dovecot: Dovecot, sink: SmtpSink) -> None:
        self.root = root
        self.dovecot = dovecot
        self.sink = sink
        self.daemon: Daemon | None = None
        self._task: asyncio.Task[None] | None = None
        self.web_port = free_port()
        self.config = self.configure()

    def configure(self, **tables: Mapping[str, Any]) -> Config:
        path = self.root / "config.toml"
        text = config_text(self.root, self.dovecot, self.sink, self.web_port, **tables)
        path.write_text(text, "utf-8")
        self.config = load_config(path, environ=ENVIRON)
        return self.config

    async def start(self, daemon: Daemon | None = None) -> Daemon:
        self.daemon = daemon or Daemon(self.config)
        self._task = asyncio.create_task(self.daemon.run())
        ready = asyncio.create_task(self.daemon.ready.wait())
        done, _ = await asyncio.wait(
            {ready, self._task}, timeout=15, return_when=asyncio.FIRST_COMPLETED
        )
        if self._task in done:
            ready.cancel()
            self._task.result()  # raises what went wrong
        assert ready in done, "daemon did not start within 15 s"
        return self.daemon

    async def stop(self) -> None:
        if self.daemon is not None and self._task is not None:
            self.daemon.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout=15)
        self.daemon = None
        self._task = None

    def send(self, raw: bytes) -> None:
        """Deliver ``raw`` to the program mailbox, as the world's mail servers would."""
        self.dovecot.append(PROGRAM_USER, "INBOX", raw)

    async def replies(self, count: int, timeout_s: float = 15.0) -> list[ReceivedMessage]:
        return await self.sink.wait_for_async(count, timeout_s=timeout_s)

    async def replies_to(
        self, address: str, count: int, timeout_s: float = 15.0
    ) -> list[ReceivedMessage]:
        """Wait until ``count`` messages reached ``address``; return those."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(found := self.sink.messages_to(address)) < count:
            if asyncio.get_running_loop().time() > deadline:
                got = [m.subject for m in found]
                raise AssertionError(f"{address}: expected {count} messages, got {got}")
            await asyncio.sleep(POLL_S)
        return found

    async def mail_to(
        self, address: str, subject_part: str, timeout_s: float = 15.0, *, nth: int = 1
    ) -> ReceivedMessage:
        """Wait for the ``nth`` message to ``address`` whose subject contains
        ``subject_part`` (other mail to them, such as a digest, may come in between)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            found = [m for m in self.sink.messages_to(address) if subject_part in m.subject]
            if len(found) >= nth:
                return found[nth - 1]
            if asyncio.get_running_loop().time() > deadline:
                got = [m.subject for m in self.sink.messages_to(address)]
                raise AssertionError(f"{address}: no {subject_part!r} among {got}")
            await asyncio.sleep(POLL_S)

    async def processed(self, count: int, timeout_s: float = 15.0) -> None:
        """Wait until ``count`` messages sit in the processed folder."""
        await asyncio.to_thread(
            self.dovecot.wait_for_count, PROGRAM_USER, "Processed", count, timeout_s
        )

    async def until(self, check: Callable[[Store], Any], timeout_s: float = 15.0) -> Any:
        """Poll the stored state until ``check`` returns something truthy; return it."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            async with self.store() as store:
                result = check(store)
            if result:
                return result
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"state never satisfied {check!r}")
            await asyncio.sleep(POLL_S)

    @contextlib.asynccontextmanager
    async def store(self) -> AsyncIterator[Store]:
        """The state as a separate reader sees it (read-only, from disk)."""
        store = Store(self.config.state.path, fsync=False, read_only=True)
        try:
            yield store
        finally:
            store.close()


def text_of(message: ReceivedMessage) -> str:
    body = message.message.get_body(preferencelist=("plain",))
    assert body is not None, "no text/plain part"
    return str(body.get_content())


def html_of(message: ReceivedMessage) -> str:
    body = message.message.get_body(preferencelist=("html",))
    assert body is not None, "no text/html part"
    return str(body.get_content())
