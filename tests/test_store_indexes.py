"""The store's indexes answer exactly what a scan of the documents would, after every
kind of write, a rolled-back transaction and a reopen."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mentordesk.flows.expiry import EXPIRING, expired, waiting_since
from mentordesk.flows.ladder import Ladder, next_rung_moment, plan_climb
from mentordesk.state.records import LIVE, SessionStatus
from mentordesk.state.store import SUBJECT_CAP, Store, iso

NOW = datetime(2025, 6, 2, 14, 0, tzinfo=UTC)


def mentor(n: int, skills: list[str]) -> dict[str, Any]:
    return {"email": f"m{n}@example.com", "name": f"M{n}", "skills": skills, "status": "active"}


def request(number: int, status: str = "open", **fields: Any) -> dict[str, Any]:
    return {"number": number, "mentee": f"E{number}@Example.net", "status": status, **fields}


def session(uid: str, number: int, status: str, **fields: Any) -> dict[str, Any]:
    return {
        "uid": uid,
        "request": number,
        "mentor": "m1@example.com",
        "mentee": f"e{number}@example.net",
        "status": status,
        "start": iso(NOW),
        "end": iso(NOW + timedelta(minutes=30)),
        **fields,
    }


def scan_claims(store: Store, since: datetime) -> dict[str, int]:
    """claims_since the slow way: every request that counts against capacity."""
    counts: dict[str, int] = {}
    for doc in store.requests(["claimed", "booked", "met", "closed"]):
        if doc.get("claimed_by") and doc["claimed_at"] >= iso(since):
            counts[doc["claimed_by"]] = counts.get(doc["claimed_by"], 0) + 1
    return counts


def emails(docs: list[Mapping[str, Any]]) -> set[str]:
    return {str(d["email"]) for d in docs}


def test_mentors_with_skills_follows_skill_changes_and_reopen(store: Store, path: Path) -> None:
    store.save_mentor(mentor(1, ["python", "go"]))
    store.save_mentor(mentor(2, ["design"]))
    store.save_mentor(mentor(3, ["python"]))
    assert emails(store.mentors_with_skills(["python"])) == {"m1@example.com", "m3@example.com"}
    store.save_mentor(mentor(1, ["design"]))  # python dropped
    assert emails(store.mentors_with_skills(["python"])) == {"m3@example.com"}
    assert emails(store.mentors_with_skills(["design", "rust"])) == {
        "m1@example.com",
        "m2@example.com",
    }
    assert store.mentor_skills() == {"design", "python"}
    found = store.mentors_with_skills(["python"])[0]
    with pytest.raises(TypeError):
        found["name"] = "changed"  # type: ignore[index]  # a view of the stored document
    store.close()
    again = Store(path, fsync=False)
    try:
        assert emails(again.mentors_with_skills(["python"])) == {"m3@example.com"}
        assert again.mentor_skills() == {"design", "python"}
    finally:
        again.close()


def test_claims_since_counts_only_recent_claims_that_still_count(store: Store) -> None:
    for number in range(1, 9):
        at = iso(NOW - timedelta(days=10 * number))
        store.save_request(
            request(number, "claimed", claimed_by=f"m{number % 3}@example.com", claimed_at=at)
        )
    since = NOW - timedelta(days=45)
    assert store.claims_since(since) == scan_claims(store, since)
    assert sum(store.claims_since(since).values()) == 4
    # Released: the claim no longer counts; claimed again later: counted at its new time.
    store.save_request(request(2, "open"))
    assert store.claims_since(since) == scan_claims(store, since)
    store.save_request(request(7, "claimed", claimed_by="m0@example.com", claimed_at=iso(NOW)))
    assert store.claims_since(since) == scan_claims(store, since)
    assert store.claims_since(NOW) == {"m0@example.com": 1}
    # Met and closed still count; withdrawn does not.
    store.save_request(request(1, "closed", claimed_by="m1@example.com", claimed_at=iso(NOW)))
    store.save_request(request(3, "withdrawn", claimed_by="m0@example.com", claimed_at=iso(NOW)))
    assert store.claims_since(NOW) == {"m0@example.com": 1, "m1@example.com": 1}
    assert store.claims_since(since) == scan_claims(store, since)


def test_requests_where_by_status_sees_only_those_in_order(store: Store) -> None:
    for number, status in enumerate(["open", "closed", "open", "expired", "incomplete"], 1):
        store.save_request(request(number, status))
    shown: list[int] = []

    def test(doc: Mapping[str, Any]) -> bool:
        shown.append(int(doc["number"]))
        return int(doc["number"]) != 3

    found = store.requests_where(test, statuses=["open", "incomplete"])
    assert sorted(shown) == [1, 3, 5]
    assert [d["number"] for d in found] == [1, 5]
    found[0]["status"] = "changed"  # a copy: the store is untouched
    assert store.request(1) == {**request(1), "mentee": "e1@example.net"}
    store.save_request(request(1, "closed"))
    store.save_request(request(2, "open"))
    assert [d["number"] for d in store.requests_where(lambda d: True, statuses=["open"])] == [2, 3]


def test_session_indexes_follow_status_changes(store: Store) -> None:
    store.save_session(session("a", 1, "proposed"))
    store.save_session(session("b", 2, "accepted", mentor="m2@example.com"))
    store.save_session(session("c", 3, "held"))
    store.save_session(session("d", 4, "held", followup_asked=iso(NOW)))
    store.save_session(session("e", 5, "cancelled"))
    assert [s["uid"] for s in store.live_sessions_of("M1@example.com")] == ["a"]
    assert [s["uid"] for s in store.live_sessions_of("m2@example.com", "e1@example.net")] == [
        "a",
        "b",
    ]
    assert [s["uid"] for s in store.sessions_awaiting_followup()] == ["c"]
    store.save_session(session("a", 1, "held"))
    store.save_session(session("c", 3, "held", followup_skipped=iso(NOW)))
    assert store.live_sessions_of("m1@example.com") == []
    assert [s["uid"] for s in store.sessions_awaiting_followup()] == ["a"]
    every = store.sessions()
    for person in ("m1@example.com", "m2@example.com", "e3@example.net", "nobody@example.net"):
        assert store.sessions_of(person.upper()) == [
            s for s in every if person in (s["mentor"], s["mentee"])
        ]
    assert {s["uid"] for s in store.live_sessions()} == {
        s["uid"] for s in every if SessionStatus(s["status"]) in LIVE
    }


def test_a_rolled_back_transaction_leaves_the_indexes_as_the_documents(store: Store) -> None:
    store.save_mentor(mentor(1, ["python"]))
    store.save_request(request(1, "open"))
    with pytest.raises(RuntimeError), store.transaction():
        store.save_mentor(mentor(1, ["go"]))
        store.save_request(request(1, "claimed", claimed_by="m1@example.com", claimed_at=iso(NOW)))
        store.save_session(session("a", 1, "proposed"))
        raise RuntimeError("undo")
    assert emails(store.mentors_with_skills(["python"])) == {"m1@example.com"}
    assert store.mentors_with_skills(["go"]) == []
    assert store.claims_since(NOW - timedelta(days=1)) == {}
    assert [d["number"] for d in store.requests_where(lambda d: True, statuses=["open"])] == [1]
    assert store.live_sessions_of("m1@example.com") == []


def test_requests_due_finds_exactly_what_a_scan_of_every_request_finds(store: Store) -> None:
    """The ladder's and expiry's orders, against plan_climb and expired over all requests,
    through writes, a reopen-free change of settings and many moments."""
    rng = random.Random(11)
    ladder = Ladder(
        (
            ("bump", timedelta(days=2)),
            ("mentee_update", timedelta(days=5)),
            ("widen", timedelta(days=5)),
            ("escalate", timedelta(days=9)),
        )
    )
    statuses = ["open", "open", "open", "incomplete", "claimed", "closed", "expired"]
    for number in range(1, 301):
        opened = NOW - timedelta(hours=rng.randrange(0, 24 * 40))
        doc = request(number, rng.choice(statuses), created=iso(opened - timedelta(hours=1)))
        if rng.random() < 0.9:
            doc["opened"] = iso(opened)
        if rng.random() < 0.2:
            doc["reopened"] = iso(opened + timedelta(hours=rng.randrange(1, 48)))
        doc["ladder"] = {rung: iso(NOW) for rung, _ in ladder.rungs if rng.random() < 0.3}
        if rng.random() < 0.1:
            doc["ladder_skipped"] = {"bump": iso(NOW)}
        store.save_request(doc)

    def due_by_index(at: datetime, max_age: timedelta) -> tuple[list[int], list[int]]:
        climbing = store.requests_due(
            "ladder",
            next_rung_moment(ladder),
            version=ladder.rungs,
            upto=at,
            test=lambda d: bool(plan_climb(d, ladder, at)),
        )
        old = store.requests_due(
            "expiry",
            lambda d: (
                None
                if (s := waiting_since(d)) is None or d.get("status") not in EXPIRING
                else iso(s + max_age)
            ),
            version=max_age,
            upto=at,
            test=lambda d: expired(d, at, max_age),
        )
        return [d["number"] for d in climbing], [d["number"] for d in old]

    def due_by_scan(at: datetime, max_age: timedelta) -> tuple[list[int], list[int]]:
        every = store.requests()
        return (
            [d["number"] for d in every if plan_climb(d, ladder, at)],
            [d["number"] for d in every if expired(d, at, max_age)],
        )

    for step in range(40):
        at = NOW + timedelta(hours=7 * step)
        max_age = timedelta(days=30 if step < 20 else 21)  # a new setting: a new order
        assert due_by_index(at, max_age) == due_by_scan(at, max_age)
        # The sweep's own writes: a rung done, a request closed or re-opened.
        for number in rng.sample(range(1, 301), 10):
            doc = store.request(number) or {}
            choice = rng.random()
            if choice < 0.4:
                doc.setdefault("ladder", {})[rng.choice(ladder.rungs)[0]] = iso(at)
            elif choice < 0.7:
                doc["status"] = rng.choice(statuses)
            else:
                doc.update(status="open", reopened=iso(at))
            store.save_request(doc)
    assert any(due_by_scan(NOW + timedelta(days=10), timedelta(days=30)))


def test_a_requests_audit_log_by_index_is_the_scan_of_every_event(store: Store, path: Path) -> None:
    for step in range(60):
        store.audit("event", now=NOW + timedelta(minutes=step), request=step % 7, n=step)
        if step % 5 == 0:
            store.audit("no request", now=NOW, mentor="m1@example.com")
    with pytest.raises(RuntimeError), store.transaction():
        store.audit("undone", now=NOW, request=3)
        raise RuntimeError("undo")

    def scanned(number: int) -> list[dict[str, Any]]:
        return [d for d in store.audit_log() if d.get("request") == number]

    for number in range(8):
        assert store.audit_log(number) == scanned(number)
        for event in ("event", "undone", "no request"):
            assert store.audit_has(number, event) == any(
                d["event"] == event for d in scanned(number)
            )
    assert [d["n"] for d in store.audit_log(3)] == list(range(3, 60, 7))
    store.close()
    again = Store(path, fsync=False)
    try:
        assert [d["n"] for d in again.audit_log(3)] == list(range(3, 60, 7))
        assert again.audit_has(3, "event") and not again.audit_has(3, "undone")
    finally:
        again.close()


def test_every_request_of_a_mentee_is_found_by_index(store: Store, path: Path) -> None:
    """What orientation asks for each new request ("did this mentee write before?")."""
    with store.transaction():
        store.save_request({**request(1), "mentee": "Ann@Example.net"})
        store.save_request({**request(2, "closed"), "mentee": "ann@example.net"})
        store.save_request(request(3))
    with pytest.raises(RuntimeError), store.transaction():
        store.save_request({**request(4), "mentee": "ann@example.net"})
        raise RuntimeError("rolled back")
    scanned = [
        d["number"] for d in store.requests_where(lambda d: d["mentee"] == "ann@example.net")
    ]
    assert store.request_numbers_of("ANN@example.net") == sorted(scanned) == [1, 2]
    assert store.request_numbers_of("nobody@example.net") == []
    store.close()
    reopened = Store(path, fsync=False)
    try:
        assert reopened.request_numbers_of("ann@example.net") == [1, 2]
    finally:
        reopened.close()


def test_a_requests_emails_by_index_are_the_scan_of_the_outbox(store: Store, path: Path) -> None:
    """The history's emails: by index, as the scan finds them, subjects kept once sent."""

    def put(n: int, request: int | None) -> int:
        return store.enqueue(
            message_id=f"<{n}@example.org>",
            sender="desk@example.org",
            recipients=[f"p{n}@example.net"],
            data=b"Subject: bytes\r\n\r\nhi\r\n",
            kind="claim_invite",
            now=NOW + timedelta(minutes=n),
            request=request,
            subject=f"Email {n}\r\n  for you",
        )

    ids = [put(n, None if n % 4 == 0 else n % 3) for n in range(30)]
    store.mark_all_sent(ids[:10], NOW)
    store.mark_failed(ids[10], error="550 no", now=NOW)
    with pytest.raises(RuntimeError), store.transaction():
        put(99, 1)
        raise RuntimeError("undo")

    def scanned(number: int) -> list[dict[str, Any]]:
        return [d for d in store.outbox() if d.get("request") == number]

    for number in range(4):
        assert store.outbox_of(number) == scanned(number)
    first = store.outbox_of(1)[0]
    assert (first["subject"], first["status"], "data" in first) == (
        "Email 1 for you",
        "sent",
        False,
    )
    store.close()
    again = Store(path, fsync=False)
    try:
        assert [d["subject"] for d in again.outbox_of(2)][:2] == [
            "Email 2 for you",
            "Email 5 for you",
        ]
        assert len(again.outbox_of(1)) == len([n for n in range(30) if n % 4 and n % 3 == 1])
    finally:
        again.close()


