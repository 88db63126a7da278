"""The store's writer: group commit (one fdatasync for the jobs queued meanwhile, each
answer after the fdatasync that covers it), the deferred lane, and the committed view
the web reads from another thread while the writer writes."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mentordesk.errors import StoreError
from mentordesk.state import db as db_module
from mentordesk.state import writer as writer_module
from mentordesk.state.store import Store, StoreWriter, iso

NOW = datetime(2025, 6, 2, 12, tzinfo=UTC)


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The journal's size after each real fdatasync of it, in order."""
    done: list[int] = []
    real = db_module._fdatasync

    def fdatasync(fd: int) -> None:
        real(fd)
        done.append(os.fstat(fd).st_size)

    monkeypatch.setattr(db_module, "_fdatasync", fdatasync)
    yield done


async def started(path: Path) -> StoreWriter:
    writer = StoreWriter(lambda: Store(path, fsync=True))
    await writer.start()
    return writer


def store_of(writer: StoreWriter) -> Store:
    assert writer.store is not None
    return writer.store


async def held(writer: StoreWriter) -> tuple[threading.Event, asyncio.Future[None]]:
    """Keep the writer busy until the returned event is set (so that jobs queue)."""
    release, running = threading.Event(), threading.Event()

    def hold() -> None:
        running.set()
        release.wait(10)

    holding = writer.submit(hold)
    await asyncio.to_thread(running.wait, 10)
    return release, holding


async def test_jobs_queued_meanwhile_share_one_fdatasync_and_hear_after_it(
    tmp_path: Path, syncs: list[int]
) -> None:
    writer = await started(tmp_path / "s.json")
    store = store_of(writer)
    syncs.clear()

    def write(n: int) -> int:
        store.set_meta(f"key{n}", n)
        return os.fstat(store.db._fd).st_size  # where this job's record ends

    heard: list[tuple[int, int]] = []  # (its record's end, what was durable when answered)

    async def one(n: int) -> None:
        end = await writer.call(write, n)
        heard.append((end, max(syncs, default=0)))

    try:
        release, holding = await held(writer)
        jobs = [asyncio.create_task(one(n)) for n in range(40)]
        await asyncio.sleep(0)  # every job queued behind the one holding the writer
        release.set()
        await holding
        await asyncio.gather(*jobs)
        assert len(heard) == 40
        assert all(end <= durable for end, durable in heard)  # never told before durable
        assert len(syncs) == 1  # forty commits, one fdatasync
        assert store.meta("key39") == 39
    finally:
        await writer.close()
    reopened = Store(tmp_path / "s.json")
    try:
        assert [reopened.meta(f"key{n}") for n in range(40)] == list(range(40))
    finally:
        reopened.close()


async def test_a_failed_fdatasync_fails_the_whole_group_and_stops_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = await started(tmp_path / "s.json")
    store = store_of(writer)
    await writer.call(store.set_meta, "before", 1)
    committed = writer.committed
    assert committed is not None

    def refused(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(db_module, "_fdatasync", refused)
    try:
        release, holding = await held(writer)
        first = writer.submit(store.set_meta, "lost", 1)
        second = writer.submit(lambda: 42)  # wrote nothing, but saw what the first wrote
        release.set()
        await holding
        for job in (first, second):
            with pytest.raises(StoreError, match="restart mentordesk"):
                await job
        with pytest.raises(StoreError):
            await writer.call(store.set_meta, "after", 1)
    finally:
        monkeypatch.undo()
        await writer.close()


async def test_deferred_jobs_wait_for_the_others(tmp_path: Path) -> None:
    writer = await started(tmp_path / "s.json")
    ran: list[str] = []
    try:
        release, holding = await held(writer)
        later = [writer.defer(ran.append, f"deferred {n}") for n in range(2)]
        now = [writer.submit(ran.append, f"asked {n}") for n in range(3)]
        release.set()
        await asyncio.gather(holding, *now, *later)
        assert ran == ["asked 0", "asked 1", "asked 2", "deferred 0", "deferred 1"]
    finally:
        await writer.close()


async def test_deferred_jobs_wait_while_pages_keep_coming(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "QUIET_S", 3600.0)
    writer = await started(tmp_path / "s.json")
    ran: list[str] = []
    await writer.for_page(ran.append, "a page's")
    deferred = writer.defer(ran.append, "deferred")
    await writer.call(ran.append, "the outbox's")  # no page: no wait for it
    await writer.for_page(ran.append, "another page's")
    assert ran == ["a page's", "the outbox's", "another page's"]  # not quiet yet
    assert not deferred.done()
    await writer.close()


async def test_an_overdue_deferred_job_takes_every_other_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "DEFER_AT_MOST_S", 0.0)
    writer = await started(tmp_path / "s.json")
    ran: list[str] = []
    try:
        release, holding = await held(writer)
        jobs = [writer.defer(ran.append, f"deferred {n}") for n in range(2)]
        jobs += [writer.submit(ran.append, f"asked {n}") for n in range(2)]
        release.set()
        await asyncio.gather(holding, *jobs)
        assert ran == ["deferred 0", "asked 0", "asked 1", "deferred 1"]
    finally:
        await writer.close()


