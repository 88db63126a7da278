"""The inbox reader is supervised (issue 14, item 3).

Whatever goes wrong while mail is read, the reader logs it, leaves the message in the
inbox (or quarantines it, when the message itself is at fault), and reads on after a
back-off; ``/healthz`` says so meanwhile. Temporary trouble — no file descriptors left,
the state not writable — never counts toward quarantine: good mail is answered once the
trouble is over.

The first test starves a real child daemon of file descriptors (its RLIMIT_NOFILE is
lowered from outside with ``prlimit``, then raised again); the others inject failures
at the seams (the coordinator, the mail gate, the mailbox) of a daemon in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mentordesk.errors import StoreError
from mentordesk.flows.router import Coordinator
from mentordesk.inbox.imap import ImapSource
from mentordesk.mailer.outbox import Postman

from .child import Child, child_daemon
from .desk import COORDINATOR, POLL_S, Desk, mail, text_of
from .servers import PROGRAM_USER, Dovecot, SmtpSink

pytestmark = pytest.mark.dovecot

ADA = "Ada Lovelace <ada@example.com>"
ENROLL_ADA = (
    "Name: Ada Lovelace\nSkills: Python\nTimezone: Berlin\n"
    "Availability: Tue 18:00-20:00\nCapacity: 2\n"
)
MARKER = "marker@example.com"


def marker(n: int = 0) -> bytes:
    """A message with exactly one answer: when it comes, the reader is reading."""
    return mail(f"Marker <{MARKER}>", "pause", f"marker {n}")


async def health(http: aiohttp.ClientSession, desk: Desk) -> tuple[int, dict[str, Any]]:
    async with http.get(f"http://127.0.0.1:{desk.web_port}/healthz") as response:
        return response.status, await response.json()


async def health_until(
    http: aiohttp.ClientSession, desk: Desk, status: int, words: str = "", timeout_s: float = 20
) -> dict[str, Any]:
    """Poll /healthz until it answers ``status`` with ``words`` in its body."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        code, body = await health(http, desk)
        if code == status and words in str(body):
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"/healthz never said {status} {words!r}; last: {code} {body}")
        await asyncio.sleep(POLL_S)


def quarantined(desk: Desk) -> int:
    return desk.dovecot.count(PROGRAM_USER, "Quarantine")


# --- a child daemon without file descriptors --------------------------------------------