def test_a_requests_inbound_mail_by_index_is_the_scan_of_every_record(
    store: Store, path: Path
) -> None:
    """A record may gain its request later (failing, then placed): the index follows."""
    for n in range(20):
        store.record_message(
            f"<in{n}@example.net>", key=f"k{n}", kind="reply", now=NOW, request=n % 3 or None
        )
    store.record_message("<late@example.net>", key="kl", kind="reply", now=NOW, status="failing")
    store.record_message("<late@example.net>", key="kl", kind="reply", now=NOW, request=2)
    store.record_message("<in1@example.net>", key="k1", kind="reply", now=NOW, request=None)
    with pytest.raises(RuntimeError), store.transaction():
        store.record_message("<undone@example.net>", key="ku", kind="reply", now=NOW, request=2)
        store.record_message("<in2@example.net>", key="k2", kind="reply", now=NOW, request=1)
        raise RuntimeError("undo")

    def scanned(number: int) -> list[dict[str, Any]]:
        return [d for d in store.messages() if d.get("request") == number]

    for number in range(4):
        assert store.messages_of(number) == scanned(number)
    assert "<late@example.net>" in {d["message_id"] for d in store.messages_of(2)}
    assert "<in1@example.net>" not in {d["message_id"] for d in store.messages_of(1)}
    before = {n: store.messages_of(n) for n in range(4)}
    store.close()
    again = Store(path, fsync=False)
    try:
        assert {n: again.messages_of(n) for n in range(4)} == before
    finally:
        again.close()