async def test_closing_drops_what_was_deferred_then_refuses_more(tmp_path: Path) -> None:
    writer = await started(tmp_path / "s.json")
    ran: list[str] = []
    release, holding = await held(writer)
    deferred = writer.defer(ran.append, "deferred")
    closing = asyncio.create_task(writer.close())
    await asyncio.sleep(0)
    release.set()
    await holding
    await closing
    assert deferred.cancelled()  # left to the next start, as the state says it is due
    assert ran == []
    with pytest.raises(RuntimeError):
        writer.defer(ran.append, "too late")
    with pytest.raises(RuntimeError):
        writer.submit(ran.append, "too late")


# The committed view, read from another thread while the writer writes ---------------------

MENTORS = [f"m{n}@example.com" for n in range(4)]


def request_doc(number: int, version: int) -> dict[str, Any]:
    """Request ``number`` at ``version``: claimed by a mentor on odd versions."""
    holder = MENTORS[version % len(MENTORS)] if version % 2 else None
    return {
        "number": number,
        "mentee": f"mentee{number}@example.net",
        "status": "claimed" if holder else "open",
        "claimed_by": holder,
        "claimed_at": iso(NOW) if holder else None,
        "invited": [{"email": email, "at": iso(NOW)} for email in MENTORS],
        "version": version,
        "check": version * 7,  # written with version, in the same document
    }


