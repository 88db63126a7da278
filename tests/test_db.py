"""The journalled TinyDB: durability, atomicity, recovery and TinyDB compatibility."""

from __future__ import annotations

import errno
import os
import random
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from tinydb import Query, TinyDB
from tinydb.table import Document

import mentordesk.state.db as db_module
from mentordesk.errors import StoreError
from mentordesk.state.db import Database

Contents = dict[str, dict[int, dict[str, Any]]]


def contents(db: Database) -> Contents:
    """Every table's documents by id, as plain dicts."""
    return {name: {doc.doc_id: dict(doc) for doc in db.table(name)} for name in db.tinydb.tables()}


def reopened(path: Path) -> Contents:
    with Database(path, fsync=False) as db:
        return contents(db)


def journal(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


@pytest.fixture
def db(path: Path) -> Iterator[Database]:
    with Database(path, fsync=False) as database:
        yield database


def request(number: int, **fields: Any) -> dict[str, Any]:
    return {"kind": "request", "number": number, "status": "open", "tags": ["new"], **fields}


# --- TinyDB's API, kept across reopen ---------------------------------------------------


def test_writes_and_queries_survive_reopen(db: Database, path: Path) -> None:
    requests, mails = db.table("requests"), db.table("outbox")
    Q = Query()
    first = requests.insert(request(1))
    requests.insert_multiple([request(2), request(3), request(4)])
    requests.update({"status": "matched"}, Q.number == 2)
    requests.update(lambda doc: doc["tags"].append("urgent"), doc_ids=[first])
    requests.upsert(request(5, status="closed"), Q.number == 5)
    requests.upsert({"status": "closed"}, Q.number == 3)
    requests.remove(Q.number == 4)
    mails.insert({"to": "mentee@example.org", "subject": "Welcome ✓"})

    expected = contents(db)
    assert expected["requests"][first]["tags"] == ["new", "urgent"]
    assert [doc["number"] for doc in requests.search(Q.status == "closed")] == [3, 5]
    db.close()

    with Database(path) as again:
        assert contents(again) == expected
        table = again.table("requests")
        assert table.get(Q.number == 2) == {**request(2), "status": "matched"}
        assert table.get(doc_id=first) == expected["requests"][first]
        assert [doc.doc_id for doc in table.get(doc_ids=[1, 2, 99])] == [1, 2]
        assert table.count(Q.tags.any(["urgent"])) == 1
        assert table.contains(Q.number == 5) and not table.contains(Q.number == 4)


def test_ids_continue_after_the_highest_across_reopen(db: Database, path: Path) -> None:
    table = db.table("requests")
    assert table.insert_multiple([request(1), request(2), request(3)]) == [1, 2, 3]
    table.insert(Document(request(10), doc_id=10))
    table.remove(doc_ids=[2])
    db.close()
    with Database(path, fsync=False) as again:
        assert again.table("requests").insert(request(11)) == 11


def test_truncate_and_drop_table_survive_reopen(db: Database, path: Path) -> None:
    db.table("a").insert_multiple([request(1), request(2)])
    db.table("b").insert(request(3))
    db.table("c").insert(request(4))
    db.table("a").truncate()
    db.tinydb.drop_table("b")
    assert db.tinydb.tables() == {"a", "c"}
    assert db.table("a").insert(request(5)) == 1  # as with TinyDB: truncate resets ids
    db.close()
    assert reopened(path) == {"a": {1: request(5)}, "c": {1: request(4)}}
    with Database(path, fsync=False) as again:
        again.tinydb.drop_tables()
    assert reopened(path) == {}


def test_query_cache_sees_every_write(db: Database) -> None:
    table = db.table("requests")
    open_requests = Query().status == "open"
    table.insert(request(1))
    assert len(table.search(open_requests)) == 1  # now cached
    table.insert(request(2))
    assert len(table.search(open_requests)) == 2
    table.update({"status": "closed"}, doc_ids=[1])
    assert len(table.search(open_requests)) == 1
    with pytest.raises(KeyError), db.transaction():
        table.update({"status": "open"}, doc_ids=[1])
        assert len(table.search(open_requests)) == 2  # cached inside, then rolled back
        raise KeyError("boom")
    assert len(table.search(open_requests)) == 1


def test_documents_handed_out_share_nothing_with_the_state(db: Database, path: Path) -> None:
    table = db.table("requests")
    mine = request(1)
    table.insert(mine)
    mine["tags"].append("changed after insert")
    for doc in (table.get(doc_id=1), table.search(Query().number == 1)[0], table.all()[0]):
        assert doc is not None
        doc["tags"].append("changed by a reader")
    assert table.get(doc_id=1) == request(1)

    # The usual read-modify-write: it must reach the journal, not be taken as a no-op.
    doc = table.get(doc_id=1)
    assert doc is not None
    doc["tags"].append("seen")
    table.update({"tags": doc["tags"]}, doc_ids=[1])
    db.close()
    assert reopened(path)["requests"][1]["tags"] == ["new", "seen"]


class _Label(str):
    """A str subclass: JSON keeps the text, not the class."""


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    scalars: list[Any] = [
        "open", "x" * 80, "", "\udcff", "é", _Label("label"), 0, -7, 2**70, True, False,
        None, 1.5, -0.0, 1e300,
    ]  # fmt: skip
    if depth < 3 and rng.random() < 0.4:
        items = [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
        choice = rng.randrange(4)
        if choice == 0:
            return tuple(items)
        if choice == 1:
            return {rng.choice(["a", "b", 3, _Label("c")]): item for item in items}
        return items
    return rng.choice(scalars)


def test_the_state_holds_what_a_reload_gives(db: Database, path: Path) -> None:
    # Written documents are kept as reading them back from the file would give them:
    # tuples become lists, subclasses their base type, keys strings.
    rng = random.Random(5)
    table = db.table("docs")
    written = [{"n": n, "value": _random_value(rng)} for n in range(300)]
    for doc in written:
        table.insert(doc)
    table.update({"touched": ("yes", 1)}, doc_ids=list(range(1, 301, 3)))
    in_memory = contents(db)
    db.close()
    back = reopened(path)
    assert in_memory == back

    def types(value: Any) -> Any:
        if isinstance(value, dict):
            return {(type(k), k): types(v) for k, v in value.items()}
        if isinstance(value, list):
            return [types(v) for v in value]
        return type(value)

    assert types(in_memory) == types(back)


def test_a_write_that_fails_changes_nothing(db: Database, path: Path) -> None:
    table = db.table("requests")
    table.insert(request(1))
    before, journal_bytes = contents(db), journal(path).read_bytes()

    with pytest.raises(TypeError, match="not JSON serializable"):
        table.insert(request(2, created=datetime.now(UTC)))
    with pytest.raises(TypeError):
        table.update({"when": datetime.now(UTC)}, doc_ids=[1])
    with pytest.raises(ValueError, match="already exists"):
        table.insert(Document(request(3), doc_id=1))
    with pytest.raises(TypeError):
        db.table("new").insert({"when": datetime.now(UTC)})

    assert contents(db) == before
    assert "new" not in db.tinydb.tables()
    assert journal(path).read_bytes().startswith(journal_bytes)
    db.close()
    assert reopened(path) == before


def test_an_updater_that_fails_halfway_leaves_no_trace(db: Database) -> None:
    table = db.table("requests")
    table.insert(request(1))
    assert table.search(Query().number == 1)[0]["tags"] == ["new"]  # cached

    def append_then_fail(doc: Any) -> None:
        doc["tags"].append("half-done")
        raise ValueError("updater failed")

    with pytest.raises(ValueError, match="updater failed"):
        table.update(append_then_fail, doc_ids=[1])
    assert table.search(Query().number == 1)[0]["tags"] == ["new"]
    assert table.get(doc_id=1) == request(1)


def test_a_failed_journal_write_is_undone_everywhere(
    db: Database, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db.table("requests").insert(request(1))
    before, journal_bytes = contents(db), journal(path).read_bytes()

    def disk_full_halfway(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("mentordesk.state.db._write_all", disk_full_halfway)
    with pytest.raises(StoreError, match="No space left on device"), db.transaction():
        message_effects(db, 2)
    with pytest.raises(StoreError, match="No space left on device"):
        db.table("requests").update({"status": "closed"}, doc_ids=[1])
    assert contents(db) == before
    assert journal(path).read_bytes() == journal_bytes  # the half record was cut off

    monkeypatch.undo()
    db.table("requests").insert(request(3))
    expected = contents(db)
    db.close()
    assert reopened(path) == expected


def test_writes_after_close_are_refused(db: Database) -> None:
    db.close()
    with pytest.raises(StoreError, match="closed"):
        db.table("requests").insert(request(1))


def test_a_second_process_cannot_open_the_same_state(db: Database, path: Path) -> None:
    with pytest.raises(StoreError, match="in use by another process"):
        Database(path)


def test_read_only_sees_a_running_writers_committed_state(db: Database, path: Path) -> None:
    message_effects(db, 1)
    with db.transaction():
        message_effects(db, 2)
    expected = contents(db)
    with journal(path).open("ab") as tail:
        tail.write(b'{"crc":"0000')  # the writer is in the middle of an append
    files = journal(path).read_bytes()

    with Database(path, read_only=True) as viewer:  # no lock: the writer holds it
        assert contents(viewer) == expected
        with pytest.raises(StoreError, match="read-only"):
            viewer.table("requests").insert(request(3))
    assert journal(path).read_bytes() == files  # the torn tail is the writer's business


def test_read_only_rereads_when_the_writer_compacts_meanwhile(
    db: Database, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message_effects(db, 1)
    real_replay = db_module._replay_journal
    calls: list[tuple[Any, ...]] = []

    def compaction_in_between(*args: Any) -> Any:
        # The viewer has read the old snapshot; the writer compacts and writes on.
        if not calls:
            db.compact()
            message_effects(db, 2)
        calls.append(args)
        return real_replay(*args)

    monkeypatch.setattr(db_module, "_replay_journal", compaction_in_between)
    with Database(path, read_only=True) as viewer:
        assert contents(viewer) == contents(db)
    assert len(calls) == 2


def test_read_only_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "state.json"
    with Database(missing, read_only=True) as viewer:
        assert contents(viewer) == {}
    assert not missing.parent.exists()


# --- transactions -----------------------------------------------------------------------


def message_effects(db: Database, number: int) -> None:
    """What handling one inbound message writes: all of it, or none."""
    db.table("requests").insert(request(number))
    db.table("outbox").insert({"to": f"mentor{number}@example.org", "request": number})
    db.table("audit").insert({"event": "request-created", "request": number})
    db.table("processed").insert({"message_id": f"<{number}@example.org>"})


def test_a_transaction_is_one_journal_record(db: Database, path: Path) -> None:
    with db.transaction():
        message_effects(db, 1)
    assert len(journal(path).read_bytes().splitlines()) == 1
    expected = contents(db)
    assert set(expected) == {"requests", "outbox", "audit", "processed"}
    db.close()
    assert reopened(path) == expected


def test_an_exception_rolls_back_memory_and_disk(db: Database, path: Path) -> None:
    message_effects(db, 1)
    db.table("requests").insert(request(2))
    before, journal_bytes = contents(db), journal(path).read_bytes()

    with pytest.raises(RuntimeError, match="mailer exploded"), db.transaction():
        message_effects(db, 3)
        db.table("requests").update({"status": "matched"}, Query().number == 1)
        db.table("requests").remove(doc_ids=[2])
        db.table("audit").truncate()
        db.tinydb.drop_table("outbox")
        db.table("brand-new").insert({"x": 1})
        assert contents(db) != before  # reads inside see the transaction's writes
        raise RuntimeError("mailer exploded")

    assert contents(db) == before
    assert journal(path).read_bytes() == journal_bytes
    assert db.table("requests").search(Query().number == 3) == []
    assert db.table("outbox").insert({"x": 2}) == 2  # ids go on where they were
    db.close()
    assert reopened(path) == {**before, "outbox": {**before["outbox"], 2: {"x": 2}}}


def test_nested_transactions_join_the_outer_one(db: Database, path: Path) -> None:
    with db.transaction():
        db.table("requests").insert(request(1))
        with db.transaction():
            db.table("requests").insert(request(2))
        assert journal(path).read_bytes() == b""  # nothing written until the outer exit
        with pytest.raises(LookupError), db.transaction():
            db.table("requests").insert(request(3))
            db.table("requests").update({"status": "gone"}, doc_ids=[1])
            raise LookupError("the inner block failed; the outer one carries on")
        db.table("requests").insert(request(4))

    assert len(journal(path).read_bytes().splitlines()) == 1
    db.close()
    numbers = {doc["number"]: doc["status"] for doc in reopened(path)["requests"].values()}
    assert numbers == {1: "open", 2: "open", 4: "open"}


def test_an_exception_in_the_outer_block_discards_the_inner_ones(db: Database, path: Path) -> None:
    with pytest.raises(ValueError), db.transaction():
        with db.transaction():
            message_effects(db, 1)
        raise ValueError("late failure")
    assert contents(db) == {}
    db.close()
    assert reopened(path) == {}


# --- compaction -------------------------------------------------------------------------


def test_compact_then_reopen(db: Database, path: Path) -> None:
    for number in range(20):
        message_effects(db, number)
    db.table("requests").remove(Query().number < 5)
    db.compact()
    assert journal(path).stat().st_size == 0
    db.table("requests").insert(request(99))  # lands in the emptied journal
    expected = contents(db)
    db.close()

    assert reopened(path) == expected
    plain = TinyDB(path, access_mode="r")  # the snapshot is a plain TinyDB file
    try:
        assert len(plain.table("outbox")) == 20 and len(plain.table("requests")) == 15
    finally:
        plain.close()


def test_compaction_happens_on_its_own(db: Database, path: Path) -> None:
    db.compact_min_bytes = 4_000
    sizes = []
    for number in range(200):
        message_effects(db, number)
        sizes.append(journal(path).stat().st_size)
    assert any(later < earlier for earlier, later in pairwise(sizes))
    assert max(sizes) < 2 * max(path.stat().st_size, 4_000)
    expected = contents(db)
    db.close()
    assert reopened(path) == expected


def test_a_crash_between_snapshot_and_journal_truncation_is_harmless(
    db: Database, path: Path
) -> None:
    for number in range(5):
        message_effects(db, number)
    db.table("requests").remove(doc_ids=[2])
    db.table("requests").update({"status": "closed"}, doc_ids=[1])
    db.tinydb.drop_table("audit")
    expected, journal_bytes = contents(db), journal(path).read_bytes()
    db.compact()
    db.close()
    journal(path).write_bytes(journal_bytes)  # as if the crash came before the truncation
    assert reopened(path) == expected


# --- recovery ---------------------------------------------------------------------------


def test_a_torn_last_record_is_dropped_wherever_it_was_cut(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    with Database(path, fsync=False) as db:
        for number in range(3):
            message_effects(db, number)
        db.compact()
        db.table("requests").update({"status": "closed"}, doc_ids=[2])
        before, kept = contents(db), journal(path).read_bytes()
        with db.transaction():
            message_effects(db, 7)
            db.table("requests").remove(doc_ids=[1])
            db.table("outbox").update({"to": "someone@example.org"}, doc_ids=[3])
        after, full = contents(db), journal(path).read_bytes()

    snapshot = path.read_bytes()
    assert full.startswith(kept) and full.endswith(b"\n")
    for cut in range(len(kept), len(full)):
        path.write_bytes(snapshot)
        journal(path).write_bytes(full[:cut])
        assert reopened(path) == before, f"cut at byte {cut}"
        assert journal(path).read_bytes() == kept, f"cut at byte {cut}"

    # After the torn tail is cut off, new records append cleanly.
    journal(path).write_bytes(full[:-1])
    with Database(path, fsync=False) as db:
        db.table("requests").insert(request(8))
        expected = contents(db)
    assert reopened(path) == expected

    journal(path).write_bytes(full)
    path.write_bytes(snapshot)
    assert reopened(path) == after


def damage_flip(line: bytes) -> bytes:
    at = line.index(b"open")
    return line[:at] + b"OPEN" + line[at + 4 :]


def damage_replace(line: bytes) -> bytes:
    return b"\x00" * (len(line) - 1) + b"\n"


@pytest.mark.parametrize("damage", [damage_flip, damage_replace], ids=["flipped", "zeroed"])
def test_damage_before_the_last_record_is_an_error(path: Path, damage: Any) -> None:
    with Database(path, fsync=False) as db:
        for number in range(3):
            db.table("requests").insert(request(number))
    lines = journal(path).read_bytes().splitlines(keepends=True)
    lines[1] = damage(lines[1])
    journal(path).write_bytes(b"".join(lines))

    with pytest.raises(StoreError) as caught:
        Database(path)
    message = str(caught.value)
    assert str(journal(path)) in message
    assert f"line 2 (byte offset {len(lines[0])})" in message
    assert f"truncate -s {len(lines[0])}" in message


def test_a_damaged_snapshot_is_an_error(path: Path) -> None:
    with Database(path, fsync=False) as db:
        db.table("requests").insert(request(1))
        db.compact()
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(StoreError, match=r"snapshot .* is not valid JSON \(line \d+, column"):
        Database(path)


# --- kill -9 ----------------------------------------------------------------------------

# Writes numbered transactions forever: 3 documents plus a counter each, printing the
# number once committed. A tiny compaction threshold makes compactions frequent, so kills
# land during them too.
WRITER = """
import sys
from tinydb.table import Document
from mentordesk.state.db import Database

db = Database(sys.argv[1], fsync=True)
db.compact_min_bytes = 8_000
items, counter = db.table("items"), db.table("counter")
last = counter.get(doc_id=1)
number = last["txn"] + 1 if last else 0
while True:
    with db.transaction():
        for part in range(3):
            items.insert({"txn": number, "part": part, "pad": "x" * 150})
        counter.upsert(Document({"txn": number}, doc_id=1))
    print(number, flush=True)
    number += 1
"""


class Reports:
    """The numbers a writer process reports on stdout, read without blocking forever."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.proc = proc
        self.pending = b""
        self.last = -1

    def feed(self, chunk: bytes) -> None:
        *lines, self.pending = (self.pending + chunk).split(b"\n")
        if lines:
            self.last = int(lines[-1])

    def wait_for(self, number: int, deadline: float) -> None:
        while self.last < number:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"the writer reported only up to {self.last}"
            if select.select([self.fd], [], [], remaining)[0]:
                chunk = os.read(self.fd, 65536)
                assert chunk, f"the writer exited: {self.proc.wait()}"
                self.feed(chunk)

    def drain(self) -> None:
        """After the kill: whatever it printed before dying also counts."""
        while chunk := os.read(self.fd, 65536):
            self.feed(chunk)


def check_all_or_nothing(path: Path) -> int:
    """The last committed transaction, after checking that each one is whole."""
    state = reopened(path)
    last = state["counter"][1]["txn"] if "counter" in state else -1
    items = state.get("items", {})
    assert len(items) == 3 * (last + 1), "a transaction was split"
    for doc_id, doc in items.items():
        # Sequential ids prove no transaction was lost, split or applied twice.
        assert (doc["txn"], doc["part"]) == divmod(doc_id - 1, 3)
    return last


def test_kill_9_loses_no_committed_transaction(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    rng = random.Random()
    deadline = time.monotonic() + 60
    committed = -1
    for round_ in range(5):
        target = committed + rng.randint(1, 40)
        extra = rng.randint(0, 30)  # go on for a random while after the target
        with subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)],
            stdout=subprocess.PIPE,
            bufsize=0,
        ) as proc:
            reports = Reports(proc)
            try:
                reports.wait_for(target + extra, deadline)
            finally:
                proc.kill()
                proc.wait()
            reports.drain()
        last = check_all_or_nothing(path)
        assert last >= reports.last, f"round {round_}: reported {reports.last}, kept {last}"
        # A commit that was durable but killed before its print counts: at most one.
        assert last <= reports.last + 1, f"round {round_}: {last} > {reports.last} + 1"
        committed = last
