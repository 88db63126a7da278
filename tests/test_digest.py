"""Flow 8: the coordinator's daily digest, checked against a known state.

The data (``compute_digest``) is checked on its own, then the email that goes out: its
text part, its HTML part and the chart in both.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mentordesk.config import Config
from mentordesk.flows.digest import CHART_WEEKS, Week, compute_digest
from mentordesk.flows.digest_mail import chart_rows, send_digest
from mentordesk.flows.feedback import FeedbackDesk
from mentordesk.flows.steps import register_steps
from mentordesk.state.records import MentorStatus
from mentordesk.state.store import Store, iso
from mentordesk.timers import Registry, load_steps

from .desk import mail
from .followup_state import (
    COORDINATOR,
    State,
    flat,
    html_of,
    mentor,
    open_state,
    request,
    session,
    text_of,
)
from .timetravel import T0, Harness, mentor_doc

DAY = timedelta(days=1)

# Tuesday 10 March 2026, 09:00 in New York (the program's zone; DST began on the 8th).
NOW = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=1)
ADA, LINUS, GRACE = "ada@example.com", "linus@example.com", "grace@example.org"
RON = "ron@example.com"


def h(hours: float) -> datetime:
    """``hours`` before NOW."""
    return NOW - timedelta(hours=hours)


def seed_known_state(store: Store) -> None:
    with store.transaction():
        store.save_mentor(mentor(ADA, "Ada Lovelace", ["python"], NOW))
        store.save_mentor(mentor(LINUS, "Linus Park", ["python"], NOW))
        store.save_mentor(mentor(GRACE, "Grace Hopper", ["javascript"], NOW))
        store.save_mentor(mentor("pat@example.com", "Pat Paused", ["go"], NOW, status="paused"))
        store.save_mentor(
            mentor(
                "olga@example.com", "Olga Old", ["go"], NOW, term_end=iso(NOW - timedelta(days=2))
            )
        )
        store.save_mentor(mentor(RON, "Ron Resigned", ["go"], NOW, status="resigned"))

        def claimed(by: str, at: datetime, status: str = "claimed") -> dict[str, object]:
            return {"status": status, "claimed_by": by, "claimed_at": iso(at)}

        # 1: met Ada, who says Jordan did not come (closed); 5: booked with Ada;
        # 7: met Linus, asked about it (closed); 8: Linus holds it, no time yet;
        # 9: held by Ron, who resigned (the records say so: the digest must too).
        store.save_request(
            request(
                1,
                "jordan@example.net",
                "Jordan Lee",
                h(9 * 24),
                **claimed(ADA, h(8 * 24), "closed"),
            )
        )
        store.save_request(request(2, "sam@example.net", "Sam Doe", h(3)))
        store.save_request(
            request(3, "kim@example.net", "Kim Ito", h(12 * 24), ladder={"escalate": iso(h(5))})
        )
        store.save_request(request(4, "lee@example.net", "Lee Chan", h(4 * 24), skills=["go"]))
        store.save_request(
            request(5, "max@example.net", "Max Roe", h(20), **claimed(ADA, h(2), "booked"))
        )
        store.save_request(
            request(6, "zoe@example.net", "Zoe Q", h(23), status="incomplete", skills=[])
        )
        store.save_request(
            request(
                7,
                "liu@example.net",
                "Liu Yang",
                h(5 * 24),
                **claimed(LINUS, h(4 * 24), "closed"),
            )
        )
        # Long ago (out of the chart and of this month's load).
        store.save_request(
            request(
                8,
                "nia@example.net",
                "Nia New",
                h(70 * 24),
                schedule="mentor picks",
                **claimed(LINUS, h(69 * 24)),
            )
        )
        store.save_request(
            request(9, "ola@example.net", "Ola Old", h(80 * 24), **claimed(RON, h(79 * 24)))
        )
        store.save_request(request(10, "wes@example.net", "Wes Wu", h(75 * 24), status="withdrawn"))

        store.audit("claimed", now=h(4 * 24), request=7, mentor=LINUS, via="web")  # before SINCE
        store.audit("claimed", now=h(2), request=5, mentor=ADA, via="web")
        store.audit("ladder escalate", now=h(5), request=3, contacts=["boss@program.test"])
        store.audit(
            "calendar answer", now=h(6), request=7, attendee="liu@example.net", partstat="DECLINED"
        )
        store.audit("session cancelled", now=h(7), request=1, uid="s1@x", by=ADA)
        store.audit("released", now=h(8), request=4, mentor=LINUS, by=LINUS)

        store.save_session(
            session(
                "s5@x",
                5,
                ADA,
                "max@example.net",
                NOW + timedelta(days=2),
                status="proposed",
                created=iso(h(1)),
            )
        )
        store.save_session(
            session(
                "s1@x",
                1,
                ADA,
                "jordan@example.net",
                h(2 * 24),
                status="no-show",
                followup_asked=iso(h(44)),
                attendance={"answer": "no-show", "by": ADA, "at": iso(h(3))},
            )
        )
        store.save_session(
            session("s7@x", 7, LINUS, "liu@example.net", h(30), followup_asked=iso(h(20)))
        )
        store.save_feedback(
            {
                "obj": "session:s7@x",
                "person": "liu@example.net",
                "kind": "session",
                "role": "mentee",
                "score": 2,
                "comment": "Too rushed.",
                "mentor": LINUS,
                "request": 7,
                "created": iso(h(4)),
                "updated": iso(h(4)),
            }
        )

        # What the coordinator core writes down when it hands something to a person: the
        # mail gate's notice records the sender, subject and date of the email.
        store.audit("quarantined", now=h(2), message_id="<q1@x>", error="ValueError: boom")
        store.audit("coordinator told", now=h(2), reason="quarantined", message_id="<q1@x>")
        # Quarantined, and told of with the email named: the two are shown together.
        store.audit("quarantined", now=h(1.5), message_id="<q2@x>", error="KeyError: 'x'")
        store.audit(
            "coordinator told",
            now=h(1.5),
            reason="quarantined",
            message_id="<q2@x>",
            sender="odd@example.net",
            sender_name="",
            subject="Weird mail",
            date=iso(h(1.6)),
        )
        store.audit(
            "coordinator told",
            now=h(3),
            reason="unclassified",
            message_id="<u1@x>",
            sender="pat@example.net",
            sender_name="Pat Q",
            subject="Lunch?",
            date=iso(h(3.5)),
        )
        store.audit("coordinator told", now=h(72), reason="unclassified", message_id="<u0@x>")
        store.audit("coordinator told", now=h(1), reason="delivery failure", message_id=None)
        store.audit("no mentor matches", now=h(1), request=4)
        store.audit("request withdrawn", now=h(4), request=10, by="wes@example.net")
        store.audit("enrolled", now=h(5), mentor=GRACE)
        store.audit("mentor resigned", now=h(6), mentor=RON, released=[])
        store.audit(
            "skipped: late",
            now=h(1),
            step="ladder bump",
            what="MD-0003",
            due=iso(h(9 * 24)),
            late="8 days",
            rule="a ladder step is done late only within 2 days",
            request=3,
        )
        item = store.enqueue(
            message_id="<o1@program.test>",
            sender="mentors@program.test",
            recipients=["lost@example.com"],
            data=b"x",
            kind="claim_invite",
            now=h(3),
        )
        store.mark_failed(item, error="550 5.1.1 no such user", now=h(1))
        store.mark_bounced("lost@example.com", reason="550 5.1.1 no such user", now=h(1))

        store.save_survey(
            {
                "year": 2026,
                "started": iso(h(5 * 24)),
                "reminded": None,
                "recipients": {
                    ADA: {"role": "mentor", "name": "Ada Lovelace", "sent": iso(h(5 * 24))},
                    "jordan@example.net": {
                        "role": "mentee",
                        "name": "Jordan Lee",
                        "sent": iso(h(5 * 24)),
                    },
                },
            }
        )
        store.save_feedback(
            {
                "obj": "survey:2026",
                "person": ADA,
                "kind": "survey",
                "role": "mentor",
                "score": 4,
                "comment": "",
                "year": 2026,
                "created": iso(h(2)),
                "updated": iso(h(2)),
            }
        )
        store.set_meta("digest", {"day": "2026-03-09", "at": iso(SINCE), "quiet": False})


@pytest.fixture
def state(tmp_path: Path) -> Iterator[State]:
    yield from open_state(tmp_path)


def test_the_digest_data_matches_the_known_state(state: State) -> None:
    seed_known_state(state.store)
    digest = compute_digest(state.store, state.config, NOW, SINCE)
    assert digest.day == date(2026, 3, 10)
    assert not digest.quiet

    new = digest.section("new")
    assert new.count == 3  # 2, 5 and the incomplete 6; not the older ones
    assert new.items[0] == "MD-0002  Sam Doe <sam@example.net> · python · open"
    assert [i.split()[0] for i in new.items] == ["MD-0002", "MD-0005", "MD-0006"]

    waiting = digest.section("waiting")
    assert waiting.count == 3
    assert [i.split()[0] for i in waiting.items] == [
        "MD-0003",
        "MD-0004",
        "MD-0002",
    ]  # oldest first
    assert waiting.items[0] == "MD-0003  waiting 12d · python · 0 mentors asked · escalated"
    standing = digest.standing
    assert standing.waiting_by_age == (
        ("under 3 days", 1),
        ("3 days–10 days", 1),
        ("over 10 days", 1),
    )
    assert standing.oldest_waiting == "12d"
    # Every request counted by its lifecycle status; the one live session.
    assert {status.value: n for status, n in standing.requests.items() if n} == {
        "incomplete": 1,
        "open": 3,
        "claimed": 2,
        "booked": 1,
        "closed": 2,
        "withdrawn": 1,
    }
    assert standing.live_sessions == 1
    # What waits on whom: Linus is to pick a time for Nia; Ron left holding Ola's.
    assert digest.section("picking").items == (
        "MD-0008  Linus Park has it for 69d; to pick a time",
    )
    assert digest.section("astray").items == ("MD-0009  held by Ron Resigned, who resigned",)

    assert digest.section("claimed").items == ("MD-0005  by Ada Lovelace after 18h",)
    assert digest.section("escalated").items == ("MD-0003  escalated to boss@program.test",)
    assert digest.section("declined").items == (  # in the order they happened
        "MD-0004  given back by Linus Park",
        "MD-0001  session cancelled by Ada Lovelace",
        "MD-0007  Liu Yang declined the proposed time",
    )
    [booked] = digest.section("booked").items
    assert booked == "MD-0005  Ada Lovelace with Max Roe, Thu 12 Mar 09:00 (proposed)"
    assert digest.section("no_shows").items == (
        "MD-0001  Jordan Lee did not come to the session with Ada Lovelace",
    )
    assert digest.section("ended").items == ("MD-0010  withdrawn",)
    assert digest.section("mentors").items == ("Ron Resigned resigned", "Grace Hopper enrolled")
    # Mail for a person: sender, subject and date, never a raw Message-ID.
    unplaced = digest.section("unplaced").items
    assert unplaced == (
        "not understood: Pat Q <pat@example.net> · “Lunch?” · Tue 10 Mar 05:30",
        "quarantined: an email of Tue 10 Mar 07:00 (the notice sent to you then names the "
        "sender) · ValueError: boom",
        "quarantined: odd@example.net · “Weird mail” · Tue 10 Mar 07:24 · KeyError: 'x'",
        "MD-0004  no mentor matches",
    )
    assert not [item for item in unplaced if "@x>" in item]  # no Message-ID
    assert digest.section("failures").items == (
        "lost@example.com · claim_invite · 550 5.1.1 no such user",
        "lost@example.com bounced: 550 5.1.1 no such user",
    )
    assert digest.section("skipped").items == (
        "ladder bump for MD-0003, due Sun 1 Mar 08:00, 8 days late "
        "(a ladder step is done late only within 2 days)",
    )

    load = digest.load
    assert (load.active, load.paused, load.term_ended) == (3, 1, 1)
    assert load.claims_this_month == 3
    assert load.full == ("Ada Lovelace 2/2",)
    assert load.busiest == ("Ada Lovelace 2/2", "Linus Park 1/2")
    assert load.idle == 1

    ratings = digest.sessions.ratings
    assert (digest.sessions.asked, ratings.answered, ratings.average) == (1, 1, 2.0)
    assert ratings.comments == ((2, "Too rushed."),)
    assert len(digest.sessions.no_shows) == 1
    assert digest.survey is not None and digest.survey_answers_since == 1
    mentors, mentees = digest.survey.groups
    assert (mentors.asked, mentors.answered, mentors.average) == (1, 1, 4.0)
    assert (mentees.asked, mentees.answered) == (1, 0)

    assert len(digest.weeks) == CHART_WEEKS
    assert digest.weeks[-1] == Week(date(2026, 3, 9), requests=3, claims=1, median_claim_hours=18.0)
    assert digest.weeks[-2] == Week(date(2026, 3, 2), requests=2, claims=2, median_claim_hours=24.0)
    assert digest.weeks[-3] == Week(
        date(2026, 2, 23), requests=2, claims=0, median_claim_hours=None
    )
    assert digest.weeks[0].start == date(2026, 1, 19)


def test_the_digest_email_reads_well_in_text_and_html(state: State) -> None:
    seed_known_state(state.store)
    assert send_digest(state.coordinator, NOW) == 1
    [digest] = state.sent_to(COORDINATOR)
    assert digest["Subject"] == (
        "[Test Mentors] Daily digest, Tue 10 Mar: 3 new requests, 1 claimed, 1 escalated, "
        "1 no-show, 2 delivery failures, 1 step skipped, 3 waiting"
    )
    assert digest["Auto-Submitted"] == "auto-generated"
    text = text_of(digest)
    for line in (
        "Here is what happened since Mon 9 Mar 09:00.",
        "NEW REQUESTS (3)",
        "  MD-0002  Sam Doe <sam@example.net> · python · open",
        "CLAIMED (1)",
        "  MD-0005  by Ada Lovelace after 18h",
        "SESSIONS BOOKED (1)",
        "ESCALATED (1)",
        "DECLINED, CANCELLED OR GIVEN BACK (3)",
        "NO-SHOWS (1)",
        "NEEDS A PERSON (4)",
        "DELIVERY FAILURES (2)",
        "SKIPPED: TOO LATE (1)",
        "WITHDRAWN OR EXPIRED (1)",
        "MENTORS WHO JOINED OR LEFT (2)",
        "WHERE THINGS STAND",
        "  3 requests are waiting for a mentor (the oldest for 12d)",
        "  1 request is waiting for the mentee's details",
        "  1 request is claimed, waiting for the mentor to set a time",
        "  1 request is booked; 1 session in calendars",
        "WAITING FOR A MENTOR (3; the oldest for 12d)",
        "  under 3 days: 1 · 3 days–10 days: 1 · over 10 days: 1",
        "CLAIMED, WAITING FOR THE MENTOR TO SET A TIME (1)",
        "  MD-0008  Linus Park has it for 69d; to pick a time",
        "HELD BY A MENTOR WHO HAS LEFT, OR BOOKED WITH NO SESSION (1)",
        "  MD-0009  held by Ron Resigned, who resigned",
        "  3 active, 1 paused, 1 past the end of their term; 3 requests taken this month.",
        "  Full: Ada Lovelace 2/2",
        "  Nothing taken yet this month: 1",
        "  Sessions: 1 of 1 answered, average 2.0 / 5 (1:0 2:1 3:0 4:0 5:0)",
        "  [2] Too rushed.",
        "    Mentors: 1 of 1 answered, average 4.0 / 5 (1:0 2:0 3:0 4:1 5:0)",
        "REQUESTS PER WEEK AND MEDIAN TIME TO CLAIM",
    ):
        assert line in text.splitlines(), line
    chart = text.split("REQUESTS PER WEEK AND MEDIAN TIME TO CLAIM\n")[1].splitlines()
    assert len([row for row in chart if re.match(r"  \d{1,2} [A-Z][a-z]{2} ", row)]) == CHART_WEEKS
    assert chart[0].split() == ["Week", "of", "Requests", "Time", "to", "claim"]
    last = next(row for row in chart if row.startswith("  9 Mar"))
    assert "#" * 24 in last and last.rstrip().endswith("18 h")  # the largest bar is full width
    assert " 3 " in last

    html = html_of(digest)
    assert "<h2" in html and "Claimed (1)</h2>" in html
    assert "MD-0005  by Ada Lovelace after 18h" in html
    assert "Too rushed." in html and "&lt;sam@example.net&gt;" in html
    # The chart: a table of bars made of cells (widths in px, colours as bgcolor).
    assert "Requests per week and median time to claim" in html
    assert html.count('<th scope="row"') == CHART_WEEKS
    assert 'width="160"' in html and 'bgcolor="#1d4ed8"' in html and 'bgcolor="#b45309"' in html
    assert "<svg" not in html and "<img" not in html
    assert state.store.meta("digest")["day"] == "2026-03-10"


def test_a_second_run_the_same_day_sends_nothing(state: State) -> None:
    seed_known_state(state.store)
    assert send_digest(state.coordinator, NOW) == 1
    assert send_digest(state.coordinator, NOW + timedelta(hours=3)) == 0
    assert len(state.sent_to(COORDINATOR)) == 1
    # Tomorrow's digest covers what happened since this one.
    with state.store.transaction():
        state.store.save_request(request(8, "new@example.net", "Nia New", NOW + timedelta(hours=5)))
    assert send_digest(state.coordinator, NOW + timedelta(days=1)) == 1
    tomorrow = state.sent_to(COORDINATOR)[-1]
    assert "NEW REQUESTS (1)" in text_of(tomorrow)
    assert "since Tue 10 Mar 09:00" in flat(text_of(tomorrow))


def quiet_state(store: Store) -> None:
    with store.transaction():
        store.save_mentor(mentor(ADA, "Ada Lovelace", ["python"], NOW))
        store.save_request(request(1, "kim@example.net", "Kim Ito", NOW - timedelta(days=4)))
        store.audit("claimed", now=NOW - timedelta(days=3), request=9, mentor=ADA)
        store.set_meta("digest", {"day": "2026-03-09", "at": iso(SINCE), "quiet": False})


def test_a_quiet_day_gets_one_line(state: State) -> None:
    quiet_state(state.store)
    assert compute_digest(state.store, state.config, NOW, SINCE).quiet
    assert send_digest(state.coordinator, NOW) == 1
    [line] = state.sent_to(COORDINATOR)
    assert line["Subject"] == "[Test Mentors] Daily digest, Tue 10 Mar: nothing new"
    body = text_of(line).split("\n-- \n")[0].strip()
    assert body == (
        "Nothing new since Mon 9 Mar 09:00. 1 request is waiting for a mentor, the oldest for 4d."
    )
    assert "Nothing new since Mon 9 Mar 09:00." in html_of(line)


def test_a_quiet_day_gets_nothing_when_configured(tmp_path: Path) -> None:
    for state in open_state(tmp_path, timers={"digest_when_quiet": "none"}):
        quiet_state(state.store)
        assert send_digest(state.coordinator, NOW) == 0
        assert state.sent() == []
        assert state.store.meta("digest") == {"day": "2026-03-10", "at": iso(NOW), "quiet": True}
        assert send_digest(state.coordinator, NOW + timedelta(hours=1)) == 0


def test_the_digest_is_a_daily_job_at_digest_time() -> None:
    job = load_steps().calendar_jobs["digest"]
    assert job.fn is send_digest and not job.yearly


def test_chart_bars_scale_to_the_largest_week() -> None:
    weeks = [
        Week(date(2026, 3, 2), requests=10, claims=2, median_claim_hours=60.0),
        Week(date(2026, 3, 9), requests=5, claims=0, median_claim_hours=None),
        Week(date(2026, 3, 16), requests=0, claims=1, median_claim_hours=30.0),
    ]
    rows = chart_rows(weeks)
    assert [r["requests_px"] for r in rows] == [160, 80, 0]
    assert [r["claim_px"] for r in rows] == [160, 0, 80]
    assert [r["claim"] for r in rows] == ["2.5 d", "–", "30 h"]
    assert [len(r["requests_bar"]) for r in rows] == [24, 12, 0]
    assert chart_rows([Week(date(2026, 3, 2), 0, 0, None)])[0]["requests_px"] == 0


# --- the digest's counts are the records' (SPEC §3a invariant) -------------------------------

WALK_REQUEST = (
    "Name: {name}\nSkills: python\nTimezone: America/New_York\n"
    "Availability: Mon 09:00-17:00, Tue 09:00-17:00, Wed 09:00-17:00, Thu 09:00-17:00\n"
    "Details: I am learning Python and would love a review of my first project.\n"
)
WALK_MENTORS = [f"m{n}@example.com" for n in range(5)]
LIVE_WORDS = {"proposed", "accepted", "declined"}  # spelled out: the test recounts alone


@dataclass
class Recount:
    """What the digest must say, counted straight from the stored documents."""

    statuses: Counter[str]
    live: int
    waiting: int
    picking: int
    astray: int
    new: int
    booked: int
    live_per_request: Counter[int]
    live_holders: list[tuple[str, str, str]]  # (request status, holder, session's mentor)


def recount(store: Store, since: datetime, now: datetime) -> Recount:
    requests = {r["number"]: r for r in store.requests()}
    live = [s for s in store.sessions() if s["status"] in LIVE_WORDS]
    live_of = {s["request"] for s in live}
    mentors = {m["email"]: m for m in store.mentors()}
    low, high = iso(since), iso(now)

    def gone(email: str | None) -> bool:
        mentor = mentors.get(email or "")
        return (
            mentor is None
            or mentor["status"] in ("resigned", "term-ended")
            or mentor["term_end"] <= iso(now)
        )

    held = [r for r in requests.values() if r["status"] in ("claimed", "booked")]
    return Recount(
        statuses=Counter(r["status"] for r in requests.values()),
        live=len(live),
        waiting=sum(1 for r in requests.values() if r["status"] == "open"),
        picking=sum(
            1
            for r in held
            if r["status"] == "claimed" and r["number"] not in live_of and not gone(r["claimed_by"])
        ),
        astray=sum(
            1
            for r in held
            if gone(r["claimed_by"]) or (r["status"] == "booked" and r["number"] not in live_of)
        ),
        new=sum(1 for r in requests.values() if low <= r["created"] < high),
        booked=sum(
            1
            for s in live
            if low <= s["created"] < high
            and requests[s["request"]]["status"] == "booked"
            and requests[s["request"]]["claimed_by"] == s["mentor"]
        ),
        live_per_request=Counter(s["request"] for s in live),
        live_holders=[
            (requests[s["request"]]["status"], requests[s["request"]]["claimed_by"], s["mentor"])
            for s in live
        ],
    )


def check_truth(store: Store, config: Config, now: datetime) -> None:
    since = now - timedelta(days=1)
    digest = compute_digest(store, config, now, since)
    truth = recount(store, since, now)
    counts = {status.value: n for status, n in digest.standing.requests.items() if n}
    assert counts == dict(truth.statuses)
    assert digest.standing.live_sessions == truth.live
    assert digest.section("waiting").count == truth.waiting
    assert digest.section("picking").count == truth.picking
    assert digest.section("astray").count == truth.astray == 0  # the lifecycle holds
    assert digest.section("new").count == truth.new
    assert digest.section("booked").count == truth.booked
    # A request has at most one live session, and it is its holder's, while booked.
    assert all(n == 1 for n in truth.live_per_request.values())
    for status, holder, session_mentor in truth.live_holders:
        assert (status, holder) == ("booked", session_mentor)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_the_digest_counts_equal_the_records_after_any_history(
    tmp_path: Path, seed: int
) -> None:
    """A seeded random history — requests, claims, give-backs, withdrawals, cancelled
    sessions, no-shows, resignations, renewals, time passing (hours or weeks, with every
    timed step) and restarts — and after each event the digest's counts are recounted
    from the stored documents."""
    rng = random.Random(seed)
    desk = await Harness(tmp_path, register_steps(Registry())).open()
    try:
        await desk.seed(
            *(
                mentor_doc(email, f"Mentor {n}", ["python"], term_end=iso(T0 + 120 * DAY))
                for n, email in enumerate(WALK_MENTORS)
            )
        )

        def store() -> Store:  # the store changes on restart
            assert desk.store is not None
            return desk.store

        mentees = 0
        seen: set[str] = set()
        for _ in range(80):
            action = rng.choice(
                ["request"] * 3
                + ["claim"] * 4
                + ["time"] * 4
                + ["vague", "release", "withdraw", "cancel", "no-show", "resign", "renew"]
                + ["restart"]
            )
            now = desk.clock()
            requests = await desk.call(store().requests)
            if action == "request":
                mentees += 1
                name = f"Mentee {mentees}"
                await desk.receive(
                    mail(
                        f"{name} <mentee{mentees}@example.net>",
                        "Mentor request",
                        WALK_REQUEST.format(name=name),
                    )
                )
            elif action == "vague":  # too little to match: the mentee is asked for more
                mentees += 1
                await desk.receive(
                    mail(f"Vague {mentees} <vague{mentees}@example.net>", "Mentor request", "Help?")
                )
            elif action == "claim" and (opened := [r for r in requests if r["status"] == "open"]):
                r = rng.choice(opened)
                invited = [i["email"] for i in r.get("invited") or ()] or WALK_MENTORS
                await desk.call(
                    desk.coordinator.claims.claim, r["number"], rng.choice(invited), now, via="web"
                )
            elif action == "release" and (
                held := [r for r in requests if r["status"] in ("claimed", "booked")]
            ):
                r = rng.choice(held)
                await desk.call(desk.coordinator.claims.release, r["number"], r["claimed_by"], now)
            elif action == "withdraw" and (
                waiting := [
                    r
                    for r in requests
                    if r["status"] in ("incomplete", "open", "claimed", "booked", "met")
                ]
            ):
                r = rng.choice(waiting)
                await desk.call(
                    in_transaction,
                    desk,
                    desk.coordinator.lifecycle.withdraw,
                    r["number"],
                    r["mentee"],
                    now,
                )
            elif action == "cancel" and (live := await desk.call(store().live_sessions)):
                s = rng.choice(live)
                await desk.call(desk.coordinator.sessions.cancel, s["uid"], s["mentee"], now)
            elif action == "no-show" and (
                held_sessions := await desk.call(store().sessions, ["held"])
            ):
                s = rng.choice(held_sessions)
                feedback = FeedbackDesk(desk.coordinator.claims)
                await desk.call(feedback.record_attendance, s["uid"], s["mentor"], "no-show", now)
            elif action == "resign":
                email = rng.choice(WALK_MENTORS)
                await desk.call(
                    in_transaction,
                    desk,
                    desk.coordinator.lifecycle.mentor_left,
                    email,
                    MentorStatus.RESIGNED,
                    now,
                )
            elif action == "renew":
                email = rng.choice(WALK_MENTORS)
                await desk.receive(mail(f"Mentor <{email}>", "renew", "renew"))
            elif action == "time":
                await desk.sweep(hours=rng.choice([1, 3, 20, 49, 24 * 8, 24 * 21, 24 * 61]))
            elif action == "restart":
                await desk.restart()
            await desk.call(check_truth, store(), desk.config, desk.clock())
            seen |= {r["status"] for r in await desk.call(store().requests)}
        # The walk went somewhere: requests reached most of their states.
        assert len(seen) >= 5, seen
    finally:
        await desk.close()


def in_transaction(desk: Harness, fn: Any, *args: Any) -> Any:
    """Call a lifecycle transition as a flow does: inside one store transaction."""
    with desk.store.transaction():
        return fn(*args)
