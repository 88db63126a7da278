"""Closed history moves to the archive on disk, and every read of history answers as
before: by request, by person, by Message-ID, by time, in reports and in export; across
a reopen, a crash halfway through a move, and a backup restored."""

from __future__ import annotations

import csv
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mentordesk.config import load_config
from mentordesk.errors import ConfigError, StoreError
from mentordesk.reports import export_csv
from mentordesk.state.archive import Archive, ArchivedDoc, _Checkpoints, archive_path
from mentordesk.state.store import Store, iso

T0 = datetime(2023, 3, 6, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=500)  # when the archive step runs
BEFORE = LATER - timedelta(days=400)


def life(store: Store, number: int, at: datetime, *, status: str = "closed") -> None:
    """One request's life as the daemon stores it: the request email, the claim emails
    and acknowledgement (sent), the claim, a session held and asked about, the closing."""
    mentee, mentor = f"mentee{number}@example.net", "ada@example.com"
    with store.transaction():
        store.record_message(
            f"<req-{number}@client.test>", key=f"imap:1:{number}", kind="request", now=at,
            request=number, fingerprint=f"fp{number}",
        )  # fmt: skip
        store.save_request(
            {
                "number": number, "mentee": mentee, "name": f"Mentee {number}",
                "status": "open", "created": iso(at), "updated": iso(at),
            }
        )  # fmt: skip
        for kind in ("ack", "claim_invite"):
            message_id = f"<{kind}-{number}@program.test>"
            item = store.enqueue(
                message_id=message_id, sender="mentors@program.test", recipients=[mentee],
                data=b"x" * 100, kind=kind, now=at, request=number, subject=f"{kind} {number}",
            )  # fmt: skip
            store.link_thread(message_id, kind="request", ref=number)
            store.mark_sent(item, at)
        store.audit("request received", now=at, request=number)
    done = at + timedelta(days=3)
    with store.transaction():
        store.save_session(
            {
                "uid": f"s{number}@program.test", "request": number, "mentor": mentor,
                "mentee": mentee, "status": "held", "start": iso(at + timedelta(days=2)),
                "end": iso(at + timedelta(days=2, minutes=30)), "followup_asked": iso(done),
            }
        )  # fmt: skip
        doc = store.request(number) or {}
        doc.update(status=status, claimed_by=mentor, claimed_at=iso(at), updated=iso(done))
        store.save_request(doc)
        store.audit("claimed", now=at, request=number, mentor=mentor)


def reads(store: Store, number: int) -> dict[str, Any]:
    """Everything the daemon, the desk and the reports read about one request."""
    mentee = f"mentee{number}@example.net"
    return {
        "request": store.request(number),
        "in all requests": [r for r in store.requests() if r["number"] == number],
        "session": store.session(f"s{number}@program.test"),
        "sessions of": store.sessions_of(mentee),
        "outbox of": store.outbox_of(number),
        "by message id": store.outbox_by_message_id(f"<ack-{number}@program.test>"),
        "sent to": store.sent_to(f"<ack-{number}@program.test>"),
        "thread": store.thread(["<unknown@x>", f"<claim_invite-{number}@program.test>"]),
        "message": store.message(
            f"<req-{number}@client.test>", key=f"imap:1:{number}", fingerprint=f"fp{number}"
        ),
        "processed": store.is_processed(f"<req-{number}@client.test>", key=f"imap:1:{number}"),
        "messages of": store.messages_of(number),
        "audit": store.audit_log(number),
        "has claimed": store.audit_has(number, "claimed"),
        "numbers of": store.request_numbers_of(mentee),
    }


def in_memory(store: Store, table: str) -> int:
    return sum(1 for _ in store.db.stored_all(table))


def test_a_finished_request_moves_whole_and_reads_the_same(store: Store) -> None:
    life(store, 1, T0)  # finished long ago: moves
    life(store, 2, T0, status="met")  # not finished: stays
    life(store, 3, LATER - timedelta(days=30))  # finished lately: stays
    before = {n: reads(store, n) for n in (1, 2, 3)}
    since = store.audit_since(T0)

    moved = store.archive_history(before=BEFORE)

    # 1: request, session, emails, threads, message, audit; 2: its mail, not the request
    assert moved == (1 + 1 + 2 + 2 + 1 + 2) + (2 + 2 + 1 + 2)
    assert store.db.stored("requests", 1) is None and store.archive.count("requests") == 1
    assert store.db.stored("requests", 2) is not None and in_memory(store, "sessions") == 2
    assert {n: reads(store, n) for n in (1, 2, 3)} == before
    assert store.audit_since(T0) == since
    assert store.archive_history(before=BEFORE) == 0  # nothing twice


