"""The coordinator's desk (flows/coordinator.py) over a real store, its outbox parsed.

Every move goes through ``CoordinatorDesk`` on the store's writer thread as the CLI and
the web desk call it; what people are sent is read back from the outbox, and calendar
objects by ical.js and vobject.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mentordesk.flows.coordinator import CoordinatorDesk, DeskOutcome, parse_ref
from mentordesk.state.store import from_iso, iso
from mentordesk.timers import Registry

from .desk import mail
from .icalcheck import read_with_icaljs, read_with_vobject
from .timetravel import T0, Harness, mentor_doc, text_of

JORDAN = "jordan@example.net"
ADA, BEA, CYD = "ada@example.com", "bea@example.com", "cyd@example.com"
REQUEST = (
    "Name: Jordan Lee\nSkills: python\nTimezone: America/New_York\n"
    "Availability: Tue 12:00-14:00\n"
    "Details: I'm learning Python and would love a review of my first project.\n"
)
TEAM = [
    mentor_doc(ADA, "Ada Lovelace", ["python"]),
    mentor_doc(BEA, "Bea Brown", ["python"]),
    mentor_doc(CYD, "Cyd Charisse", ["python"], capacity=1),
    mentor_doc("pat@example.com", "Pat Paused", ["python"], status="paused"),
    mentor_doc("pen@example.com", "Pen Pending", ["python"], status="pending"),
    mentor_doc("js@example.com", "Jo Script", ["javascript"]),
]
BY = "cli:alice"


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await Harness(tmp_path, Registry(), matching={"invite_count": 2}).open()
    await harness.seed(*TEAM)
    await harness.receive(mail(f"Jordan Lee <{JORDAN}>", "Mentor request", REQUEST))
    yield harness
    await harness.close()


def coordinator(desk: Harness) -> CoordinatorDesk:
    return desk.coordinator.desks.coordinator


async def act(desk: Harness, method: str, *args: Any, **kwargs: Any) -> DeskOutcome:
    fn = getattr(coordinator(desk), method)
    outcome: DeskOutcome = await desk.call(fn, *args, by=BY, now=desk.clock(), **kwargs)
    return outcome


def calendar(message: EmailMessage) -> dict[str, Any]:
    [part] = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    ics = part.get_payload(decode=True)
    assert isinstance(ics, bytes)
    read = read_with_icaljs(ics, 1)
    assert read == read_with_vobject(ics, 1), "ical.js and vobject disagree"
    return read


async def audit(desk: Harness, event: str) -> list[dict[str, Any]]:
    log = await desk.call(desk.store.audit_log)
    return [e for e in log if e["event"] == event]


def test_references_are_read_as_people_write_them() -> None:
    assert [parse_ref(r) for r in ("MD-0042", "md-42", "#42", "42", " [MD-7] ")] == [
        42,
        42,
        42,
        42,
        7,
    ]
    assert [parse_ref(r) for r in ("MD-", "forty", "0", "-3", "MD-42x")] == [None] * 5


async def test_candidates_are_matchings_ranking_with_load(desk: Harness) -> None:
    candidates = await desk.call(coordinator(desk).candidates, "MD-0001", desk.clock())
    emails = [c.email for c in candidates]
    # Paused, pending and other-skill mentors cannot take it; the rest in matching's order.
    assert set(emails) == {ADA, BEA, CYD}
    ranked, _ = await desk.call(
        desk.coordinator.matching.ranking, await desk.request(1), desk.clock()
    )
    assert emails == [c.email for c in ranked]
    assert [c.rank for c in candidates] == [1, 2, 3]
    by_email = {c.email: c for c in candidates}
    assert (by_email[CYD].taken, by_email[CYD].capacity, by_email[CYD].status) == (0, 1, "active")
    assert by_email[ADA].invited and not by_email[CYD].invited
    assert await desk.call(coordinator(desk).candidates, "MD-0099", desk.clock()) == []


async def test_assign_introduces_both_and_proposes_a_session(desk: Harness) -> None:
    outcome = await act(desk, "assign", "MD-0001", CYD)
    assert outcome.done, outcome
    assert outcome.message.startswith("MD-0001 is now with Cyd Charisse; Cyd Charisse and the")
    assert "invited to a session on" in outcome.message
    request = await desk.request(1)
    assert (request["status"], request["claimed_by"]) == ("booked", CYD)
    [intro] = await desk.sent("intro_mentor", CYD)
    assert JORDAN in text_of(intro)
    assert await desk.sent("intro_mentee", JORDAN)
    [invite] = await desk.sent("session_invite", CYD)
    assert calendar(invite)["method"] == "REQUEST"
    [assigned] = await audit(desk, "assigned")
    assert (assigned["by"], assigned["mentor"]) == (BY, CYD)

    # Cyd's one request this month is taken: a second assign says so and changes nothing.
    await desk.receive(mail("Sam Doe <sam@example.net>", "Mentor request", REQUEST))
    before = await desk.kinds()
    refused = await act(desk, "assign", "MD-0002", CYD)
    assert refused == DeskOutcome(False, "Cyd Charisse has taken 1 of 1 requests this month.")
    assert await desk.kinds() == before
    assert (await desk.request(2))["status"] == "open"


@pytest.mark.parametrize(
    ("mentor", "message"),
    [
        ("pat@example.com", "Pat Paused is paused; resume them first if they agree."),
        ("pen@example.com", "Pen Pending is not approved yet (mentor approve pen@example.com)."),
        (JORDAN, "No mentor has the address jordan@example.net."),
    ],
)
async def test_assign_refuses_who_cannot_take_it(desk: Harness, mentor: str, message: str) -> None:
    before = await desk.kinds()
    outcome = await act(desk, "assign", "1", mentor)
    assert not outcome.done and outcome.message == message
    assert outcome.unknown == (mentor == JORDAN)
    assert await desk.kinds() == before
    assert (await desk.request(1))["status"] == "open"


async def test_unknown_reference_is_marked_unknown(desk: Harness) -> None:
    for method, args in (("assign", ("MD-0042", ADA)), ("withdraw", ("nonsense",))):
        outcome = await act(desk, method, *args)
        assert not outcome.done and outcome.unknown
        assert "a reference looks like MD-0042" in outcome.message


async def test_reassign_tells_the_holder_cancels_and_introduces_the_new_pair(
    desk: Harness,
) -> None:
    claimed = await desk.call(desk.coordinator.claims.claim, 1, ADA, desk.clock(), via="link")
    assert claimed.outcome == "claimed"
    [old_invite] = await desk.sent("session_invite", ADA)
    old = calendar(old_invite)["events"][0]
    desk.clock.advance(hours=1)

    assert (await act(desk, "reassign", "MD-0001", ADA)).message == (
        "MD-0001 is already with Ada Lovelace."
    )
    outcome = await act(desk, "reassign", "MD-0001", CYD)
    assert outcome.done, outcome
    assert "Ada Lovelace was told (their session was cancelled in both calendars)" in (
        outcome.message
    )
    [told] = await desk.sent("reassigned_mentor", ADA)
    assert "given MD-0001 to another mentor" in text_of(told)
    for person in (ADA, JORDAN):
        [cancel] = await desk.sent("session_cancelled", person)
        event = calendar(cancel)["events"][0]
        assert calendar(cancel)["method"] == "CANCEL"
        assert (event["uid"], event["sequence"]) == (old["uid"], old["sequence"] + 1)
    [mentee_cancel] = await desk.sent("session_cancelled", JORDAN)
    assert "Your new mentor's introduction" in " ".join(text_of(mentee_cancel).split())
    # The mentee is not told "we are finding you another mentor": the new intro tells.
    assert not await desk.sent("request_released", JORDAN)
    [new_intro] = await desk.sent("intro_mentor", CYD)
    assert JORDAN in text_of(new_intro)
    assert len(await desk.sent("intro_mentee", JORDAN)) == 2
    [new_invite] = await desk.sent("session_invite", CYD)
    new = calendar(new_invite)["events"][0]
    assert new["uid"] != old["uid"]
    # Nobody else is invited by matching, and Ada gets no "someone took it" mail.
    assert not await desk.sent("claim_taken", ADA)
    request = await desk.request(1)
    assert (request["status"], request["claimed_by"]) == ("booked", CYD)
    assert ADA in request["released_by"]
    [event] = await audit(desk, "reassigned")
    assert (event["by"], event["was"], event["mentor"]) == (BY, ADA, CYD)

    history = await desk.call(coordinator(desk).request_history, "MD-0001")
    texts = [line.text for line in history]
    assert f"Reassigned from Ada Lovelace <{ADA}> to Cyd Charisse <{CYD}> by {BY}" in texts
    kinds = {line.kind for line in history}
    assert kinds == {"event", "email out", "email in", "session"}
    assert any("cancelled (SEQUENCE 1)" in t for t in texts)


async def test_a_refused_reassign_changes_nothing(desk: Harness) -> None:
    await desk.call(desk.coordinator.claims.claim, 1, ADA, desk.clock(), via="link")
    await desk.receive(mail("Sam Doe <sam@example.net>", "Mentor request", REQUEST))
    assert (await act(desk, "assign", "MD-0002", CYD)).done
    before = await desk.kinds()
    # Cyd is full: nothing may happen, not even the hand-over from Ada.
    outcome = await act(desk, "reassign", "MD-0001", CYD)
    assert outcome == DeskOutcome(False, "Cyd Charisse has taken 1 of 1 requests this month.")
    assert await desk.kinds() == before
    request = await desk.request(1)
    assert (request["status"], request["claimed_by"]) == ("booked", ADA)
    assert (await act(desk, "assign", "MD-0001", BEA)).message.startswith(
        "MD-0001 is already with Ada Lovelace; to give it to someone else, reassign it."
    )
    refusals = await audit(desk, "coordinator refused")
    assert [r["by"] for r in refusals] == [BY, BY]


async def test_withdraw_for_the_mentee_cancels_and_tells_both(desk: Harness) -> None:
    await desk.call(desk.coordinator.claims.claim, 1, ADA, desk.clock(), via="link")
    outcome = await act(desk, "withdraw", "MD-0001")
    assert outcome == DeskOutcome(
        True,
        "MD-0001 is withdrawn; the mentee and Ada Lovelace were told; "
        "the session was cancelled in both calendars.",
    )
    assert (await desk.request(1))["status"] == "withdrawn"
    assert await desk.sent("withdrawn_mentor", ADA)
    [told] = await desk.sent("request_withdrawn", JORDAN)
    assert told["Subject"] == "[MD-0001] Your request is withdrawn"
    for person in (ADA, JORDAN):
        [cancel] = await desk.sent("session_cancelled", person)
        assert calendar(cancel)["method"] == "CANCEL"
    again = await act(desk, "withdraw", "MD-0001")
    assert again == DeskOutcome(False, "MD-0001 is withdrawn: it has ended.")
    [event] = await audit(desk, "withdrawn for the mentee")
    assert event["by"] == BY


async def test_close_only_after_the_session_was_held(desk: Harness) -> None:
    refused = await act(desk, "close", "MD-0001")
    assert refused.message == (
        "MD-0001 is open: only a request whose session was held can be closed. "
        "To call it off, withdraw it."
    )
    await desk.call(desk.coordinator.claims.claim, 1, ADA, desk.clock(), via="link")

    def meet() -> None:
        request = desk.store.request(1)
        assert request is not None
        desk.store.save_request({**request, "status": "met"})

    await desk.call(meet)
    outcome = await act(desk, "close", "MD-0001")
    assert outcome == DeskOutcome(
        True, "MD-0001 is closed; no after-session questions will be sent."
    )
    assert (await desk.request(1))["status"] == "closed"


async def test_resend_sends_the_same_invitation_again(desk: Harness) -> None:
    refused = await act(desk, "resend_invitation", "MD-0001")
    assert refused == DeskOutcome(False, "MD-0001 has no session in calendars.")
    await desk.call(desk.coordinator.claims.claim, 1, ADA, desk.clock(), via="link")
    outcome = await act(desk, "resend_invitation", "MD-0001")
    assert outcome.done and "went again to Ada Lovelace and the mentee" in outcome.message
    for person in (ADA, JORDAN):
        first, second = await desk.sent("session_invite", person)
        a, b = calendar(first)["events"][0], calendar(second)["events"][0]
        same = ("uid", "sequence", "occurrences")
        assert [a[k] for k in same] == [b[k] for k in same]


async def test_mentor_standing_for_them(desk: Harness) -> None:
    outcome = await act(desk, "pause", ADA)
    assert outcome == DeskOutcome(
        True, "Ada Lovelace is paused: no new requests until resumed. Ada Lovelace was told."
    )
    [told] = await desk.sent("mentor_status", ADA)
    assert "A coordinator made this change for you" in text_of(told)
    assert told["Subject"] == "[Test Mentors] You are paused"
    assert (await act(desk, "pause", ADA)).message == (
        "Ada Lovelace is paused already; nothing changed."
    )
    assert (await act(desk, "resume", ADA)).done
    until = T0 + timedelta(days=100)
    renewed = await act(desk, "renew", ADA, until=until)
    assert renewed.message.startswith(f"Ada Lovelace's term now runs until {iso(until)[:10]}.")
    mentor = await desk.call(desk.store.mentor, ADA)
    assert mentor["term_end"] == iso(until)
    past = await act(desk, "renew", ADA, until=T0 - timedelta(days=1))
    assert not past.done and "cannot end in the past" in past.message
    events = [e["event"] for e in await desk.call(desk.store.audit_log) if e.get("by") == BY]
    assert events == ["mentor pause", "coordinator refused", "mentor resume", "mentor renew"]
    unknown = await act(desk, "pause", "nobody@example.org")
    assert unknown.unknown and not unknown.done


async def test_resign_for_a_holder_hands_the_request_back(desk: Harness) -> None:
    await desk.call(desk.coordinator.claims.claim, 1, ADA, desk.clock(), via="link")
    outcome = await act(desk, "resign", ADA)
    assert outcome.done
    assert "1 request went back to matching" in outcome.message
    request = await desk.request(1)
    assert request["status"] == "open" and ADA in request["released_by"]
    assert await desk.sent("request_released", JORDAN)
    refused = await act(desk, "resign", ADA)
    assert refused == DeskOutcome(
        False, "Ada Lovelace is resigned: they have already stepped down."
    )
    [left] = await audit(desk, "mentor resigned")
    assert left["by"] == BY


async def test_approve_a_pending_mentor(desk: Harness) -> None:
    refused = await act(desk, "approve", ADA)
    assert refused == DeskOutcome(
        False, "Ada Lovelace is active: only a pending enrollment can be approved."
    )
    outcome = await act(desk, "approve", " Pen@Example.COM ")  # as a person types it
    assert outcome == DeskOutcome(
        True, "Pen Pending is approved and gets requests from now on. Pen Pending was told."
    )
    [welcome] = await desk.sent("mentor_approved", "pen@example.com")
    assert "approved your enrollment" in text_of(welcome)
    mentor = await desk.call(desk.store.mentor, "pen@example.com")
    assert mentor["status"] == "active"


async def test_needs_a_person_lists_unclaimed_oldest_first(desk: Harness) -> None:
    desk.clock.advance(days=2)
    await desk.receive(mail("Sam Doe <sam@example.net>", "Mentor request", REQUEST))
    needs = await desk.call(coordinator(desk).needs_a_person, desk.clock())
    assert [(w.tag, w.days) for w in needs.unclaimed] == [("MD-0001", 2), ("MD-0002", 0)]
    assert needs.bounced == () and needs.unplaced == ()

    # Mail nobody could place, and an address that bounces, need a person too.
    await desk.receive(mail("Someone <who@example.org>", "Hello there", "Is this the bakery?"))
    await desk.call(
        desk.store.mark_bounced, "Gone@Example.org", reason="550 no such user", now=desk.clock()
    )
    needs = await desk.call(coordinator(desk).needs_a_person, desk.clock())
    assert needs.bounced == ("gone@example.org",)
    assert [(m["kind"], m["status"]) for m in needs.unplaced] == [("unknown", "done")]
    # And a request that climbed to the last rung is marked escalated.
    await desk.call(desk.store.audit, "ladder escalate", now=desk.clock(), request=2)
    needs = await desk.call(coordinator(desk).needs_a_person, desk.clock())
    assert [(w.tag, w.escalated) for w in needs.unclaimed] == [
        ("MD-0001", False),
        ("MD-0002", True),
    ]


async def test_mentor_rows_and_sessions_of_the_week(desk: Harness) -> None:
    await desk.call(desk.coordinator.claims.claim, 1, ADA, desk.clock(), via="link")
    rows = await desk.call(coordinator(desk).mentor_rows, desk.clock())
    assert [r.email for r in rows] == [
        ADA,
        BEA,
        CYD,
        "js@example.com",
        "pat@example.com",
        "pen@example.com",
    ]
    ada = rows[0]
    assert (ada.status, ada.taken, ada.capacity, ada.holds) == ("active", 1, 4, 1)
    assert ada.term_end == T0 + timedelta(days=365) and ada.last_session is None
    assert [r.status for r in rows[-2:]] == ["paused", "pending"]

    week = await desk.call(
        coordinator(desk).sessions_between, desk.clock(), desk.clock() + timedelta(days=8)
    )
    assert [(s["request"], s["mentor"], s["status"]) for s in week] == [(1, ADA, "proposed")]
    later = await desk.call(
        coordinator(desk).sessions_between,
        desk.clock() + timedelta(days=8),
        desk.clock() + timedelta(days=15),
    )
    assert later == []

    def held() -> None:
        session = desk.store.live_session_of(1)
        assert session is not None
        desk.store.save_session({**session, "status": "held"})

    await desk.call(held)
    [ada] = [
        r for r in await desk.call(coordinator(desk).mentor_rows, desk.clock()) if r.email == ADA
    ]
    [session] = [s for s in await desk.call(desk.store.sessions) if s["mentor"] == ADA]
    assert ada.last_session is not None and iso(ada.last_session) == session["end"]


async def test_moving_office_hours_onto_a_booked_session_warns(desk: Harness) -> None:
    await desk.call(desk.coordinator.claims.claim, 1, ADA, desk.clock(), via="link")
    session = await desk.call(desk.store.live_session_of, 1)
    start = from_iso(session["start"]).astimezone(ZoneInfo("Europe/Berlin"))
    admin = desk.coordinator.office_hours.admin
    other = "mon" if start.weekday() != 0 else "tue"
    add = {"action": "add", "weekday": other, "time": "07:00", "zone": "Europe/Berlin"}
    added = await desk.call(admin, {**add, "mentors": [ADA]}, desk.clock())
    # Ada's own hours (08:00-22:00 every day) do not cover 07:00.
    assert added["warnings"] == [
        "Ada Lovelace's own hours do not cover these office hours "
        f"({added['series']['next'][0][:3]} 07:00–08:00 in Europe/Berlin)"
    ]
    edit = {
        "action": "edit",
        "id": 1,
        "weekday": f"{start:%a}".lower(),
        "time": f"{start:%H:%M}",
    }
    edited = await desk.call(admin, edit, desk.clock())
    assert edited["warnings"] == [
        f"{ADA} has a session for MD-0001 on {start:%a %Y-%m-%d %H:%M} (Europe/Berlin), "
        "during these office hours: move one of them"
    ]


async def test_a_follow_up_is_not_assigned_to_the_first_mentor(desk: Harness) -> None:
    def follow_up() -> None:
        request = desk.store.request(1)
        assert request is not None
        desk.store.save_request({**request, "exclude_mentors": [CYD]})

    await desk.call(follow_up)
    outcome = await act(desk, "assign", "MD-0001", CYD)
    assert outcome == DeskOutcome(
        False, "MD-0001 is a follow-up asking for another mentor than Cyd Charisse."
    )
    assert CYD not in [c.email for c in await desk.call(coordinator(desk).candidates, 1)]


async def test_history_names_sent_emails_by_the_subjects_people_read(desk: Harness) -> None:
    """After intake: the acknowledgement and both claim emails, by subject, once sent
    (when their bytes are no longer kept) as while they wait."""
    expected = [
        (str(m["Subject"]), str(m["To"].addresses[0].addr_spec))
        for kind in ("request_ack", "claim_invite")
        for m in await desk.sent(kind)
    ]
    assert len(expected) == 3 and expected[0][1] == JORDAN
    assert all("MD-0001" in subject for subject, _ in expected)

    def emails_out() -> list[str]:
        history = coordinator(desk).request_history("MD-0001") or []
        return [line.text for line in history if line.kind == "email out"]

    pending = await desk.call(emails_out)
    for subject, to in expected:
        assert any(t.startswith(f"{subject} — to {to} — pending — ") for t in pending), pending
    now = desk.clock()

    def send_all() -> None:
        items = desk.store.due_outbox(now + timedelta(days=1))
        desk.store.mark_all_sent([item.id for item in items], now)

    await desk.call(send_all)
    items = await desk.call(desk.store.outbox)
    assert not any("data" in item or "draft" in item for item in items)
    sent = await desk.call(emails_out)
    when = now.astimezone(ZoneInfo(desk.config.program.timezone)).strftime("%-d %b")
    for subject, to in expected:
        assert any(t.startswith(f"{subject} — to {to} — sent — ") and when in t for t in sent), sent
    assert not any("claim_invite" in t or "request_ack" in t for t in sent)
