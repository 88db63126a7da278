"""Damaged state: a torn last write is dropped, any other damage stops the start.

A crash can only cut the journal's last record short (it has no newline yet). Anything
else — a journal cut shorter than what was committed, a complete record whose checksum
fails, a snapshot whose checksum fails — is damage: opening refuses, and the message
names the file, what is wrong and the backup to restore. Request numbers are never
given out twice, whatever was lost or restored.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mentordesk.state.db as db_module
from mentordesk.errors import StoreError
from mentordesk.state.db import Database
from mentordesk.state.store import Store


def journal(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


def backup(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def new_request(store: Store) -> int:
    """What a mentee's request writes: a number, then the request, in one transaction."""
    with store.transaction():
        number = store.new_request_number()
        store.save_request({"number": number, "mentee": f"m{number}@example.org", "status": "open"})
    return number


def numbers(path: Path) -> list[int]:
    store = Store(path, fsync=False)
    try:
        return sorted(int(r["number"]) for r in store.requests())
    finally:
        store.close()


@pytest.fixture
def forty(path: Path) -> Iterator[Path]:
    """Requests 1-20 in one run, 21-40 in the next (whose start wrote the backup)."""
    for _ in range(2):
        store = Store(path, fsync=False)
        try:
            for _ in range(20):
                new_request(store)
        finally:
            store.close()
    yield path


def refusal(path: Path) -> str:
    with pytest.raises(StoreError) as caught:
        Store(path, fsync=False)
    return str(caught.value)


def refused_by_database(path: Path) -> str:
    with pytest.raises(StoreError) as caught:
        Database(path, fsync=False)
    return str(caught.value)


def restore_as_told(path: Path) -> None:
    """What the message tells the operator to do with the backup."""
    journal(path).rename(journal(path).with_name(journal(path).name + ".damaged"))
    if path.exists():
        path.rename(path.with_name(path.name + ".damaged"))
    shutil.copyfile(backup(path), path)


# --- the journal --------------------------------------------------------------------------