async def test_a_caller_resumes_in_the_loops_turn_that_brings_its_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a turn later, behind every callback ready by then (a page waited that long
    once more per writer call); its exception too. A ticker counts the loop's turns."""
    writer = await started(tmp_path / "s.json")
    turns = 0
    ticking = True

    def tick() -> None:
        nonlocal turns
        turns += 1
        if ticking:
            asyncio.get_running_loop().call_soon(tick)

    answered_in: list[int] = []
    real = writer_module._Answer.answered

    def answered(future: Any, ok: bool, value: Any) -> None:
        answered_in.append(turns)
        real(future, ok, value)

    monkeypatch.setattr(writer_module._Answer, "answered", answered)
    tick()
    try:
        resumed_in = []
        for _ in range(5):
            assert await writer.call(lambda: 42) == 42
            resumed_in.append(turns)
        with pytest.raises(ZeroDivisionError):
            await writer.call(lambda: 1 // 0)
        resumed_in.append(turns)
        assert resumed_in == answered_in
    finally:
        ticking = False
        await writer.close()


async def test_a_caller_cancelled_while_its_job_runs_hears_so_and_the_job_still_runs(
    tmp_path: Path,
) -> None:
    """Cancelled from within another task (as aiohttp cancels a page whose browser went
    away), the caller gets CancelledError on the next turn; the job is not undone."""
    writer = await started(tmp_path / "s.json")
    store = store_of(writer)
    release, holding = await held(writer)
    waiting = asyncio.ensure_future(writer.call(store.set_meta, "late", 1))
    await asyncio.sleep(0)

    async def cancel_it() -> None:
        waiting.cancel()

    await asyncio.ensure_future(cancel_it())
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release.set()
    await holding
    assert await writer.call(store.meta, "late") == 1
    await writer.close()


async def test_point_reads_from_another_thread_see_only_whole_durable_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = await started(tmp_path / "s.json")
    store = store_of(writer)
    committed = writer.committed
    assert committed is not None
    numbers = range(1, 6)

    def seed() -> None:
        with store.transaction():
            for email in MENTORS:
                store.save_mentor({"email": email, "name": email, "version": 0})
            for number in numbers:
                store.save_request(request_doc(number, 0))

    await writer.call(seed)
    written = [0]  # the highest version committed (in memory) so far
    durable = [0]  # the highest version made durable so far
    real_sync = store.db.sync

    def sync() -> list[tuple[str, str | None]]:
        reached = written[0]
        touched = real_sync()
        durable[0] = reached
        return touched

    monkeypatch.setattr(store.db, "sync", sync)

    def write(version: int, *, fail: bool) -> None:
        with store.transaction():
            for number in numbers:
                store.save_request(request_doc(number, -version if fail else version))
            for email in MENTORS:
                store.save_mentor({"email": email, "name": email, "version": version})
            if fail:
                raise RuntimeError("undone: nobody may ever see it")
        written[0] = version

    problems: list[str] = []
    seen: set[int] = set()
    stop = threading.Event()

    def read() -> None:
        last = 0
        while not stop.is_set():
            for number in numbers:
                request = committed.request(number)
                if request is None:
                    problems.append(f"request {number} missing")
                    continue
                version = int(request["version"])
                if version < 0:
                    problems.append(f"saw rolled-back version {version}")
                if request["check"] != version * 7:
                    problems.append(f"a torn document: {dict(request)}")
                if version > durable[0]:
                    problems.append(f"saw version {version} before it was durable")
                if version < last:
                    problems.append(f"went back from {last} to {version}")
                last = version
                seen.add(version)
            for email in MENTORS:
                mentor = committed.mentor(email.upper())
                if mentor is None or int(mentor["version"]) < 0:
                    problems.append(f"mentor {email}: {mentor}")
                claims = committed.claims_since(email, iso(NOW - timedelta(days=1)))
                if claims not in range(len(numbers) + 1):
                    problems.append(f"{email} has {claims} claims")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for version in range(1, 301):
            failing = version % 5 == 0
            job = writer.submit(write, version, fail=failing)
            if failing:
                with pytest.raises(RuntimeError):
                    await job
            elif version % 3:
                job.add_done_callback(lambda _: None)  # a few in flight at once
            else:
                await job
        await writer.call(lambda: None)
    finally:
        stop.set()
        reader.join()
        await writer.close()
    assert problems == []
    assert len(seen) > 10  # the reader really raced the writer
    assert committed.request(1) is not None
    final = committed.request(1) or {}
    assert final["version"] == 299


def test_the_committed_view_counts_claims_as_the_store_does(tmp_path: Path) -> None:
    from mentordesk.state.committed import CommittedView

    store = Store(tmp_path / "s.json", fsync=False)
    store.db.hold_syncs()
    try:
        view = CommittedView(store.db)

        def counted(email: str) -> int:
            return store.claims_since(NOW).get(email, 0)

        for version in range(12):
            number = 1 + version % 3
            store.save_request(request_doc(number, version))
            view.publish(store.db.sync())
            for email in MENTORS:
                assert view.claims_since(email, iso(NOW)) == counted(email)
        gone = store.request(2) or {}
        store.save_request({**gone, "status": "withdrawn"})
        view.publish(store.db.sync())
        assert (view.request(2) or {})["status"] == "withdrawn"
        assert view.mentor("nobody@example.com") is None
        assert sum(view.claims_since(email, iso(NOW)) for email in MENTORS) == sum(
            counted(email) for email in MENTORS
        )
    finally:
        store.close()