async def log_count(child: Child, words: str, count: int, timeout_s: float = 30) -> None:
    """Wait until ``words`` appears on at least ``count`` lines of the child's log."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (found := sum(words in line for line in child.log().splitlines())) < count:
        if child.proc.poll() is not None or asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"{words!r} on {found} log lines, expected {count}:\n{child.log()[-4000:]}"
            )
        await asyncio.sleep(POLL_S)


async def test_fd_exhaustion_in_a_child_daemon_then_recovery(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    desk = Desk(tmp_path, dovecot, smtp_sink)
    desk.configure(inbox={"poll_interval": "1s"})  # max_attempts stays 2
    with child_daemon(desk) as child:
        # One connection, opened before the pressure and kept alive: the child cannot
        # accept a new one while it has no descriptor left.
        connector = aiohttp.TCPConnector(limit=1, keepalive_timeout=60)
        async with aiohttp.ClientSession(connector=connector) as http:
            deadline = asyncio.get_running_loop().time() + 20
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    if (await health(http, desk))[0] == 200:
                        break
                assert child.proc.poll() is None, child.log()
                assert asyncio.get_running_loop().time() < deadline, child.log()
                await asyncio.sleep(POLL_S)
            desk.send(marker(1))
            await desk.replies_to(MARKER, 1)  # mailbox and relay connected, templates warm

            limit = child.fd_limit()
            # Below every descriptor it holds (0-2 are its stdio): each new one — open(),
            # socket(), accept() — fails with EMFILE, while poll() on a few still works.
            child.set_fd_limit(3)
            try:
                desk.send(mail(ADA, "Mentor enrollment", ENROLL_ADA, message_id="<fd@client.test>"))
                # Tried again and again (more than [inbox] max_attempts = 2 times) while
                # the templates for its answer cannot be opened...
                await log_count(child, "<fd@client.test>", 4)
                body = await health_until(http, desk, 503, "Too many open files")
                assert "inbox" in body
            finally:
                child.set_fd_limit(limit)
            # ...and answered once the descriptors are back; nothing quarantined.
            [answer] = await desk.replies_to("ada@example.com", 1, timeout_s=30)
            assert "Ada" in text_of(answer)
            desk.send(marker(2))
            await desk.replies_to(MARKER, 2, timeout_s=30)  # the reader reads on
            await health_until(http, desk, 200, "ok")
            assert quarantined(desk) == 0
            assert desk.sink.messages_to(COORDINATOR) == []
            assert len(desk.sink.messages_to("ada@example.com")) == 1
    async with desk.store() as store:
        assert store.messages("quarantined") == []
        [record] = [m for m in store.messages() if m["message_id"] == "<fd@client.test>"]
        assert record["status"] == "done" and record["attempts"] == 0


# --- failures injected at the seams of a daemon in this process ---------------------------


@pytest.mark.parametrize(
    ("trouble", "shown"),
    [
        (OSError(errno.EMFILE, "Too many open files"), "OSError: Too many open files"),
        (
            StoreError("could not write the state journal (No space left on device)"),
            "No space left on device",
        ),
    ],
    ids=["emfile", "store"],
)
async def test_temporary_trouble_never_counts_toward_quarantine(
    desk: Desk,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    trouble: Exception,
    shown: str,
) -> None:
    pressure = threading.Event()
    tries: list[str] = []
    real = Coordinator._dispatch

    def under_pressure(self: Coordinator, msg: Any, now: Any) -> Any:
        if pressure.is_set():
            tries.append(msg.message_id)
            raise trouble
        return real(self, msg, now)

    monkeypatch.setattr(Coordinator, "_dispatch", under_pressure)
    desk.configure(inbox={"poll_interval": "1s"})
    await desk.start()
    pressure.set()
    desk.send(mail(ADA, "Mentor enrollment", ENROLL_ADA))
    deadline = asyncio.get_running_loop().time() + 20
    while len(tries) < 4:  # more than [inbox] max_attempts = 2
        assert asyncio.get_running_loop().time() < deadline, tries
        await asyncio.sleep(POLL_S)
    body = await health_until(http, desk, 503, shown)
    assert "inbox" in body
    pressure.clear()
    [answer] = await desk.replies_to("ada@example.com", 1)
    assert "Ada" in text_of(answer)
    await health_until(http, desk, 200)
    assert (await health(http, desk))[1] == {"status": "ok"}
    assert quarantined(desk) == 0
    async with desk.store() as store:
        assert store.messages("quarantined") == []
        assert [m["attempts"] for m in store.messages()] == [0]


async def test_a_failing_quarantine_notice_still_quarantines_and_the_reader_reads_on(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run: the message failed, then so did the coordinator's notice about it,
    # and that exception ended the reader.
    real_dispatch = Coordinator._dispatch
    real_tell = Postman.tell_coordinator

    def fragile(self: Coordinator, msg: Any, now: Any) -> Any:
        if "poison" in msg.subject:
            raise RuntimeError("cannot handle this one")
        return real_dispatch(self, msg, now)

    def notice_fails(self: Postman, reason: str, *args: Any, **kwargs: Any) -> Any:
        if reason == "quarantined" and kwargs.get("msg") is not None:
            raise RuntimeError("the notice cannot be rendered")  # the message breaks it
        return real_tell(self, reason, *args, **kwargs)

    monkeypatch.setattr(Coordinator, "_dispatch", fragile)
    monkeypatch.setattr(Postman, "tell_coordinator", notice_fails)
    desk.configure(inbox={"poll_interval": "1s"})
    await desk.start()
    desk.send(mail("X <x@example.com>", "mentor request poison", "Skills: python"))
    await asyncio.to_thread(desk.dovecot.wait_for_count, PROGRAM_USER, "Quarantine", 1, 30)
    desk.send(marker())
    await desk.replies_to(MARKER, 1)
    [notice] = await desk.replies_to(COORDINATOR, 1)  # a plainer one, with the original
    assert "cannot handle this one" in text_of(notice)
    assert "the notice cannot be rendered" in text_of(notice)
    [original] = notice.message.iter_attachments()
    assert b"poison" in original.get_content()
    async with desk.store() as store:
        [record] = store.messages("quarantined")
        assert record["attempts"] == 2
        quarantines = [e for e in store.audit_log() if e["event"] == "quarantined"]
        assert len(quarantines) == 1


async def test_the_reader_restarts_after_any_exception_and_health_shows_it(
    desk: Desk, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = threading.Event()
    real = ImapSource.fetch

    def buggy(self: ImapSource, limit: int) -> Any:
        if broken.is_set():
            raise KeyError("a bug in the mailbox code")
        return real(self, limit)

    monkeypatch.setattr(ImapSource, "fetch", buggy)
    desk.configure(inbox={"poll_interval": "1s"})
    await desk.start()
    broken.set()
    desk.send(marker(1))
    body = await health_until(http, desk, 503, "KeyError")
    assert "inbox" in body
    assert desk.sink.messages == []
    broken.clear()
    await desk.replies_to(MARKER, 1)
    await health_until(http, desk, 200)
    desk.send(marker(2))
    await desk.replies_to(MARKER, 2)