def test_a_journal_cut_to_half_refuses_to_start_and_names_the_backup(forty: Path) -> None:
    path = forty
    data = journal(path).read_bytes()
    journal(path).write_bytes(data[: len(data) // 2])  # mid-record, as the report did

    message = refusal(path)
    assert str(journal(path)) in message
    assert "shorter than" in message  # what is wrong
    assert str(backup(path)) in message  # what to restore
    assert f"mv {journal(path)} {journal(path)}.damaged" in message
    # Nothing was changed: the operator decides.
    assert journal(path).read_bytes() == data[: len(data) // 2]


def test_a_journal_cut_at_a_record_boundary_is_refused_too(forty: Path) -> None:
    path = forty
    lines = journal(path).read_bytes().splitlines(keepends=True)
    journal(path).write_bytes(b"".join(lines[: len(lines) // 2]))
    assert "shorter than" in refusal(path)


def test_a_flipped_byte_in_the_last_record_is_damage_not_a_torn_write(path: Path) -> None:
    with Database(path, fsync=False) as db:
        for number in range(3):
            db.table("requests").insert({"number": number, "status": "open"})
    lines = journal(path).read_bytes().splitlines(keepends=True)
    at = lines[-1].index(b"open")
    lines[-1] = lines[-1][:at] + b"opEn" + lines[-1][at + 4 :]  # complete, newline and all
    journal(path).write_bytes(b"".join(lines))

    with pytest.raises(StoreError) as caught:
        Database(path, fsync=False)
    message = str(caught.value)
    assert str(journal(path)) in message
    assert f"line {len(lines)}" in message and "checksum mismatch" in message
    assert str(backup(path)) in message
    assert f"truncate -s {len(b''.join(lines[:-1]))}" in message


def test_a_torn_last_write_is_still_dropped_quietly(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(path, fsync=False)
    try:
        for _ in range(5):
            new_request(store)
    finally:
        store.close()
    data = journal(path).read_bytes()
    last = data[:-1].rindex(b"\n") + 1
    journal(path).write_bytes(data[: last + 20])  # the last write was cut short

    with caplog.at_level(logging.WARNING, logger="mentordesk.state.db"):
        assert numbers(path) == [1, 2, 3, 4]
    assert "dropped the incomplete last record" in caplog.text


def test_request_numbers_are_not_reused_after_the_journal_loses_its_tail(path: Path) -> None:
    store = Store(path, fsync=False)
    try:
        for _ in range(5):
            new_request(store)
    finally:
        store.close()
    data = journal(path).read_bytes()
    journal(path).write_bytes(data[: data[:-1].rindex(b"\n") + 1 + 10])  # MD-0005 is torn

    store = Store(path, fsync=False)
    try:
        assert sorted(int(r["number"]) for r in store.requests()) == [1, 2, 3, 4]
        assert new_request(store) == 6  # 5 may be in someone's inbox already
    finally:
        store.close()


def test_numbers_given_out_in_a_transaction_reach_the_disk_before_its_record(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group commit: many requests numbered in one transaction sync the marks file once,
    and before the record that holds them (then an email can show the numbers)."""
    done: list[tuple[str, int]] = []
    real_fsync, real_write_all = os.fsync, db_module._write_all

    def fsync(fd: int) -> None:
        done.append(("sync", fd))
        real_fsync(fd)

    def write_all(fd: int, data: bytes) -> None:
        done.append(("write", fd))
        real_write_all(fd, data)

    store = Store(path, fsync=True)
    try:
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(db_module, "_write_all", write_all)
        with store.transaction():
            numbers = [new_request(store) for _ in range(5)]
        marks, records = store.db._marks_fd, store.db._fd
    finally:
        store.close()
    monkeypatch.undo()
    assert numbers == [1, 2, 3, 4, 5]
    assert done.count(("sync", marks)) == 1
    assert done.index(("sync", marks)) < done.index(("write", records))
    with Database(path, fsync=False, read_only=True) as db:
        assert db.high_water("request") == 5


def test_request_numbers_continue_after_a_restore_from_the_backup(forty: Path) -> None:
    path = forty
    data = journal(path).read_bytes()
    journal(path).write_bytes(data[: len(data) // 2])
    refusal(path)

    restore_as_told(path)
    assert numbers(path) == list(range(1, 21))  # the backup: the state as of the 2nd start
    store = Store(path, fsync=False)
    try:
        assert new_request(store) == 41  # 21-40 went out before the damage: never again
    finally:
        store.close()


def test_request_numbers_follow_the_highest_stored_even_when_the_counter_lags(
    path: Path,
) -> None:
    store = Store(path, fsync=False)
    try:
        store.save_request({"number": 7, "mentee": "a@example.org", "status": "open"})
        store.set_meta("next_request", 3)  # an older counter, as a repair might leave it
        assert new_request(store) == 8
    finally:
        store.close()


# --- the snapshot -------------------------------------------------------------------------


def compacted(path: Path, count: int = 3) -> bytes:
    with Database(path, fsync=False) as db:
        for number in range(count):
            db.table("requests").insert({"number": number, "status": "open"})
        db.compact()
    return path.read_bytes()


def test_the_snapshot_carries_a_checksum_and_stays_a_tinydb_file(path: Path) -> None:
    from tinydb import TinyDB

    snapshot = compacted(path)
    assert b'"_checksum":' in snapshot
    plain = TinyDB(path, access_mode="r")
    try:
        assert len(plain.table("requests")) == 3
    finally:
        plain.close()
    with Database(path, fsync=False) as db:
        assert "_checksum" not in db.tinydb.tables()
        assert len(db.table("requests")) == 3


def test_a_flipped_byte_in_the_snapshot_refuses_to_start(path: Path) -> None:
    snapshot = compacted(path)
    at = snapshot.index(b"open")
    path.write_bytes(snapshot[:at] + b"opEn" + snapshot[at + 4 :])  # still valid JSON

    with pytest.raises(StoreError) as caught:
        Database(path, fsync=False)
    message = str(caught.value)
    assert str(path) in message and "checksum" in message
    assert str(backup(path)) in message


def test_a_snapshot_stripped_of_its_checksum_is_refused(path: Path) -> None:
    snapshot = compacted(path)
    cut = snapshot.rindex(b',\n"_checksum":')
    path.write_bytes(snapshot[:cut] + b"\n}\n")
    assert "checksum" in refused_by_database(path)


def test_a_snapshot_from_before_checksums_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text('{\n"requests":{\n"1":{"number":1,"status":"open"}}\n}\n')
    with Database(path, fsync=False) as db:
        assert [doc["number"] for doc in db.table("requests")] == [1]


def test_following_the_message_restores_a_damaged_snapshot(path: Path) -> None:
    snapshot = compacted(path)
    with Database(path, fsync=False) as db:  # this start writes the backup
        db.table("requests").insert({"number": 9, "status": "open"})
    at = snapshot.index(b"open")
    path.write_bytes(snapshot[:at] + b"OPEN" + snapshot[at + 4 :])
    message = refused_by_database(path)

    # The message's own commands, run by a shell.
    command = message.split("`")[1]
    assert command.startswith("mv ") and "cp " in command
    subprocess.run(command, shell=True, check=True)
    with Database(path, fsync=False) as db:
        assert sorted(doc["number"] for doc in db.table("requests")) == [0, 1, 2]


def test_a_missing_snapshot_is_refused_once_there_was_one(path: Path) -> None:
    compacted(path)
    path.unlink()
    message = refused_by_database(path)
    assert str(path) in message and "missing" in message


def test_the_backup_is_a_whole_state_with_its_own_checksum(path: Path) -> None:
    with Database(path, fsync=False) as db:
        db.table("requests").insert({"number": 1, "status": "open"})
    with Database(path, fsync=False):
        pass  # a start after writes: the backup holds them
    data: Any = backup(path).read_bytes()
    assert b'"_checksum":' in data
    with Database(backup(path), read_only=True) as copy:
        assert [doc["number"] for doc in copy.table("requests")] == [1]
