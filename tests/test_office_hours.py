"""Office hours (flow 6) on a fixed clock: series, join, leave, one occurrence, answers, busy.

The real store, coordinator, templates and MIME; mail goes in through
``Coordinator.handle`` as the daemon hands it over, and what goes out is read from the
outbox as the SMTP sender would send it. Every calendar object is read back by ical.js
AND vobject and the times they read are compared with times written out by hand in UTC
(Berlin: CET UTC+1, CEST UTC+2 from 2026-03-29 to 2026-10-25; New York: EDT UTC-4 until
2026-11-01, EST UTC-5 after).
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from mentordesk.calendar.reply import CalendarReply
from mentordesk.config import Config, load_config
from mentordesk.core import Coordinator
from mentordesk.errors import OfficeHoursError
from mentordesk.flows.office_hours import OfficeHoursDesk, says_join, says_leave
from mentordesk.inbox.source import RawMessage
from mentordesk.mailer.compose import Renderer
from mentordesk.mailer.drafts import stored_email
from mentordesk.state.store import Store, iso

from .desk import mail
from .icalcheck import read_with_icaljs, read_with_vobject

SECRET = "test-secret-0123456789abcdef"
PROGRAM = "mentors@program.test"
COORDINATOR = "coord@program.test"
ADA = "ada@example.com"  # mentor in Berlin
LINUS = "linus@example.com"  # mentor in New York
DANA = "dana@example.net"
ERIN = "erin@example.org"
# Monday 2 March 2026; the first Thursday after is 5 March, Europe changes on 29 March.
MARCH = datetime(2026, 3, 2, 12, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> str:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Thursdays 18:00-19:00 in Berlin from 5 March: 17:00 UTC, then 16:00 UTC from 2 April.
BERLIN_THURSDAYS = [
    utc(2026, 3, 5, 17),
    utc(2026, 3, 12, 17),
    utc(2026, 3, 19, 17),
    utc(2026, 3, 26, 17),
    utc(2026, 4, 2, 16),
    utc(2026, 4, 9, 16),
    utc(2026, 4, 16, 16),
]


def write_config(root: Path) -> Config:
    (root / "config.toml").write_text(
        f"""[program]
