"""Compaction off the writer's path: a thread writes a frozen view of the state while
the writer goes on; the writer then swaps in the snapshot with a journal of the records
written since. Nothing committed is lost, whenever the process dies."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

import mentordesk.state.snapshot as snapshot_module
from mentordesk import foreground
from mentordesk.errors import StoreError
from mentordesk.state.db import Database

from .test_db import WRITER, Reports, check_all_or_nothing, contents, journal, reopened


def background(db: Database) -> Database:
    db.compact_min_bytes = 3_000
    db.background_compaction_bytes = 0  # every compaction after a commit in the background
    return db


@pytest.fixture
def db(path: Path) -> Iterator[Database]:
    with Database(path, fsync=False) as database:
        yield background(database)


def some_writes(db: Database, rng: random.Random, count: int) -> None:
    """Inserts, updates in place (nested lists too), removals and a table dropped."""
    requests, outbox = db.table("requests"), db.table("outbox")
    for step in range(count):
        choice = rng.random()
        ids = [doc.doc_id for doc in requests]
        if choice < 0.4 or not ids:
            with db.transaction():
                requests.insert({"n": step, "tags": ["new"], "pad": "x" * rng.randrange(200)})
                outbox.insert({"n": step, "data": "y" * 300})
        elif choice < 0.7:

            def tag(doc: Any, step: int = step) -> None:
                doc["tags"].append(f"t{step}")
                doc["status"] = "changed"

            requests.update(tag, doc_ids=[rng.choice(ids)])
        elif choice < 0.9:
            requests.remove(doc_ids=[rng.choice(ids)])
        elif choice < 0.92:
            db.tinydb.drop_table("outbox")
        else:
            requests.update({"pad": ""}, doc_ids=ids[:5])


def wait_for_compactions(db: Database) -> None:
    """Let a running compaction finish and be swapped in (at the next commit)."""
    while db._compaction is not None:
        db._compaction.wait()
        db.table("tick").insert({"at": time.time()})


def test_background_compactions_keep_every_change(db: Database, path: Path) -> None:
    rng = random.Random(5)
    sizes = []
    for _ in range(30):
        some_writes(db, rng, 20)
        sizes.append(journal(path).stat().st_size)
    wait_for_compactions(db)
    assert any(later < earlier for earlier, later in pairwise(sizes))
    expected = contents(db)
    db.close()
    assert reopened(path) == expected
    assert not path.with_name(path.name + ".journal.tmp").exists()


def test_the_frozen_view_is_what_the_snapshot_holds(
    db: Database, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes made while the thread writes (updates in place included) change neither
    what it writes nor what reopening gives."""
    rng = random.Random(7)
    some_writes(db, rng, 10)
    wait_for_compactions(db)  # none of its own running: this test starts one
    if db._last_compaction is not None:
        db._last_compaction.wait()
    gate, written = threading.Event(), []
    real = snapshot_module.write_snapshot

    def slow(data: Any, tmp: Path, *, fsync: bool) -> snapshot_module.Written:
        gate.wait(30)
        result = real(data, tmp, fsync=fsync)
        written.append(tmp.read_bytes())
        return result

    monkeypatch.setattr(snapshot_module, "write_snapshot", slow)
    db._start_compaction()
    frozen = contents(db)
    some_writes(db, rng, 60)  # the writer goes on meanwhile
    assert db._compaction is not None and not db._compaction.done()
    gate.set()
    wait_for_compactions(db)
    monkeypatch.setattr(snapshot_module, "write_snapshot", real)
    expected = contents(db)
    db.close()
    assert reopened(path) == expected
    # The snapshot the thread wrote is the state as it was frozen.
    snapshot_only = path.with_name("frozen.json")
    snapshot_only.write_bytes(written[0])
    view = reopened(snapshot_only)
    assert view == {name: docs for name, docs in frozen.items() if docs or name in view}


