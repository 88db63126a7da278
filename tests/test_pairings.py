"""Pairings (flows/pairings, flows/pairing_steps): a year of sessions every two weeks.

Time travel through the store (``timetravel.Harness``): the request comes in as mail,
the claim is the claim desk's, the timed steps are the sweep's; what goes out is read
from the outbox, and every calendar object with ical.js and vobject.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mentordesk.errors import OfficeHoursError
from mentordesk.flows.pairing_admin import pairing_admin
from mentordesk.flows.pairing_steps import pairings_step
from mentordesk.flows.pairings import CHOICES, decide_term
from mentordesk.flows.terms import terms_step
from mentordesk.state.lifecycle import (
    PairingEvent,
    RequestEvent,
    next_pairing_status,
    next_request_status,
)
from mentordesk.state.pairings import all_pairings
from mentordesk.state.records import MentorStatus, PairingStatus, RequestStatus
from mentordesk.timers import Registry

from .desk import mail
from .forms import claims_of
from .icalcheck import read_with_icaljs, read_with_vobject
from .timetravel import T0, Harness, mentor_doc, text_of

ADA = "ada@example.com"
JORDAN = "jordan@example.net"
DAY = timedelta(days=1)
BERLIN = ZoneInfo("Europe/Berlin")
PAIRING_LINK = re.compile(r"http://\S+/pairing/[\w.-]+")
REQUEST = (
    "Name: Jordan Lee\nSkills: python\nTimezone: America/New_York\nAvailability: Tue 12:00-14:00\n"
    "Details: I am changing careers into Python and would love an ongoing mentor "
    "for the next year, with regular sessions.\n"
)


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Harness]:
    registry = Registry()
    registry.register_sweep_step("terms", terms_step)
    registry.register_sweep_step("pairings", pairings_step)
    harness = await Harness(tmp_path, registry, pairings={"enabled": True}).open()
    yield harness
    await harness.close()


def calendar_of(message: EmailMessage) -> bytes:
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload
    raise AssertionError("no text/calendar part")


async def paired(desk: Harness) -> dict[str, Any]:
    await desk.seed(mentor_doc(ADA, "Ada Lovelace", ["python"], term_end=iso_days(800)))
    await desk.receive(mail(f"Jordan Lee <{JORDAN}>", "Mentor request", REQUEST))
    claims = desk.coordinator.claims
    assert (await desk.call(claims.claim, 1, ADA, desk.clock(), via="web")).outcome == "claimed"
    [pairing] = await desk.call(all_pairings, desk.store)
    return dict(pairing)


def iso_days(days: int) -> str:
    return (T0 + days * DAY).isoformat()


async def test_a_year_long_pairing_keeps_its_time_across_both_dst_changes(desk: Harness) -> None:
    pairing = await paired(desk)
    request = await desk.request(1)
    # Held by Ada, no one-off session: the series stands in for it.
    assert request["status"] == "claimed" and request["pairing"] is True
    assert await desk.call(desk.store.sessions) == []
    invites = await desk.sent("pairing_invite")
    assert sorted(m["To"].addresses[0].addr_spec for m in invites) == [ADA, JORDAN]
    # Tue 12:00 in New York on 18 March 2025 is 17:00 in Berlin (the mentor's zone).
    assert pairing["series"]["zone"] == "Europe/Berlin"
    assert (pairing["series"]["first"], pairing["series"]["time"]) == ("2025-03-18", "17:00")
    ics = calendar_of(invites[0])
    assert b"RRULE:FREQ=WEEKLY;UNTIL=" in ics and b";INTERVAL=2" in ics, ics.decode()
    assert b"BEGIN:VTIMEZONE" in ics
    for reader in (read_with_icaljs, read_with_vobject):
        [event] = reader(ics, 40)["events"]
        starts = [datetime.fromisoformat(o["start"]) for o in event["occurrences"]]
        assert len(starts) == 27, reader  # a year (365 days), every two weeks: 0, 14 … 364
        assert {s.astimezone(BERLIN).strftime("%a %H:%M") for s in starts} == {"Tue 17:00"}
        # Both DST changes lie inside the year: the UTC time moves, the local one not.
        assert {s.astimezone(UTC).hour for s in starts} == {15, 16}
        days = [s.astimezone(BERLIN).date() for s in starts]
        assert {(b - a).days for a, b in itertools.pairwise(days)} == {14}
        assert starts[-1] < datetime.fromisoformat(pairing["term_end"])
    # The private calendar feed shows the series too, every two weeks.
    feed = await desk.call(desk.coordinator.office_hours.feed, JORDAN, desk.clock())
    [fed] = [e for e in read_with_icaljs(feed, 5)["events"] if e["uid"] == pairing["series"]["uid"]]
    fed_days = [datetime.fromisoformat(o["start"]).astimezone(BERLIN) for o in fed["occurrences"]]
    assert {(b.date() - a.date()).days for a, b in itertools.pairwise(fed_days)} == {14}
    assert {d.strftime("%H:%M") for d in fed_days} == {"17:00"}
    mentor_text = " ".join(text_of(next(m for m in invites if ADA in m["To"])).split())
    assert "/pairing/" in mentor_text and "orientation" in mentor_text.lower()
    mentee_text = text_of(next(m for m in invites if JORDAN in m["To"]))
    assert "/pairing/" not in mentee_text


async def test_one_occurrence_moved_and_one_cancelled_carry_recurrence_id(desk: Harness) -> None:
    pairing = await paired(desk)
    pairings = desk.coordinator.desks.pairings

    def change() -> None:
        with desk.store.transaction():
            pairings.cancel_occurrence(pairing["id"], date(2025, 4, 1), desk.clock())
            pairings.move_occurrence(
                pairing["id"], date(2025, 4, 15), datetime(2025, 4, 16, 18, 30), desk.clock()
            )

    await desk.call(change)
    changes = await desk.sent("pairing_change", ADA)
    assert [m["Subject"].removeprefix("[MD-0001] ") for m in changes] == [
        "Session on Tue 1 Apr: cancelled",
        "Session on Tue 15 Apr: moved",
    ]
    cancel, move = (calendar_of(m) for m in changes)
    for reader in (read_with_icaljs, read_with_vobject):
        cancelled = reader(cancel)
        assert cancelled["method"] == "CANCEL"
        [event] = cancelled["events"]
        assert event["uid"] == pairing["series"]["uid"]
        assert event["recurrence_id"] == "2025-04-01T15:00:00Z"  # 17:00 CEST
        moved = reader(move)
        [override] = [e for e in moved["events"] if e["recurrence_id"]]
        assert override["recurrence_id"] == "2025-04-15T15:00:00Z"
        assert override["occurrences"][0]["start"] == "2025-04-16T16:30:00Z"
        assert override["sequence"] >= 1
    assert len(await desk.sent("pairing_change", JORDAN)) == 2


async def test_check_ins_and_the_term_choice_happen_once_each(desk: Harness) -> None:
    pairing = await paired(desk)
    started = datetime.fromisoformat(pairing["started"])
    assert (await desk.sweep())["pairings"] == 0
    desk.clock.now = started + 91 * DAY + timedelta(hours=1)
    assert (await desk.sweep())["pairings"] == 2
    assert (await desk.sweep(hours=1))["pairings"] == 0
    await desk.restart()
    assert (await desk.sweep(days=1))["pairings"] == 0
    pairings = desk.coordinator.desks.pairings
    checks = await desk.sent("pairing_check_in")
    assert sorted(m["To"].addresses[0].addr_spec for m in checks) == [ADA, JORDAN]
    assert "3 months" in text_of(checks[0])
    # Ada has not closed the orientation: her check-in carries its link again.
    [ada_check] = [m for m in checks if ADA in m["To"]]
    assert [claims_of(u).obj.split(":")[1] for u in PAIRING_LINK.findall(text_of(ada_check))] == [
        "going-well",
        "needs-help",
        "oriented",
    ]

    # "Needs help" tells the coordinator, once, however often it is pressed.
    for _ in range(2):
        outcome = await desk.call(pairings.act, pairing["id"], JORDAN, "needs-help", desk.clock())
        assert outcome["outcome"] in ("recorded", "updated")
    [help_notice] = await desk.sent("coordinator_pairing")
    assert "needs help" in help_notice["Subject"]

    desk.clock.now = started + 182 * DAY + timedelta(hours=1)
    assert (await desk.sweep())["pairings"] == 2
    desk.clock.now = started + 273 * DAY + timedelta(hours=1)
    assert (await desk.sweep())["pairings"] == 2
    assert len(await desk.sent("pairing_check_in")) == 6

    # Choosing before we ask changes nothing.
    early = await desk.call(pairings.act, pairing["id"], ADA, "extend", desk.clock())
    assert early["outcome"] == "early"

    term_end = datetime.fromisoformat(pairing["term_end"])
    desk.clock.now = term_end - 21 * DAY
    assert (await desk.sweep())["pairings"] == 2
    assert (await desk.sweep(days=1))["pairings"] == 0
    await desk.restart()
    assert (await desk.sweep(days=1))["pairings"] == 0
    pairings = desk.coordinator.desks.pairings
    assert len(await desk.sent("pairing_term")) == 2
    assert len(await desk.sent("pairing_check_in")) == 6  # the fourth would be after the end
    # The choice's links still work on the term's last day.
    [ask] = await desk.sent("pairing_term", JORDAN)
    urls = PAIRING_LINK.findall(text_of(ask))
    assert [claims_of(u).obj for u in urls] == [f"{pairing['id']}:{c}" for c in CHOICES]
    assert all(claims_of(u).expires >= term_end for u in urls)

    # Both choose another term: the series goes on, with a new UNTIL.
    first = await desk.call(pairings.act, pairing["id"], ADA, "extend", desk.clock())
    assert first["outcome"] == "recorded"
    second = await desk.call(pairings.act, pairing["id"], JORDAN, "extend", desk.clock())
    assert second["outcome"] == "extended"
    [extended] = await desk.call(all_pairings, desk.store)
    assert extended["term_end"] > pairing["term_end"] and extended["terms"] == 2
    renewed = [m for m in await desk.sent("pairing_invite", ADA) if "Another term" in m["Subject"]]
    [event] = read_with_icaljs(calendar_of(renewed[0]), 60)["events"]
    assert len(event["occurrences"]) == 53  # 0, 14 … 728 days
    assert event["sequence"] == 1
    assert (await desk.request(1))["status"] == "claimed"


async def test_ending_closes_the_request_and_cancels_the_series(desk: Harness) -> None:
    pairing = await paired(desk)
    desk.clock.now = datetime.fromisoformat(pairing["term_end"]) - 20 * DAY
    await desk.sweep()
    pairings = desk.coordinator.desks.pairings
    outcome = await desk.call(pairings.act, pairing["id"], JORDAN, "end", desk.clock())
    assert outcome["outcome"] == "ended"
    assert (await desk.request(1))["status"] == "closed"
    overs = await desk.sent("pairing_over")
    assert sorted(m["To"].addresses[0].addr_spec for m in overs) == [ADA, JORDAN]
    for reader in (read_with_icaljs, read_with_vobject):
        read = reader(calendar_of(overs[0]))
        assert read["method"] == "CANCEL"
        [event] = read["events"]
        assert event["uid"] == pairing["series"]["uid"] and event["recurrence_id"] is None
    # Nothing more happens: no second CANCEL, no term email, no check-in.
    again = await desk.call(pairings.act, pairing["id"], ADA, "extend", desk.clock())
    assert again["outcome"] == "over"
    assert (await desk.sweep(days=30))["pairings"] == 0
    assert len(await desk.sent("pairing_over")) == 2


async def test_a_term_nobody_answers_ends_by_itself(desk: Harness) -> None:
    pairing = await paired(desk)
    desk.clock.now = datetime.fromisoformat(pairing["term_end"]) + timedelta(minutes=1)
    await desk.sweep()
    assert (await desk.request(1))["status"] == "closed"
    assert len(await desk.sent("pairing_over")) == 2
    assert (await desk.sweep(days=1))["pairings"] == 0


async def test_a_change_of_mentor_sends_the_request_back_to_matching(desk: Harness) -> None:
    pairing = await paired(desk)
    await desk.seed(mentor_doc("bea@example.com", "Bea Brown", ["python"]))
    desk.clock.now = datetime.fromisoformat(pairing["term_end"]) - 20 * DAY
    await desk.sweep()
    pairings = desk.coordinator.desks.pairings
    outcome = await desk.call(pairings.act, pairing["id"], JORDAN, "change", desk.clock())
    assert outcome["outcome"] == "changed"
    request = await desk.request(1)
    assert request["status"] == "open" and request["released_by"] == [ADA]
    assert [i["email"] for i in request["invited"]][-1] == "bea@example.com"
    assert len(await desk.sent("pairing_over")) == 2
    # Bea's claim starts a new pairing of its own.
    claims = desk.coordinator.claims
    claimed = await desk.call(claims.claim, 1, "bea@example.com", desk.clock(), via="web")
    assert claimed.outcome == "claimed"
    old, new = await desk.call(all_pairings, desk.store)
    assert (old["status"], new["status"], new["mentor"]) == (
        "cancelled",
        "orienting",
        "bea@example.com",
    )
    assert new["series"]["uid"] != old["series"]["uid"]


async def test_a_resigned_mentors_pairing_reaches_the_coordinator(desk: Harness) -> None:
    pairing = await paired(desk)
    lifecycle = desk.coordinator.lifecycle

    def resign() -> list[int]:
        with desk.store.transaction():
            return lifecycle.mentor_left(ADA, MentorStatus.RESIGNED, desk.clock())

    assert await desk.call(resign) == [1]
    [notice] = await desk.sent("coordinator_holder_left")
    assert "resigned" in notice["Subject"]
    assert "It was a pairing" in " ".join(text_of(notice).split())
    [stopped] = await desk.call(all_pairings, desk.store)
    assert stopped["status"] == "cancelled" and stopped["why"] == "resigned"
    overs = await desk.sent("pairing_over")
    assert {m["To"].addresses[0].addr_spec for m in overs} == {ADA, JORDAN}
    assert read_with_vobject(calendar_of(overs[0]))["method"] == "CANCEL"
    assert (await desk.request(1))["status"] == "open"
    assert pairing["id"] == stopped["id"]
    assert (await desk.sweep(days=100))["pairings"] == 0


async def test_withdrawing_a_pairing_request_cancels_the_series(desk: Harness) -> None:
    pairing = await paired(desk)
    await desk.receive(mail(f"Jordan Lee <{JORDAN}>", "[MD-0001] withdraw", "Please withdraw.\n"))
    assert (await desk.request(1))["status"] == "withdrawn"
    [stopped] = await desk.call(all_pairings, desk.store)
    assert (stopped["status"], stopped["why"]) == ("cancelled", "withdrawn")
    overs = await desk.sent("pairing_over")
    assert {m["To"].addresses[0].addr_spec for m in overs} == {ADA, JORDAN}
    [event] = read_with_icaljs(calendar_of(overs[0]))["events"]
    assert event["uid"] == pairing["series"]["uid"] and event["status"] == "CANCELLED"
    assert (await desk.sweep(days=120))["pairings"] == 0


async def test_a_quiet_pairing_reaches_the_coordinator_once(desk: Harness) -> None:
    pairing = await paired(desk)
    pairings = desk.coordinator.desks.pairings
    first = date.fromisoformat(pairing["series"]["first"])

    def skip_all() -> None:
        with desk.store.transaction():
            for n in range(5):
                day = first + timedelta(weeks=2 * n)
                pairings.cancel_occurrence(pairing["id"], day, desk.clock())

    await desk.call(skip_all)
    desk.clock.now = datetime.fromisoformat(pairing["started"]) + 6 * 7 * DAY + DAY
    await desk.sweep()
    [quiet] = await desk.sent("coordinator_pairing")
    assert "gone quiet" in quiet["Subject"]
    assert "6 weeks" in " ".join(text_of(quiet).split())
    assert "mentordesk pairings release 1" in " ".join(text_of(quiet).split())
    await desk.sweep(days=1)
    await desk.restart()
    await desk.sweep(days=1)
    assert len(await desk.sent("coordinator_pairing")) == 1

    # The coordinator takes it from the quiet mentor: back to matching, series cancelled.
    pairings = desk.coordinator.desks.pairings
    released = await desk.call(
        pairing_admin, pairings, {"action": "release", "id": 1}, desk.clock()
    )
    assert released["pairing"]["status"] == "cancelled"
    request = await desk.request(1)
    assert (request["status"], request["released_by"]) == ("open", [ADA])
    assert {m["To"].addresses[0].addr_spec for m in await desk.sent("pairing_over")} == {
        ADA,
        JORDAN,
    }
    assert await desk.sent("request_released", JORDAN)
    with pytest.raises(OfficeHoursError, match="pairing 1 is not running"):
        await desk.call(pairing_admin, pairings, {"action": "release", "id": 1}, desk.clock())


async def test_orientation_is_closed_by_the_mentor_only_and_once(desk: Harness) -> None:
    pairing = await paired(desk)
    pairings = desk.coordinator.desks.pairings
    now = desk.clock()
    view = await desk.call(pairings.view, pairing["id"], ADA, "oriented")
    assert view["outcome"] == "ask"
    refused = await desk.call(pairings.act, pairing["id"], JORDAN, "oriented", now)
    assert refused["outcome"] == "not_yours"
    stranger = await desk.call(pairings.act, pairing["id"], "eve@example.org", "oriented", now)
    assert stranger["outcome"] == "not_yours"
    done = await desk.call(pairings.act, pairing["id"], ADA, "oriented", now)
    assert done["outcome"] == "recorded"
    [after] = await desk.call(all_pairings, desk.store)
    assert after["status"] == "active" and after["oriented"]
    again = await desk.call(pairings.act, pairing["id"], ADA, "oriented", now)
    assert again["outcome"] == "done"


async def test_a_one_off_request_stays_a_single_session(desk: Harness) -> None:
    await desk.seed(mentor_doc(ADA, "Ada Lovelace", ["python"]))
    one_off = REQUEST.replace(
        "would love an ongoing mentor for the next year, with regular sessions",
        "would like a review of my project",
    )
    await desk.receive(mail(f"Jordan Lee <{JORDAN}>", "Mentor request", one_off))
    claims = desk.coordinator.claims
    assert (await desk.call(claims.claim, 1, ADA, desk.clock(), via="web")).outcome == "claimed"
    assert (await desk.request(1))["status"] == "booked"
    assert await desk.call(all_pairings, desk.store) == []


@pytest.mark.parametrize(
    ("settings", "words", "pairing"),
    [
        ({"enabled": True, "all_requests": True}, "would like a review of my project", True),
        ({"enabled": False}, "would love an ongoing mentor for the next year", False),
        ({}, "would love an ongoing mentor for the next year", False),  # off by default
    ],
)
async def test_which_requests_become_pairings(
    tmp_path: Path, settings: dict[str, Any], words: str, pairing: bool
) -> None:
    tables = {"pairings": settings} if settings else {}
    desk = await Harness(tmp_path, Registry(), **tables).open()
    try:
        await desk.seed(mentor_doc(ADA, "Ada Lovelace", ["python"]))
        text = REQUEST.replace(
            "would love an ongoing mentor for the next year, with regular sessions", words
        )
        await desk.receive(mail(f"Jordan Lee <{JORDAN}>", "Mentor request", text))
        claims = desk.coordinator.claims
        assert (await desk.call(claims.claim, 1, ADA, desk.clock(), via="web")).outcome == (
            "claimed"
        )
        assert bool(await desk.call(all_pairings, desk.store)) is pairing
        assert (await desk.request(1))["status"] == ("claimed" if pairing else "booked")
    finally:
        await desk.close()


async def test_without_the_mentees_week_no_pairing_starts_blind(desk: Harness) -> None:
    await desk.seed(mentor_doc(ADA, "Ada Lovelace", ["python"]))
    vague = "\n".join(
        line for line in REQUEST.splitlines() if not line.startswith(("Timezone", "Availability"))
    )
    await desk.receive(mail(f"Jordan Lee <{JORDAN}>", "Mentor request", vague + "\n"))
    claims = desk.coordinator.claims
    assert (await desk.call(claims.claim, 1, ADA, desk.clock(), via="web")).outcome == "claimed"
    assert await desk.call(all_pairings, desk.store) == []
    assert await desk.sent("pairing_invite") == []
    [audit] = [
        e for e in await desk.call(desk.store.audit_log) if e["event"] == "pairing not started"
    ]
    assert audit["why"] == "unknown timezone and availability"


async def test_other_sessions_are_not_booked_over_a_pairing(desk: Harness) -> None:
    pairing = await paired(desk)
    other = REQUEST.replace("Jordan Lee", "Sam Sun").replace(
        "would love an ongoing mentor for the next year, with regular sessions",
        "would like a review of my project",
    )
    await desk.receive(mail("Sam Sun <sam@example.net>", "Mentor request", other))
    claims = desk.coordinator.claims
    assert (await desk.call(claims.claim, 2, ADA, desk.clock(), via="web")).outcome == "claimed"
    [session] = await desk.call(desk.store.sessions)
    # Tue 18 March 12:00 New York is the pairing's first session: the next half hour.
    assert pairing["started"] == "2025-03-18T16:00:00+00:00"
    assert session["start"] == "2025-03-18T16:30:00+00:00"


def test_the_term_choice_rule() -> None:
    people = ("m", "e")
    assert decide_term({}, people) is None
    assert decide_term({"m": "extend"}, people) is None
    assert decide_term({"m": "extend", "e": "extend"}, people) == "extend"
    assert decide_term({"m": "extend", "e": "change"}, people) == "change"
    assert decide_term({"m": "change", "e": "end"}, people) == "end"
    assert decide_term({"e": "end"}, people) == "end"


def test_the_pairing_lifecycle_as_data() -> None:
    live = (PairingStatus.ORIENTING, PairingStatus.ACTIVE)
    over = (PairingStatus.ENDED, PairingStatus.CANCELLED)
    assert next_pairing_status(PairingStatus.ORIENTING, PairingEvent.ORIENTED) is (
        PairingStatus.ACTIVE
    )
    assert next_pairing_status(PairingStatus.ACTIVE, PairingEvent.ORIENTED) is None
    for status in live:
        assert status.live
        assert next_pairing_status(status, PairingEvent.ENDED) is PairingStatus.ENDED
        assert next_pairing_status(status, PairingEvent.LEFT_HOLDER) is PairingStatus.CANCELLED
        assert next_pairing_status(status, PairingEvent.EXTENDED) is status
    for status in over:
        assert not status.live
        assert all(next_pairing_status(status, event) is None for event in PairingEvent)
    # A pairing's end closes its request, from "claimed" only (the holder still has it).
    ends = {s for s in RequestStatus if next_request_status(s, RequestEvent.ENDED)}
    assert ends == {RequestStatus.CLAIMED}
    assert next_request_status(RequestStatus.CLAIMED, RequestEvent.ENDED) is RequestStatus.CLOSED