def test_a_long_or_folded_subject_is_kept_on_one_line_and_capped(store: Store) -> None:
    number = store.enqueue(
        message_id="<long@example.org>",
        sender="desk@example.org",
        recipients=["p@example.net"],
        data=b"Subject: x\r\n\r\nhi\r\n",
        kind="announcement",
        now=NOW,
        request=7,
        subject="Café\tnews\r\n" + "ü" * 300,
    )
    store.mark_sent(number, NOW)
    [kept] = store.outbox_of(7)
    assert kept["subject"] == ("Café news " + "ü" * 300)[:SUBJECT_CAP]
    assert len(kept["subject"]) == SUBJECT_CAP == 200


def test_claim_counts_asked_again_follow_every_claim_and_release() -> None:
    from mentordesk.state.indexes import ClaimIndex

    claims = ClaimIndex()
    claims.put(1, "ada@example.com", "2025-06-01T10:00:00+00:00")
    cutoff = "2025-06-01T00:00:00+00:00"
    assert claims.counts_since(cutoff) == {"ada@example.com": 1}
    claims.counts_since(cutoff)["ada@example.com"] = 99  # a caller's copy, not the index's
    claims.put(2, "ada@example.com", "2025-06-02T10:00:00+00:00")
    assert claims.counts_since(cutoff) == {"ada@example.com": 2}
    claims.put(2, "bea@example.com", "2025-06-02T10:00:00+00:00")  # reassigned
    assert claims.counts_since(cutoff) == {"ada@example.com": 1, "bea@example.com": 1}
    claims.drop(1)
    assert claims.counts_since(cutoff) == {"bea@example.com": 1}
    assert claims.counts_since("2025-06-03T00:00:00+00:00") == {}