name = "Test Mentors"
address = "{PROGRAM}"
coordinator = "{COORDINATOR}"
timezone = "America/New_York"
base_url = "https://mentors.program.test"
secret_env = "MD_TEST_SECRET"
[state]
path = "{root / "state" / "md.db"}"
fsync = false
""",
        "utf-8",
    )
    return load_config(root / "config.toml", environ={"MD_TEST_SECRET": SECRET})


class World:
    """The coordinator over a real store; mail in through ``receive``, out via ``sent``."""

    def __init__(self, root: Path) -> None:
        self.config = write_config(root)
        self.store = Store(self.config.state.path, fsync=False)
        self.coordinator = Coordinator(self.config, self.store, Renderer())
        self.desk: OfficeHoursDesk = self.coordinator.office_hours
        self._seen = 0
        self._keys = 0
        with self.store.transaction():
            self.store.save_mentor(mentor(ADA, "Ada Lovelace", "Europe/Berlin"))
            self.store.save_mentor(mentor(LINUS, "Linus Park", "America/New_York"))

    def receive(self, raw: bytes, now: datetime) -> None:
        self._keys += 1
        outcome = self.coordinator.handle(RawMessage(f"test:{self._keys}", raw), now)
        assert outcome.status == "done", outcome

    def sent(self) -> list[EmailMessage]:
        """Emails stored since the last call, oldest first."""
        docs = self.store.outbox()[self._seen :]
        self._seen += len(docs)
        return [parse(stored_email(doc, self.config.program)) for doc in docs]

    def series(self, series_id: int = 1) -> dict[str, Any]:
        doc = self.store.series(series_id)
        assert doc is not None
        return doc

    def berlin_thursdays(self, now: datetime = MARCH, **extra: Any) -> dict[str, Any]:
        args: dict[str, Any] = {
            "weekday": 3,
            "start_time": time(18),
            "zone": "Europe/Berlin",
            "length": timedelta(hours=1),
            "mentors": [ADA, LINUS],
            "now": now,
            "location": "https://meet.example.org/office-hours",
        }
        args.update(extra)
        return self.desk.commands.create_series(**args)


def mentor(email: str, name: str, zone: str) -> dict[str, Any]:
    return {
        "email": email,
        "name": name,
        "skills": ["python"],
        "timezone": zone,
        "timezone_text": zone,
        "availability": [[1, 18 * 60, 20 * 60]],
        "capacity": 2,
        "about": "",
        "status": "active",
        "term_end": iso(MARCH + timedelta(days=365)),
        "enrolled": iso(MARCH),
        "updated": iso(MARCH),
    }


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    world = World(tmp_path)
    yield world
    world.store.close()


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def html_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    return str(body.get_content())


def calendar_of(message: EmailMessage) -> tuple[str, bytes]:
    """(METHOD of the MIME type, the object), checking the attachment carries the same."""
    inline = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    [part] = inline
    ics = part.get_payload(decode=True)
    assert isinstance(ics, bytes)
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_payload(decode=True) == ics
    method = str(part.get_param("method"))
    body_method = re.search(rb"^METHOD:(\S+)\r$", ics, re.MULTILINE)
    assert body_method is not None and body_method.group(1).decode() == method  # RFC 6047 §2.4
    return method, ics


def read_both(ics: bytes, occurrences: int = 10) -> dict[str, Any]:
    """What ical.js reads, after checking that vobject reads exactly the same."""
    icaljs = read_with_icaljs(ics, occurrences)
    assert icaljs == read_with_vobject(ics, occurrences), "ical.js and vobject disagree"
    return icaljs


def starts(parsed: dict[str, Any], index: int = 0) -> list[str]:
    return [o["start"] for o in parsed["events"][index]["occurrences"]]


def people(event: dict[str, Any]) -> list[str]:
    return [a["value"].removeprefix("mailto:") for a in event["attendees"]]


def to(message: EmailMessage) -> str:
    return str(message["To"].addresses[0].addr_spec)


def feed_link(message: EmailMessage) -> str:
    found = re.search(
        r"https://mentors\.program\.test/feed/[A-Za-z0-9_\-.]+\.ics", text_of(message)
    )
    assert found is not None, "no feed link in the email"
    assert found.group(0) in html_of(message)
    return found.group(0)


# --- creating a series ------------------------------------------------------------------


def test_staffing_mentors_get_the_series_invitation(world: World) -> None:
    series = world.berlin_thursdays()
    assert series["first"] == "2026-03-05" and series["sequence"] == 0
    invitations = world.sent()
    assert sorted(to(m) for m in invitations) == [ADA, LINUS]
    for message in invitations:
        method, ics = calendar_of(message)
        assert method == "REQUEST"
        assert message.get_content_type() == "multipart/mixed"
        assert message["Auto-Submitted"] == "auto-generated"
        assert "Office hours" in message["Subject"]
        parsed = read_both(ics, 7)
        [event] = parsed["events"]
        assert parsed["method"] == "REQUEST"
        assert (event["uid"], event["sequence"], event["status"]) == (series["uid"], 0, "CONFIRMED")
        assert event["start_zone"] == "Europe/Berlin"
        assert event["organizer"]["value"] == f"mailto:{PROGRAM}"
        assert people(event) == [ADA, LINUS]
        assert all(
            a["partstat"] == "NEEDS-ACTION" and a["rsvp"] == "TRUE" for a in event["attendees"]
        )
        # The same local hour every week, so the UTC hour moves on 29 March.
        assert starts(parsed) == BERLIN_THURSDAYS
        assert all(
            datetime.fromisoformat(o["end"]) - datetime.fromisoformat(o["start"])
            == timedelta(hours=1)
            for o in event["occurrences"]
        )
        assert "/feed/" in feed_link(message)
    ada, linus = sorted(invitations, key=to)
    assert "every Thursday, 18:00–19:00 (Europe/Berlin)" in text_of(ada)
    assert "Thank you for staffing" in text_of(ada)
    # Linus reads it in his own zone too: 13:00 New York until the US change on 8 March.
    assert "Next one:      Thursday 5 March, 12:00–13:00 (America/New_York)" in text_of(linus)
    assert "Thursdays, 12:00–13:00 (America/New_York), most weeks" in text_of(linus)
    assert "Thursday 5 March, 12:00–13:00 (America/New_York)" in html_of(linus)


def test_series_with_an_end_in_new_york_across_november(world: World) -> None:
    world.desk.commands.create_series(
        weekday=1,
        start_time=time(18),
        zone="America/New_York",
        length=timedelta(minutes=45),
        mentors=[LINUS],
        until=date(2026, 11, 24),
        now=datetime(2026, 10, 1, 12, tzinfo=UTC),
        title="Python office hours",
    )
    [invitation] = world.sent()
    assert invitation["Subject"] == "Python office hours: every Tuesday at 18:00 (America/New_York)"
    _, ics = calendar_of(invitation)
    assert b"RRULE:FREQ=WEEKLY;UNTIL=20261124T230000Z" in ics
    parsed = read_both(ics, 20)
    # EDT (22:00 UTC) until 1 November, EST (23:00 UTC) after; the 24th is the last.
    assert starts(parsed) == [utc(2026, 10, d, 22) for d in (6, 13, 20, 27)] + [
        utc(2026, 11, d, 23) for d in (3, 10, 17, 24)
    ]
    assert "Last one by:   Tuesday 24 November 2026" in text_of(invitation)


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ({"weekday": "someday"}, "is not a weekday"),
        ({"time": "25:00"}, "is not a time of day"),
        ({"zone": "Mars/Olympus"}, "unknown timezone"),
        ({"length": "2d"}, "length must be whole minutes"),
        ({"length": "soon"}, "is not a duration"),
        ({"mentors": []}, "at least one mentor"),
        ({"mentors": ["not an address"]}, "is not an email address"),
        ({"until": "2026-03-01"}, "would end"),
        # The night clocks change in Berlin is a Sunday: 02:30 does not exist in March.
        ({"weekday": "sun", "time": "02:30"}, "does not happen exactly once"),
    ],
)
def test_bad_series_are_refused_with_the_reason(
    world: World, command: dict[str, Any], problem: str
) -> None:
    good = {
        "action": "add",
        "weekday": "thu",
        "time": "18:00",
        "zone": "Europe/Berlin",
        "length": "60m",
        "mentors": [ADA],
    }
    with pytest.raises(OfficeHoursError, match=problem):
        world.desk.admin({**good, **command}, MARCH)
    assert world.store.all_series() == [] and world.sent() == []


# --- joining and leaving by email --------------------------------------------------------


def test_anyone_who_writes_office_hours_joins_and_sees_only_the_mentors(world: World) -> None:
    series = world.berlin_thursdays()
    world.sent()
    world.receive(mail(f"Dana Müller <{DANA}>", "Office hours?", "Hi! Can I join?"), MARCH)
    world.receive(mail(f"Erin Ode <{ERIN}>", "office hours", ""), MARCH)
    doc = world.series()
    assert doc["attendees"] == [DANA, ERIN]
    assert doc["sequence"] == series["sequence"] == 0  # an added attendee changes no SEQUENCE
    dana, erin = world.sent()
    assert (to(dana), to(erin)) == (DANA, ERIN)
    assert dana["In-Reply-To"] and dana["Auto-Submitted"] == "auto-replied"
    assert "You are on the list for Office hours with Ada Lovelace and Linus Park" in " ".join(
        text_of(dana).split()
    )
    assert 'Reply to this email with the word "leave"' in " ".join(text_of(dana).split())
    feed_link(dana)
    for message, person in ((dana, DANA), (erin, ERIN)):
        method, ics = calendar_of(message)
        assert method == "REQUEST"
        [event] = read_both(ics, 7)["events"]
        assert (event["uid"], event["sequence"]) == (series["uid"], 0)
        assert people(event) == [ADA, LINUS, person]  # nobody sees the other guests
        assert starts(read_both(ics, 7)) == BERLIN_THURSDAYS

    # Asking again sends the invitation again, and nothing else changes.
    world.receive(mail(DANA, "Office hours", "Lost the invitation"), MARCH)
    [again] = world.sent()
    assert "already on the list" in text_of(again)
    assert world.series()["attendees"] == [DANA, ERIN]


def test_leaving_sends_a_cancel_to_that_person_only(world: World) -> None:
    series = world.berlin_thursdays()
    world.receive(mail(f"Dana <{DANA}>", "Office hours", ""), MARCH)
    world.receive(mail(f"Erin <{ERIN}>", "Office hours", ""), MARCH)
    world.sent()

    world.receive(mail(f"Dana <{DANA}>", "Office hours - please stop", ""), MARCH)
    [cancel] = world.sent()
    assert to(cancel) == DANA
    method, ics = calendar_of(cancel)
    assert method == "CANCEL"
    parsed = read_both(ics, 7)
    [event] = parsed["events"]
    assert parsed["method"] == "CANCEL"
    assert (event["uid"], event["status"], event["sequence"]) == (series["uid"], "CANCELLED", 0)
    assert people(event) == [DANA]
    assert starts(parsed) == BERLIN_THURSDAYS  # the whole series, every occurrence
    assert "off the list" in cancel["Subject"] and "off the list" in text_of(cancel)
    assert world.series()["attendees"] == [ERIN]

    # A reply "leave" to the invitation works as well.
    world.receive(mail(ERIN, "Re: Office hours: every Thursday", "Leave\n\n> You are on"), MARCH)
    [erin] = world.sent()
    assert calendar_of(erin)[0] == "CANCEL" and world.series()["attendees"] == []

    # Leaving twice: nothing to stop. A staffing mentor leaving: the coordinator decides.
    world.receive(mail(DANA, "Leave office hours", ""), MARCH)
    [nothing] = world.sent()
    assert "not on the list" in text_of(nothing) and not list(nothing.iter_attachments())
    world.receive(mail(ADA, "unsubscribe office hours", ""), MARCH)
    to_ada, notice = world.sent()
    assert to(to_ada) == ADA and "coordinator" in text_of(to_ada)
    assert to(notice) == COORDINATOR and ADA in text_of(notice)
    assert world.series()["mentors"] == [ADA, LINUS]


def test_replies_to_our_office_hours_emails(world: World) -> None:
    world.berlin_thursdays()
    world.sent()
    world.receive(mail(DANA, "Office hours", "", message_id="<dana-1@x.test>"), MARCH)
    [invitation] = world.sent()
    # "Thanks!" in answer to the invitation is for a person, not a second invitation.
    world.receive(
        mail(DANA, f"Re: {invitation['Subject']}", "Thanks, see you Thursday!",
             in_reply_to=invitation["Message-ID"]),
        MARCH,
    )  # fmt: skip
    [notice] = world.sent()
    assert to(notice) == COORDINATOR and "see you Thursday" in text_of(notice)

    world.receive(mail(DANA, "office hours leave", ""), MARCH)
    [left] = world.sent()
    # "join" in answer to the confirmation puts them back on.
    world.receive(
        mail(DANA, f"Re: {left['Subject']}", "Join\n\n> Done", in_reply_to=left["Message-ID"]),
        MARCH,
    )
    [back] = world.sent()
    assert calendar_of(back)[0] == "REQUEST" and world.series()["attendees"] == [DANA]


def test_no_series_yet_tells_the_person_and_the_coordinator(world: World) -> None:
    world.receive(
        mail(f"Ana <{DANA}>", "Office hours?", "Could you send me the invitation?"), MARCH
    )
    answer, notice = world.sent()
    assert to(answer) == DANA and "None are scheduled right now" in " ".join(
        text_of(answer).split()
    )
    assert to(notice) == COORDINATOR and "Could you send me the invitation?" in text_of(notice)


def python_tuesdays(world: World, mentors: list[str]) -> dict[str, Any]:
    """A second series: Tuesdays 12:00-12:30 in Berlin, from 3 March."""
    return world.desk.commands.create_series(
        weekday=1,
        start_time=time(12),
        zone="Europe/Berlin",
        length=timedelta(minutes=30),
        mentors=mentors,
        now=MARCH,
        title="Python office hours",
    )


def uid_of(message: EmailMessage) -> str:
    return str(read_both(calendar_of(message)[1])["events"][0]["uid"])


def test_membership_is_per_series(world: World) -> None:
    thursdays = world.berlin_thursdays()
    tuesdays = python_tuesdays(world, [LINUS])
    world.receive(mail(f"Dana <{DANA}>", "Office hours", ""), MARCH)
    invitations = {uid_of(m): m for m in world.sent()}
    assert sorted(invitations) == sorted([thursdays["uid"], tuesdays["uid"]])

    # "leave" in answer to the Tuesday invitation: off Tuesdays, still on Thursdays.
    tuesday = invitations[tuesdays["uid"]]
    world.receive(
        mail(DANA, f"Re: {tuesday['Subject']}", "Leave", in_reply_to=tuesday["Message-ID"]),
        MARCH,
    )
    [left] = world.sent()
    assert calendar_of(left)[0] == "CANCEL" and uid_of(left) == tuesdays["uid"]
    assert "Python office hours" in text_of(left)
    assert (world.series(1)["attendees"], world.series(2)["attendees"]) == ([DANA], [])

    # "join" in answer to that confirmation puts her back on Tuesdays only.
    world.receive(
        mail(DANA, f"Re: {left['Subject']}", "join", in_reply_to=left["Message-ID"]), MARCH
    )
    [back] = world.sent()
    assert calendar_of(back)[0] == "REQUEST" and uid_of(back) == tuesdays["uid"]
    assert (world.series(1)["attendees"], world.series(2)["attendees"]) == ([DANA], [DANA])

    # A fresh "office hours leave" leaves every series, one CANCEL naming each.
    world.receive(mail(DANA, "Office hours leave", ""), MARCH)
    cancels = world.sent()
    assert sorted(uid_of(m) for m in cancels) == sorted([thursdays["uid"], tuesdays["uid"]])
    assert all(calendar_of(m)[0] == "CANCEL" for m in cancels)
    said = sorted(" ".join(text_of(m).split()) for m in cancels)
    assert "off the list for Office hours (every Thursday, 18:00–19:00 (Europe/Berlin))" in said[0]
    assert "off the list for Python office hours (every Tuesday, 12:00–12:30" in said[1]
    assert (world.series(1)["attendees"], world.series(2)["attendees"]) == ([], [])


def test_leave_and_join_words() -> None:
    assert says_leave("Hi,\nStop please\n") and says_leave("unsubscribe")
    assert not says_leave("Can I join? I would not stop coming.")
    assert says_join("Hello!\nrejoin") and not says_join("Thanks")


# --- one occurrence ----------------------------------------------------------------------


def test_cancelling_one_occurrence_reaches_everyone(world: World) -> None:
    series = world.berlin_thursdays()
    world.receive(mail(f"Dana <{DANA}>", "Office hours", ""), MARCH)
    world.sent()

    answer = world.desk.admin({"action": "cancel", "id": 1, "date": "2026-04-02"}, MARCH)
    assert answer["series"]["cancelled"] == ["2026-04-02"]
    notices = world.sent()
    assert sorted(to(m) for m in notices) == sorted([ADA, LINUS, DANA])
    for message in notices:
        method, ics = calendar_of(message)
        assert method == "CANCEL"
        assert b"RECURRENCE-ID;TZID=Europe/Berlin:20260402T180000" in ics
        parsed = read_both(ics)
        [event] = parsed["events"]
        assert (event["uid"], event["status"]) == (series["uid"], "CANCELLED")
        assert event["sequence"] == 1  # above the series' own 0
        assert event["recurrence_id"] == utc(2026, 4, 2, 16)  # after the change: CEST
        assert "Thursday 2 April: cancelled" in message["Subject"]
    dana = next(m for m in notices if to(m) == DANA)
    assert "We have cancelled Office hours of Thursday 2 April, 18:00–19:00 (Europe/Berlin)" in (
        " ".join(text_of(dana).split())
    )

    # Whoever joins later gets the series without that week.
    world.receive(mail(ERIN, "Office hours", ""), MARCH)
    [late] = world.sent()
    _, ics = calendar_of(late)
    assert b"EXDATE;TZID=Europe/Berlin:20260402T180000" in ics
    expected = [s for s in BERLIN_THURSDAYS if s != utc(2026, 4, 2, 16)]
    assert starts(read_both(ics, 6)) == expected[:6]
    assert read_both(ics)["events"][0]["sequence"] == 0

    for date_text, problem in [
        ("2026-04-02", "already cancelled"),
        ("2026-04-03", "is not a date of office hours 1"),
        ("2026-03-05", "already begun"),
    ]:
        later = datetime(2026, 3, 5, 18, tzinfo=UTC)
        with pytest.raises(OfficeHoursError, match=problem):
            world.desk.admin({"action": "cancel", "id": 1, "date": date_text}, later)
    with pytest.raises(OfficeHoursError, match="no office-hours series 7"):
        world.desk.admin({"action": "cancel", "id": 7, "date": "2026-04-02"}, MARCH)


def test_moving_one_occurrence_across_the_dst_change(world: World) -> None:
    series = world.berlin_thursdays()
    world.sent()
    # Thursday 26 March (CET) moves to Monday 30 March 18:00, the first day of CEST.
    world.desk.admin(
        {"action": "move", "id": 1, "date": "2026-03-26", "to": "2026-03-30 18:00"}, MARCH
    )
    notices = world.sent()
    assert sorted(to(m) for m in notices) == [ADA, LINUS]
    for message in notices:
        method, ics = calendar_of(message)
        assert method == "REQUEST"
        [event] = read_both(ics)["events"]
        assert (event["uid"], event["sequence"]) == (series["uid"], 1)
        assert event["recurrence_id"] == utc(2026, 3, 26, 17)
        assert event["occurrences"] == [
            {"start": utc(2026, 3, 30, 16), "end": utc(2026, 3, 30, 17)}
        ]
    linus = next(m for m in notices if to(m) == LINUS)
    assert "Monday 30 March at 12:00 (America/New_York)" in linus["Subject"]

    # Moving it again, later the same day: a higher SEQUENCE for that occurrence.
    world.desk.admin(
        {"action": "move", "id": 1, "date": "2026-03-26", "to": "2026-03-30 19:30"}, MARCH
    )
    [again, _] = world.sent()
    [event] = read_both(calendar_of(again)[1])["events"]
    assert event["sequence"] == 2 and event["occurrences"][0]["start"] == utc(2026, 3, 30, 17, 30)

    # A newcomer's invitation carries the series and the moved week beside it.
    world.receive(mail(DANA, "Office hours", ""), MARCH)
    [late] = world.sent()
    parsed = read_both(calendar_of(late)[1], 7)
    expected = list(BERLIN_THURSDAYS)
    expected[3] = utc(2026, 3, 30, 17, 30)
    assert starts(parsed, 0) == expected
    assert [e["recurrence_id"] for e in parsed["events"]] == [None, utc(2026, 3, 26, 17)]
    assert [people(e) for e in parsed["events"]] == [[ADA, LINUS, DANA]] * 2

    with pytest.raises(OfficeHoursError, match="happens twice or not at all"):
        world.desk.admin(
            {"action": "move", "id": 1, "date": "2026-04-02", "to": "2026-03-29 02:30"}, MARCH
        )
    with pytest.raises(OfficeHoursError, match="has passed"):
        world.desk.admin(
            {"action": "move", "id": 1, "date": "2026-04-02", "to": "2026-03-01 10:00"}, MARCH
        )


# --- sessions stay off office hours -----------------------------------------------------------


def test_busy_for_blocks_the_right_utc_intervals_across_dst(world: World) -> None:
    world.desk.commands.create_series(
        weekday=1,
        start_time=time(18),
        zone="America/New_York",
        length=timedelta(minutes=90),
        mentors=[LINUS],
        now=datetime(2026, 10, 1, tzinfo=UTC),
    )
    world.desk.commands.cancel_occurrence(1, date(2026, 11, 10), datetime(2026, 10, 1, tzinfo=UTC))
    world.desk.commands.move_occurrence(
        1, date(2026, 11, 17), datetime(2026, 11, 19, 9), datetime(2026, 10, 1, tzinfo=UTC)
    )

    def busy(start: datetime, end: datetime) -> list[tuple[str, str]]:
        found = world.desk.busy_for(LINUS, start, end)
        assert all(b.start.tzinfo is UTC and b.end.tzinfo is UTC for b in found)
        return [(utc(*b.start.timetuple()[:5]), utc(*b.end.timetuple()[:5])) for b in found]

    window = busy(datetime(2026, 10, 20, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC))
    assert window == [
        (utc(2026, 10, 20, 22), utc(2026, 10, 20, 23, 30)),  # EDT
        (utc(2026, 10, 27, 22), utc(2026, 10, 27, 23, 30)),
        (utc(2026, 11, 3, 23), utc(2026, 11, 4, 0, 30)),  # EST from 1 November
        # 10 November is cancelled; 17 November moved to Thursday 19th, 09:00 EST.
        (utc(2026, 11, 19, 14), utc(2026, 11, 19, 15, 30)),
        (utc(2026, 11, 24, 23), utc(2026, 11, 25, 0, 30)),  # overlaps the window's end
    ]
    # An occurrence that started before the window but runs into it counts.
    assert busy(datetime(2026, 11, 4, 0, 15, tzinfo=UTC), datetime(2026, 11, 5, tzinfo=UTC)) == [
        (utc(2026, 11, 3, 23), utc(2026, 11, 4, 0, 30))
    ]
    assert busy(datetime(2026, 11, 4, 0, 30, tzinfo=UTC), datetime(2026, 11, 10, tzinfo=UTC)) == []
    assert (
        world.desk.busy_for(
            ADA, datetime(2026, 10, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
        )
        == []
    )


def test_session_slots_stay_off_a_mentors_office_hours(world: World) -> None:
    now = datetime(2026, 10, 1, 12, tzinfo=UTC)
    new_york = [[1, 17 * 60, 21 * 60]]  # Tuesdays 17:00-21:00
    with world.store.transaction():
        world.store.save_mentor(
            {**mentor(LINUS, "Linus Park", "America/New_York"), "availability": new_york}
        )
        world.store.save_request(
            {
                "number": 1,
                "mentee": DANA,
                "name": "Dana",
                "skills": ["python"],
                "details": "",
                "timezone": "America/New_York",
                "availability": new_york,
                "status": "claimed",
                "claimed_by": LINUS,
                "claimed_at": iso(now),
                "created": iso(now),
                "updated": iso(now),
            }
        )
    world.desk.commands.create_series(
        weekday=1,
        start_time=time(18),
        zone="America/New_York",
        length=timedelta(minutes=90),
        mentors=[LINUS],
        now=now,
    )
    # 17:00 and 17:30 fit; 18:00-19:30 is office hours; then 19:30, 20:00 and 20:30.
    slots = world.coordinator.sessions.candidates(1, now, limit=5)
    assert [s.strftime("%Y-%m-%dT%H:%MZ") for s in slots] == [
        "2026-10-06T21:00Z",
        "2026-10-06T21:30Z",
        "2026-10-06T23:30Z",
        "2026-10-07T00:00Z",
        "2026-10-07T00:30Z",
    ]


def test_busy_for_in_berlin_across_march(world: World) -> None:
    world.berlin_thursdays(until=date(2026, 4, 9))
    found = world.desk.busy_for(ADA, MARCH, datetime(2026, 12, 31, tzinfo=UTC))
    assert [utc(*b.start.timetuple()[:5]) for b in found] == BERLIN_THURSDAYS[:6]


# --- answers from calendar clients --------------------------------------------------------------


def answer(
    uid: str, attendee: str, partstat: str, sequence: int = 0, **extra: Any
) -> CalendarReply:
    fields: dict[str, Any] = {
        "method": "REPLY",
        "uid": uid,
        "sequence": sequence,
        "recurrence_id": None,
        "attendee": attendee,
        "partstat": partstat,
        "proposed_start": None,
        "proposed_end": None,
        "organizer": PROGRAM,
        "comment": None,
    }
    fields.update(extra)
    return CalendarReply(**fields)


def test_answers_are_recorded_for_the_series_and_for_one_occurrence(world: World) -> None:
    uid = world.berlin_thursdays()["uid"]
    world.receive(mail(DANA, "Office hours", ""), MARCH)
    world.desk.commands.move_occurrence(1, date(2026, 3, 26), datetime(2026, 3, 27, 18), MARCH)
    world.sent()
    desk = world.desk

    assert desk.handle_reply(answer("not-ours@x", DANA, "ACCEPTED"), DANA, MARCH) is False
    assert desk.handle_reply(answer(uid, DANA, "ACCEPTED"), DANA, MARCH) is True
    # Someone else answering for Dana, or a stranger: ours, but nothing changes.
    assert desk.handle_reply(answer(uid, DANA, "DECLINED"), ERIN, MARCH) is True
    assert desk.handle_reply(answer(uid, ERIN, "ACCEPTED"), ERIN, MARCH) is True
    # One occurrence: the moved week carries SEQUENCE 1, so an answer at 0 is stale.
    moved_week = datetime(2026, 3, 26, 17, tzinfo=UTC)
    desk.handle_reply(answer(uid, DANA, "DECLINED", 0, recurrence_id=moved_week), DANA, MARCH)
    desk.handle_reply(answer(uid, DANA, "TENTATIVE", 1, recurrence_id=moved_week), DANA, MARCH)
    # An answer to the master at 0 still counts: clients keep the master at 0.
    desk.handle_reply(answer(uid, LINUS, "ACCEPTED", 0), LINUS, MARCH)
    doc = world.series()
    assert doc["answers"] == {ADA: "NEEDS-ACTION", LINUS: "ACCEPTED", DANA: "ACCEPTED"}
    assert doc["occurrence_answers"] == {"2026-03-26": {DANA: "TENTATIVE"}}
    assert world.sent() == []
    events = [e["event"] for e in world.store.audit_log()]
    assert events.count("office hours answer refused") == 2
    assert events.count("office hours answer stale") == 1

    # A staffing mentor declining the whole series: the coordinator hears of it.
    desk.handle_reply(answer(uid, ADA, "DECLINED"), ADA, MARCH)
    [notice] = world.sent()
    assert to(notice) == COORDINATOR and "ada@example.com declined" in text_of(notice)


# --- mentors leaving (SPEC §3a) ---------------------------------------------------------------


def test_a_mentor_who_leaves_comes_off_every_series_they_staff(world: World) -> None:
    thursdays = world.berlin_thursdays()  # Ada and Linus
    tuesdays = python_tuesdays(world, [ADA])  # Ada alone
    world.receive(mail(f"Dana <{DANA}>", "Office hours", ""), MARCH)
    world.desk.handle_reply(answer(thursdays["uid"], ADA, "ACCEPTED"), ADA, MARCH)
    world.sent()

    assert world.desk.remove_mentor("Ada@Example.com", MARCH) == [2]
    sent = world.sent()
    cancels = [m for m in sent if to(m) == ADA]
    [notice] = [m for m in sent if to(m) == COORDINATOR]
    assert len(sent) == 3  # Linus and Dana hear nothing: their copies stay as they are
    assert sorted(uid_of(m) for m in cancels) == sorted([thursdays["uid"], tuesdays["uid"]])
    for message in cancels:
        method, ics = calendar_of(message)
        [event] = read_both(ics)["events"]
        assert method == "CANCEL" and event["status"] == "CANCELLED"
        assert event["sequence"] == 0 and people(event) == [ADA]  # Ada's copy alone
        assert message["Auto-Submitted"] == "auto-generated"
    notice_text = " ".join(text_of(notice).split())
    assert "no mentor staffs office hours 2 (Python office hours" in notice_text
    assert ADA in notice_text and "office hours 1" not in notice_text

    thursday, tuesday = world.series(1), world.series(2)
    assert (thursday["mentors"], thursday["attendees"], thursday["sequence"]) == (
        [LINUS],
        [DANA],
        0,
    )
    assert ADA not in thursday["answers"] and tuesday["mentors"] == []
    # Dana's calendar still answers at the series' SEQUENCE, and the answer counts.
    world.desk.handle_reply(answer(thursdays["uid"], DANA, "ACCEPTED"), DANA, MARCH)
    assert world.series(1)["answers"][DANA] == "ACCEPTED"
    # Ada's answers no longer count, and her evenings are hers again.
    world.desk.handle_reply(answer(thursdays["uid"], ADA, "DECLINED"), ADA, MARCH)
    assert ADA not in world.series(1)["answers"] and world.sent() == []
    assert world.desk.busy_for(ADA, MARCH, datetime(2027, 1, 1, tzinfo=UTC)) == []

    # Newcomers are offered the series that still has a mentor only.
    world.receive(mail(ERIN, "Office hours", ""), MARCH)
    [invitation] = world.sent()
    [event] = read_both(calendar_of(invitation)[1])["events"]
    assert (event["uid"], people(event)) == (thursdays["uid"], [LINUS, ERIN])
    assert "Ada" not in text_of(invitation)

    # Leaving again changes nothing and tells nobody.
    assert world.desk.remove_mentor(ADA, MARCH) == [] and world.sent() == []


def test_the_last_mentor_leaving_tells_the_coordinator_once(world: World) -> None:
    python_tuesdays(world, [LINUS])
    world.receive(mail(DANA, "Office hours", ""), MARCH)
    world.sent()
    assert world.desk.remove_mentor(LINUS, MARCH) == [1]
    cancel, notice = world.sent()
    assert (to(cancel), calendar_of(cancel)[0]) == (LINUS, "CANCEL")
    assert to(notice) == COORDINATOR
    assert "no mentor staffs office hours 1 (Python office hours" in notice["Subject"]
    assert world.series()["attendees"] == [DANA]  # Dana keeps her copy until someone decides
    assert world.desk.remove_mentor(LINUS, MARCH) == [] and world.sent() == []


def test_a_series_that_has_ended_keeps_its_mentors(world: World) -> None:
    python_tuesdays(world, [LINUS])
    world.sent()
    # An ended series is history: nothing to take Linus off, nobody to tell.
    later = datetime(2028, 1, 1, tzinfo=UTC)
    with world.store.transaction():
        world.store.save_series({**world.series(), "until": "2026-03-31"})
    assert world.desk.remove_mentor(LINUS, later) == [] and world.sent() == []
    assert world.series()["mentors"] == [LINUS]
