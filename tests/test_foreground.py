"""Pages first (foreground.py): work nobody waits for pauses while a page is served.

Each part of the wiring is checked where it lives: the web's middleware counts the page
it serves, the writer runs deferred jobs (a claim's emails and booking) as background
work and the jobs someone waits for not, the mail gate makes way before each email it
composes, and the drafts written ahead of the sender make way too. And the interpreter's
turns are short while someone holds them, long again after (the web's part of that is
in test_web_hardening.py)."""

from __future__ import annotations

import asyncio
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from mentordesk import foreground
from mentordesk.mailer.drafts import DraftWriter
from mentordesk.mailer.outbox import Postman
from mentordesk.state.store import Store, StoreWriter
from mentordesk.web_guard import WEB_LIMITS, ConnectionGuard

from .test_drafts import RENDERER, ack_context
from .test_outbox import NOW, PROGRAM

_BOUNDARY = re.compile(rb"={15}\d+==")


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The threads that paused, one entry a pause (nobody sleeps)."""
    paused: list[str] = []
    monkeypatch.setattr(
        foreground, "_pause", lambda seconds: paused.append(threading.current_thread().name)
    )
    yield paused


def test_background_work_pauses_only_while_a_page_is_served(pauses: list[str]) -> None:
    assert not foreground.make_way()  # no page, foreground
    with foreground.serving():
        assert foreground.pages_served() == 1
        assert not foreground.make_way()  # a page, but this is not background work
        with foreground.background():
            with foreground.background():  # nests
                assert foreground.make_way()
            assert foreground.in_background()
        assert not foreground.in_background()
    with foreground.background():
        assert not foreground.make_way()  # background, but no page
    assert foreground.pages_served() == 0
    assert len(pauses) == 1


@pytest.fixture
def long_turns() -> Iterator[float]:
    """The interpreter's default switch interval (5 ms) for the test, put back after."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield 0.005
    sys.setswitchinterval(before)


def test_turns_are_short_only_while_someone_waits_on_them(long_turns: float) -> None:
    """Whoever holds short turns (the web while someone is connected, a compaction from
    its own thread) gets them; the long turn comes back only once nobody holds them, in
    whichever order they let go."""
    with foreground.short_turns():
        assert sys.getswitchinterval() == foreground.SHORT_TURN_S
    assert sys.getswitchinterval() == long_turns
    held = threading.Event()
    web_gone = threading.Event()
    seen: list[float] = []

    def compaction() -> None:
        with foreground.short_turns():
            held.set()
            web_gone.wait(5)
            seen.append(sys.getswitchinterval())  # the web let go; this has not

    other = threading.Thread(target=compaction)
    foreground.hold_short_turns()
    other.start()
    held.wait(5)
    foreground.release_short_turns()
    web_gone.set()
    other.join(5)
    assert seen == [foreground.SHORT_TURN_S]
    assert sys.getswitchinterval() == long_turns
    with pytest.raises(RuntimeError), foreground.short_turns():
        raise RuntimeError("the compaction failed")
    assert sys.getswitchinterval() == long_turns  # given back after a failure too


def test_a_failing_page_is_no_longer_counted() -> None:
    with pytest.raises(RuntimeError), foreground.serving():
        raise RuntimeError("the handler failed")
    assert foreground.pages_served() == 0


async def test_the_web_counts_each_page_while_it_is_served() -> None:
    seen: list[int] = []
    guard = ConnectionGuard(WEB_LIMITS)

    async def page(request: web.Request) -> web.Response:
        seen.append(foreground.pages_served())
        await asyncio.sleep(0)
        if request.path == "/broken":
            raise web.HTTPInternalServerError()
        return web.Response(text="ok")

    app = web.Application(middlewares=[guard.middleware])
    app.router.add_get("/", page)
    app.router.add_get("/broken", page)
    async with TestClient(TestServer(app)) as client:
        answers = await asyncio.gather(*(client.get(p) for p in ("/", "/", "/broken")))
        assert sorted(a.status for a in answers) == [200, 200, 500]
    assert len(seen) == 3 and min(seen) >= 1  # each page counted while it was served
    assert foreground.pages_served() == 0  # each one counted off, the failed one too


async def test_deferred_jobs_are_background_work_and_asked_ones_are_not(
    tmp_path: Path,
) -> None:
    writer = StoreWriter(lambda: Store(tmp_path / "s.json", fsync=False))
    await writer.start()
    try:
        asked = await writer.call(foreground.in_background)
        for_page = await writer.for_page(foreground.in_background)
        deferred = await writer.defer(foreground.in_background)
        after = await writer.call(foreground.in_background)
    finally:
        await writer.close()
    assert (asked, for_page, deferred, after) == (False, False, True, False)


def test_the_mail_gate_makes_way_before_each_email_of_background_work(
    tmp_path: Path, pauses: list[str]
) -> None:
    store = Store(tmp_path / "s.json", fsync=False)
    postman = Postman(PROGRAM, store, RENDERER)

    def three_emails() -> None:
        with store.transaction():
            for n in range(3):
                postman.send(
                    "request_ack", to=f"ada{n}@example.com", now=NOW, context=ack_context()
                )

    with foreground.serving():
        three_emails()  # a job someone waits for: no pause
        assert pauses == []
        with foreground.background():
            three_emails()
    assert len(pauses) == 3
    assert len(store.outbox()) == 6  # paused, not skipped
    store.close()


async def test_drafts_written_ahead_make_way_and_those_on_the_loop_do_not(
    tmp_path: Path, pauses: list[str]
) -> None:
    store = Store(tmp_path / "s.json", fsync=False)
    with store.transaction():
        Postman(PROGRAM, store, RENDERER).send(
            "request_ack", to="ada@example.com", now=NOW, context=ack_context()
        )
    [doc] = store.outbox()
    store.close()
    writer = DraftWriter(RENDERER, PROGRAM)
    try:
        with foreground.serving():
            now = await writer.bytes_of(doc["draft"])
            assert pauses == []
            ahead = await writer.bytes_of(doc["draft"], busy=True)
    finally:
        writer.close()
    assert len(pauses) == 1 and pauses[0].startswith("drafts")
    # The same email either way (but for the multipart boundary, random each time).
    assert _BOUNDARY.sub(b"B", ahead) == _BOUNDARY.sub(b"B", now)