def test_a_compaction_is_written_with_short_turns(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the thread encodes the snapshot, the writer's commits wait a short turn for
    the interpreter after each system call, not a long one; after it, turns are long."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    try:
        wait_for_compactions(db)
        turns: list[tuple[str, float]] = []
        real = snapshot_module.write_snapshot

        def observed(data: Any, tmp: Path, *, fsync: bool) -> snapshot_module.Written:
            turns.append((threading.current_thread().name, sys.getswitchinterval()))
            return real(data, tmp, fsync=fsync)

        monkeypatch.setattr(snapshot_module, "write_snapshot", observed)
        some_writes(db, random.Random(5), 20)
        db._start_compaction()
        wait_for_compactions(db)
        assert ("state-compaction", foreground.SHORT_TURN_S) in turns
        assert sys.getswitchinterval() == 0.005
    finally:
        sys.setswitchinterval(before)


class Crash(BaseException):
    """The process dying at this point (nothing after it runs)."""


@pytest.mark.parametrize("at_replace", [1, 2])
def test_a_crash_while_swapping_in_loses_nothing(
    path: Path, monkeypatch: pytest.MonkeyPatch, at_replace: int
) -> None:
    """Killed right before the snapshot is renamed into place, or before the journal is:
    reopening gives every committed change."""
    db = background(Database(path, fsync=False))
    rng = random.Random(at_replace)
    some_writes(db, rng, 20)
    wait_for_compactions(db)
    if db._last_compaction is not None:
        db._last_compaction.wait()
    db._start_compaction()
    assert db._compaction is not None
    db._compaction.wait()
    calls = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        calls.append(dst)
        if len(calls) == at_replace:
            raise Crash
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(Crash):
        db.table("requests").insert({"n": "the commit that finds the compaction done"})
    monkeypatch.setattr(os, "replace", real_replace)
    expected = contents(db)
    assert expected["requests"]
    os.close(db._fd)  # the process is gone: no clean-up of any kind
    os.close(db._marks_fd)
    db._fd = db._marks_fd = -1
    db._compaction = db._last_compaction = None
    assert reopened(path) == expected
    with Database(path, fsync=False) as again:  # and it goes on from there
        again.table("requests").insert({"n": "after"})
        expected = contents(again)
    assert reopened(path) == expected


def test_kill_9_during_background_compactions_loses_no_committed_transaction(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.json"
    writer = WRITER.replace(
        "db.compact_min_bytes = 8_000",
        "db.compact_min_bytes = 8_000\ndb.background_compaction_bytes = 0",
    )
    assert writer != WRITER
    rng = random.Random()
    deadline = time.monotonic() + 90
    committed = -1
    for round_ in range(5):
        target = committed + rng.randint(20, 120)
        with subprocess.Popen(
            [sys.executable, "-c", writer, str(path)], stdout=subprocess.PIPE, bufsize=0
        ) as proc:
            reports = Reports(proc)
            try:
                reports.wait_for(target, deadline)
            finally:
                proc.kill()
                proc.wait()
            reports.drain()
        last = check_all_or_nothing(path)
        assert last >= reports.last, f"round {round_}: reported {reports.last}, kept {last}"
        assert last <= reports.last + 1, f"round {round_}: {last} > {reports.last} + 1"
        committed = last


def test_a_background_compaction_leaves_a_backup_copied_under_an_id_of_its_own(
    db: Database, path: Path
) -> None:
    """The backup is the new snapshot's bytes (copied, not encoded again) with a checksum
    table naming another id: it opens as a whole state, and as a restored backup its
    journal starts afresh."""
    rng = random.Random(11)
    some_writes(db, rng, 40)
    wait_for_compactions(db)  # none of its own running: this test starts one
    db._start_compaction()
    wait_for_compactions(db)
    assert db._last_compaction is not None
    db._last_compaction.wait()
    snapshot, backup = path.read_bytes(), path.with_name(path.name + ".bak").read_bytes()
    body = snapshot.rindex(b'"_checksum":')
    assert backup[:body] == snapshot[:body]  # the tables, byte for byte
    assert backup[body:] != snapshot[body:]  # the same checksum under another id
    snapshot_only = path.with_name("snapshot-only.json")
    snapshot_only.write_bytes(snapshot)
    with Database(snapshot_only, read_only=True) as original:
        expected = contents(original)
    assert sum(len(docs) for docs in expected.values()) > 10
    with Database(path.with_name(path.name + ".bak"), read_only=True) as copy:
        assert contents(copy) == expected
    # A byte of the copied tables changed: its checksum no longer holds.
    damaged = path.with_name("damaged.json")
    damaged.write_bytes(backup[:10] + bytes([backup[10] ^ 1]) + backup[11:])
    with pytest.raises(StoreError, match="checksum"):
        Database(damaged, read_only=True)


def test_the_replaced_files_are_freed_off_the_writers_path(
    db: Database, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The swap hands the old journal and the old snapshot to a thread of their own to
    close (their last close frees their blocks); closing the state waits for it, and no
    file is left open."""
    closed: list[tuple[str, tuple[int, ...]]] = []
    real = snapshot_module._close_all

    def recorded(fds: list[int]) -> None:
        closed.append((threading.current_thread().name, tuple(os.fstat(fd).st_nlink for fd in fds)))
        real(fds)

    monkeypatch.setattr(snapshot_module, "_close_all", recorded)
    open_before = len(os.listdir("/proc/self/fd"))
    some_writes(db, random.Random(3), 40)
    wait_for_compactions(db)
    db._start_compaction()
    wait_for_compactions(db)
    db.close()
    assert closed, "no compaction was swapped in"
    for thread, links in closed:
        assert thread != threading.current_thread().name
        assert set(links) == {0}  # already replaced: nothing names them any more
    assert (0, 0) in [links for _, links in closed]  # a journal and a snapshot (the first has none)
    assert len(os.listdir("/proc/self/fd")) <= open_before


def test_a_snapshot_is_synced_as_it_is_written(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With fsync on, a snapshot and its backup copy are synced every SYNC_EVERY bytes
    (so another fsync on the disk never waits for all of them at once), and end whole."""
    synced: dict[int, list[int]] = {}  # inode: its size at each sync
    monkeypatch.setattr(snapshot_module, "SYNC_EVERY", 4096)

    def sync(fd: int) -> None:
        stat = os.fstat(fd)
        synced.setdefault(stat.st_ino, []).append(stat.st_size)

    monkeypatch.setattr(snapshot_module, "_fdatasync", sync)
    with Database(path, fsync=True) as db:
        db.compact_min_bytes = 10**9  # only the compaction this test starts
        db.background_compaction_bytes = 0
        for n in range(200):
            db.table("requests").insert({"n": n, "pad": "x" * 500})
        db._start_compaction()
        wait_for_compactions(db)
        expected = contents(db)
        assert db._last_compaction is not None
        db._last_compaction.wait()
    backup = path.with_name(path.name + ".bak")
    for written in (path, backup):
        sizes = synced[written.stat().st_ino]
        assert written.stat().st_size > 100_000
        assert len(sizes) >= written.stat().st_size // 5_000
        assert max(b - a for a, b in pairwise([0, *sizes])) < 4096 + 1_000
    assert reopened(path) == expected