def test_a_request_with_anything_still_in_motion_stays(store: Store) -> None:
    for number in (1, 2, 3, 4):
        life(store, number, T0)
    with store.transaction():
        store.save_session({**(store.session("s1@program.test") or {}), "status": "accepted"})
        store.enqueue(
            message_id="<late@program.test>", sender="mentors@program.test",
            recipients=["x@example.net"], data=b"x", kind="ack", now=T0, request=2,
        )  # fmt: skip
        store.record_message(
            "<again@client.test>", key="imap:1:a", kind="reply", now=T0, request=3,
            status="failing",
        )  # fmt: skip
        held = store.session("s4@program.test") or {}
        held.pop("followup_asked")  # the after-session mail is still due
        store.save_session(held)

    store.archive_history(before=BEFORE)

    assert store.archive.count("requests") == 0
    assert [store.db.stored("requests", n) is not None for n in (1, 2, 3, 4)] == [True] * 4


def test_history_about_no_request_moves_by_age(store: Store) -> None:
    with store.transaction():
        store.record_message("<enrol@client.test>", key="imap:1:e", kind="enroll", now=T0)
        store.audit("mentor enrolled", now=T0, mentor="ada@example.com")
        store.enqueue(
            message_id="<welcome@program.test>", sender="mentors@program.test",
            recipients=["ada@example.com"], data=b"x", kind="welcome", now=T0,
        )  # fmt: skip
        store.link_thread("<welcome@program.test>", kind="mentor", ref="ada@example.com")
        store.enqueue(
            message_id="<waiting@program.test>", sender="mentors@program.test",
            recipients=["ada@example.com"], data=b"x", kind="welcome", now=T0,
        )  # fmt: skip
    store.mark_all_sent([1], T0)
    assert store.take_reply_slot("old@example.net", now=T0, per_hour=5)
    assert store.take_reply_slot("new@example.net", now=LATER, per_hour=5)

    assert store.archive_history(before=BEFORE) == 4

    assert store.thread(["<welcome@program.test>"]) == {
        "message_id": "<welcome@program.test>", "kind": "mentor", "ref": "ada@example.com"
    }  # fmt: skip
    assert store.is_processed("<enrol@client.test>", key="imap:1:e")
    assert [e["event"] for e in store.audit_log()] == ["mentor enrolled"]
    assert [d["message_id"] for d in store.outbox("pending")] == ["<waiting@program.test>"]


def test_reply_counts_older_than_asked_are_dropped(store: Store) -> None:
    assert store.take_reply_slot("old@example.net", now=T0, per_hour=1)
    assert store.take_reply_slot("new@example.net", now=LATER, per_hour=1)
    assert store.drop_reply_counts(LATER - timedelta(days=1)) == 1
    assert in_memory(store, "rates") == 1
    assert store.take_reply_slot("old@example.net", now=LATER, per_hour=1)
    assert not store.take_reply_slot("new@example.net", now=LATER, per_hour=1)


def test_ids_are_never_given_again_after_a_reopen(path: Path, store: Store) -> None:
    life(store, 1, T0)
    store.archive_history(before=BEFORE)
    assert in_memory(store, "audit") == 0
    store.close()

    reopened = Store(path, fsync=False)
    try:
        reopened.audit("later", now=LATER)
        events = reopened.audit_log()
        assert [e["event"] for e in events] == ["request received", "claimed", "later"]
        ids = [i for i, _ in reopened.history_items("audit")]
        assert len(set(ids)) == 3
        assert reopened.request(1) is not None and reopened.request_numbers_of(
            "mentee1@example.net"
        ) == [1]
    finally:
        reopened.close()


def test_a_crash_between_archive_and_working_set_loses_and_doubles_nothing(
    path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in (1, 2):
        life(store, number, T0)
    before = {n: reads(store, n) for n in (1, 2)}

    def crash(*args: object, **kwargs: object) -> None:
        raise StoreError("the power went out")

    # The archive's rows are committed; the journal record taking them out of memory is not.
    monkeypatch.setattr(store.db, "_append", crash)
    with pytest.raises(StoreError):
        store.archive_history(before=BEFORE)
    monkeypatch.undo()
    store.close()

    reopened = Store(path, fsync=False)
    try:
        assert reopened.archive.count("requests") == 2  # in both places now
        assert reopened.db.stored("requests", 1) is not None
        assert {n: reads(reopened, n) for n in (1, 2)} == before
        assert len(reopened.requests()) == 2 and len(reopened.audit_log()) == 4
        assert reopened.archive_history(before=BEFORE) > 0  # the move finishes
        assert reopened.db.stored("requests", 1) is None
        assert {n: reads(reopened, n) for n in (1, 2)} == before
    finally:
        reopened.close()


def test_export_and_a_read_only_store_include_the_archive(path: Path, store: Store) -> None:
    life(store, 1, T0)
    life(store, 2, LATER)
    store.archive_history(before=BEFORE)
    reader = Store(path, fsync=False, read_only=True)
    try:
        assert [r["number"] for r in reader.requests()] == [1, 2]
        written = export_csv(reader, path.parent / "export")
    finally:
        reader.close()
    assert written["requests"] == 2 and written["outbox"] == 4 and written["audit"] == 4
    with (path.parent / "export" / "requests.csv").open(encoding="utf-8") as rows:
        assert [row["number"] for row in csv.DictReader(rows)] == ["1", "2"]


def test_a_read_only_store_without_an_archive_creates_none(path: Path) -> None:
    Store(path, fsync=False).close()
    archive_path(path).unlink()
    reader = Store(path, fsync=False, read_only=True)
    try:
        assert reader.requests() == [] and reader.request(7) is None
    finally:
        reader.close()
    assert not archive_path(path).exists()


def test_archive_after_shorter_than_a_year_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[program]\nname = "P"\naddress = "mentors@program.test"\n'
        'coordinator = "coord@program.test"\n[state]\npath = "state/x.json"\n'
        'archive_after = "90d"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as refused:
        load_config(config, environ={"MENTORDESK_SECRET": "s" * 32})
    assert "archive_after" in str(refused.value) and "at least 370d" in str(refused.value)


def test_mail_leaves_sooner_but_what_needs_a_person_stays(store: Store) -> None:
    from mentordesk.flows.archiving import needs_a_person

    life(store, 1, T0, status="met")  # a request still in motion: it stays
    with store.transaction():
        store.record_message("<lost@client.test>", key="imap:1:l", kind="unknown", now=T0)
        failed = store.enqueue(
            message_id="<failed@program.test>", sender="mentors@program.test",
            recipients=["gone@example.net"], data=b"x", kind="ack", now=T0,
        )  # fmt: skip
        store.mark_failed(failed, error="550 no such user", now=T0)
    mail_before = T0 + timedelta(days=30)

    moved = store.archive_history(
        before=T0 - timedelta(days=1), mail_before=mail_before, keep=needs_a_person
    )

    assert moved == 2 + 2 + 1 + 2  # request 1's emails, threads, message, audit
    assert [r["number"] for r in store.requests(["met"])] == [1]
    assert [m["message_id"] for m in store.messages_where(lambda m: True)] == ["<lost@client.test>"]
    assert [o["message_id"] for o in store.outbox("failed")] == ["<failed@program.test>"]
    assert store.audit_has(1, "claimed") and len(store.outbox_of(1)) == 2
    # Once older than [state] archive_after, they go too.
    assert store.archive_history(before=LATER, mail_before=LATER, keep=needs_a_person) == 2


def test_the_archive_and_its_log_are_private_and_one_file_at_rest(path: Path) -> None:
    store = Store(path, fsync=True)
    life(store, 1, T0)
    store.archive_history(before=BEFORE)
    logs = [path.with_name(path.name + ".archive" + s) for s in ("-wal", "-shm")]
    modes = {p.name: p.stat().st_mode & 0o777 for p in [archive_path(path), *logs] if p.exists()}
    assert set(modes.values()) == {0o600}, modes
    store.close()
    assert not any(p.exists() for p in logs)  # folded into the file at close


def test_small_batches_are_checkpointed_too(tmp_path: Path) -> None:
    """A sweep archives a few rows at a time, and each commit rewrites its index pages:
    the log is folded in every EVERY_COMMITS commits as well as every EVERY_ROWS rows,
    so it never grows long enough for a checkpoint to hold the writer."""
    archive = Archive(tmp_path / "state.json.archive", fsync=False)
    try:
        for n in range(3 * _Checkpoints.EVERY_COMMITS):
            archive.put([ArchivedDoc("audit", n + 1, {"at": iso(T0), "event": "tick"})])
        checkpoints = archive._checkpoints
        assert checkpoints is not None
        deadline = time.monotonic() + 10
        while checkpoints.done < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert checkpoints.done >= 2  # the thread may fold two triggers into one
        assert archive.count("audit") == 3 * _Checkpoints.EVERY_COMMITS
    finally:
        archive.close()
