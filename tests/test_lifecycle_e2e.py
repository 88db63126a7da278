"""The lifecycle end to end (SPEC §3a): every way a booked request leaves its holder.

Each case was reported by someone trying the real daemon, and is replayed here the way
they met it: mail in through the real Dovecot, mail out to the aiosmtpd sink, clicks on
the daemon's own web pages, and the daemon's scheduler swept by hand after moving its
injected clock. Every calendar object that reaches a person is read back with Mozilla's
ical.js and with vobject.

The clock starts on Monday 2 June 2025, 12:00 UTC, when Berlin is UTC+2 and New York
UTC-4: Ada's and Linus's Tuesday 18:00-20:00 (Berlin) is exactly Jordan's Tuesday
12:00-14:00 (New York), so the first session is Tuesday 3 June, 16:00 UTC.

What "nothing else was sent" means is read from the store's outbox: every email the
daemon decides to send is stored there first (SPEC §5), so an email missing from it was
never going to reach anyone, and no test has to wait for mail that must not come.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mentordesk.daemon import Daemon
from mentordesk.flows.router import Coordinator
from mentordesk.state.store import Store, from_iso, iso

from .desk import COORDINATOR, PROGRAM, Desk, mail, text_of
from .forms import press
from .icalcheck import read_with_icaljs, read_with_vobject
from .servers import Dovecot, ReceivedMessage, SmtpSink
from .test_claims import JORDAN, REQUEST, links, mentor
from .timetravel import FakeClock

ADA = "ada@example.com"
LINUS = "linus@example.com"
MALLORY = "mallory@example.com"
T0 = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)  # a Monday; no DST change for weeks
FIRST_SLOT = datetime(2025, 6, 3, 16, 0, tzinfo=UTC)  # Tue 18:00 Berlin = 12:00 New York
FEED = re.compile(r"http://127\.0\.0\.1:\d+/feed/[A-Za-z0-9_\-.]+\.ics")
SCHEDULE = re.compile(r"http://127\.0\.0\.1:\d+/schedule/[A-Za-z0-9_\-.]+")
# What goes out about a session that is still to happen, or has just happened.
SESSION_MAIL = {
    "session_invite",
    "session_reminder",
    "after_session_mentee",
    "after_session_mentor",
}
POLL_S = 0.02


@pytest.fixture
async def desk(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> AsyncIterator[Desk]:
    desk = Desk(tmp_path, dovecot, smtp_sink)
    yield desk
    await desk.stop()


def team_member(email: str, name: str, **extra: Any) -> dict[str, Any]:
    """A Python mentor in Berlin, free Tuesdays 18:00-20:00, enrolled a month before T0."""
    dates = {
        "term_end": iso(T0 + timedelta(days=365)),
        "enrolled": iso(T0 - timedelta(days=30)),
        "updated": iso(T0 - timedelta(days=30)),
    }
    return mentor(email, name, ["python"], **{**dates, **extra})


@dataclass
class Program:
    """The running daemon, its clock, and a browser for the links in the emails."""

    desk: Desk
    daemon: Daemon
    clock: FakeClock
    http: aiohttp.ClientSession

    @property
    def coordinator(self) -> Coordinator:
        assert self.daemon.coordinator is not None
        return self.daemon.coordinator

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the store's writer thread, inside one transaction, as the daemon
        runs its own work; then let the outbox send what it decided."""

        def run() -> Any:
            with self.coordinator.store.transaction():
                return fn(*args, **kwargs)

        result = await self.daemon.writer.call(run)
        assert self.daemon.sender is not None
        self.daemon.sender.poke()
        return result

    async def sweep(self, at: datetime) -> dict[str, int]:
        """Move the clock to ``at`` and run the daemon's sweep there."""
        assert at >= self.clock.now, "time only moves forward"
        self.clock.now = at
        assert self.daemon.timers is not None
        return await self.daemon.timers.sweep()

    async def outbox(self) -> list[tuple[str, str]]:
        """(template, recipient) of every email the daemon ever decided to send."""
        async with self.desk.store() as store:
            return [(item["kind"], item["recipients"][0]) for item in store.outbox()]


async def start(
    desk: Desk,
    http: aiohttp.ClientSession,
    mentors: list[dict[str, Any]],
    **tables: dict[str, Any],
) -> Program:
    """Mentors enrolled, then the daemon started at T0 with its clock in our hands."""
    timers = {"sweep_interval": "1h", **tables.pop("timers", {})}  # we sweep by hand
    desk.configure(timers=timers, **tables)
    store = Store(desk.config.state.path, fsync=False)
    try:
        for doc in mentors:
            store.save_mentor(doc)
    finally:
        store.close()
    clock = FakeClock(T0)
    daemon = await desk.start(Daemon(desk.config, clock=clock))
    return Program(desk, daemon, clock, http)


@dataclass(frozen=True)
class Booked:
    ack: ReceivedMessage  # the acknowledgement Jordan got
    claim_invites: dict[str, ReceivedMessage]  # mentor → their claim email
    intro: ReceivedMessage  # "It's yours" to Ada
    invitations: dict[str, ReceivedMessage]  # person → their session invitation
    session: dict[str, Any]  # the session as stored when it was booked


async def booked(p: Program, claimers: tuple[str, ...] = (ADA, LINUS)) -> Booked:
    """Jordan asks; Ada takes it on the claim page; both get the invitation."""
    desk = p.desk
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    ack = await desk.mail_to(JORDAN, "[MD-0001] Mentor request")
    invites = {m: await desk.mail_to(m, "would like help") for m in claimers}
    async with press(p.http, links(invites[ADA], "claim")[0]) as response:
        assert response.status == 200
        assert "Thank you! MD-0001 is yours." in await response.text()
    intro = await desk.mail_to(ADA, "It's yours")
    invitations = {who: await desk.mail_to(who, "Mentoring session with") for who in (ADA, JORDAN)}
    session = await desk.until(lambda store: store.live_session_of(1))
    assert from_iso(session["start"]) == FIRST_SLOT
    for invitation in invitations.values():
        assert invitation_of(invitation) == (session["uid"], 0)
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None
        assert (request["status"], request["claimed_by"]) == ("booked", ADA)
    return Booked(ack, invites, intro, invitations, session)


# --- reading what arrived ----------------------------------------------------------------


def status_of(store: Store, number: int = 1) -> str | None:
    request = store.request(number)
    return None if request is None else str(request["status"])


def calendar_of(message: ReceivedMessage) -> tuple[str, bytes]:
    """(METHOD from the MIME type, the object) of a message's text/calendar part."""
    for part in message.message.walk():
        if part.get_content_type() == "text/calendar":
            ics = part.get_payload(decode=True)
            assert isinstance(ics, bytes)
            return str(part.get_param("method")), ics
    raise AssertionError(f"no text/calendar part in {message.subject!r}")


def method_of(message: ReceivedMessage) -> str | None:
    """The iTIP METHOD of a message's text/calendar part; None without one."""
    for part in message.message.walk():
        if part.get_content_type() == "text/calendar":
            return str(part.get_param("method"))
    return None


def both_parsers(message: ReceivedMessage) -> list[dict[str, Any]]:
    """The one VEVENT of a message's calendar part, as ical.js and as vobject read it."""
    method, ics = calendar_of(message)
    events = []
    for read in (read_with_icaljs(ics), read_with_vobject(ics)):
        assert read["method"] == method
        [event] = read["events"]
        events.append(event)
    return events


def invitation_of(message: ReceivedMessage) -> tuple[str, int]:
    """(UID, SEQUENCE) of an invitation (METHOD:REQUEST), agreed on by both parsers."""
    assert method_of(message) == "REQUEST", message.subject
    read = {(e["uid"], e["sequence"]) for e in both_parsers(message)}
    assert len(read) == 1, read
    [found] = read
    return found


def assert_cancels(message: ReceivedMessage, session: dict[str, Any], to: str) -> int:
    """``message`` is a METHOD:CANCEL of ``session`` with a higher SEQUENCE, for ``to``'s
    calendar, as both parsers read it; returns that SEQUENCE."""
    assert method_of(message) == "CANCEL", message.subject
    sequences = set()
    for event in both_parsers(message):
        assert event["uid"] == session["uid"]
        assert event["status"] == "CANCELLED"
        assert event["sequence"] > session["sequence"]
        assert f"mailto:{to}" in [a["value"].lower() for a in event["attendees"]]
        assert event["occurrences"][0]["start"] == from_iso(session["start"]).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        sequences.add(event["sequence"])
    [sequence] = sequences
    return int(sequence)


async def arrived(
    desk: Desk, address: str, test: Callable[[ReceivedMessage], bool], count: int = 1
) -> list[ReceivedMessage]:
    """Wait until ``count`` messages to ``address`` pass ``test``; return them all."""
    deadline = asyncio.get_running_loop().time() + 15
    while len(found := [m for m in desk.sink.messages_to(address) if test(m)]) < count:
        if asyncio.get_running_loop().time() > deadline:
            got = [m.subject for m in desk.sink.messages_to(address)]
            raise AssertionError(f"{address}: wanted {count} such messages among {got}")
        await asyncio.sleep(POLL_S)
    return found


def ics_text(message: ReceivedMessage) -> str:
    """The calendar object of a message, unfolded (RFC 5545 §3.1)."""
    return calendar_of(message)[1].decode().replace("\r\n ", "")


async def cancel_of(desk: Desk, address: str, uid: str) -> ReceivedMessage:
    """The one METHOD:CANCEL for ``uid`` that reached ``address``."""

    def is_it(message: ReceivedMessage) -> bool:
        return method_of(message) == "CANCEL" and uid in ics_text(message)

    [found] = await arrived(desk, address, is_it)
    return found


async def feed_of(p: Program, invitation: ReceivedMessage) -> dict[str, dict[str, Any]]:
    """The person's calendar feed, fetched from the link in their invitation: UID → event
    (both parsers must read the same)."""
    [url] = set(FEED.findall(text_of(invitation)))
    async with p.http.get(url) as response:
        assert response.status == 200
        ics = await response.read()
    icaljs, vobj = read_with_icaljs(ics), read_with_vobject(ics)
    assert icaljs == vobj, "ical.js and vobject disagree"
    return {e["uid"]: e for e in icaljs["events"]}


def flat(message: ReceivedMessage) -> str:
    return " ".join(text_of(message).split())


def declining(sender: str, name: str, uid: str, sequence: int) -> bytes:
    """An iMIP REPLY declining the invitation, as Google Calendar sends it (RFC 6047)."""
    ics = "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "PRODID:-//Google Inc//Google Calendar 70.9054//EN",
            "VERSION:2.0",
            "METHOD:REPLY",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            f"SEQUENCE:{sequence}",
            f"DTSTAMP:{T0:%Y%m%dT%H%M%SZ}",
            f"ORGANIZER;CN=Test Mentors:mailto:{PROGRAM}",
            f"ATTENDEE;CN={name};PARTSTAT=DECLINED:mailto:{sender}",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )
    msg = EmailMessage()
    msg["From"] = f"{name} <{sender}>"
    msg["To"] = PROGRAM
    msg["Subject"] = "Declined: Mentoring session"
    msg["Message-ID"] = make_msgid(domain="calendar.test")
    msg.set_content(f"{name} has declined this invitation.")
    part = EmailMessage()
    part.set_content(ics.encode(), "text", "calendar", params={"method": "REPLY"})
    msg.make_alternative()
    msg.attach(part)
    return msg.as_bytes()


def answer(sender: str, to: ReceivedMessage, body: str, *, threaded: bool = True) -> bytes:
    """What a person's mail client sends when they answer ``to`` (``threaded=False``: a
    client that drops In-Reply-To/References, keeping only the subject)."""
    return mail(
        sender,
        f"Re: {to.subject}",
        body,
        in_reply_to=str(to.message["Message-ID"]) if threaded else None,
    )


async def nothing_about_the_session_after(p: Program, session: dict[str, Any]) -> None:
    """The session's reminder time and its end pass: no reminder, no "how did it go"."""
    start, end = from_iso(session["start"]), from_iso(session["end"])
    before = p.desk.config.sessions.reminder_before
    done = await p.sweep(start - before + timedelta(minutes=5))
    assert done["session reminders"] == 0
    done = await p.sweep(end + p.desk.config.timers.followup_after + timedelta(minutes=5))
    assert done["sessions done"] == 0 and done["after the session"] == 0
    kinds = [kind for kind, _ in await p.outbox()]
    assert "session_reminder" not in kinds
    assert "after_session_mentee" not in kinds and "after_session_mentor" not in kinds


# --- 1. the mentee withdraws after the session was booked ------------------------------------

WITHDRAWALS = {
    # "please withdraw my request", answering the acknowledgement in its thread.
    "in the thread": ("please withdraw my request\n\n> Thanks for writing to us", True),
    # Their own words, as a reply whose client kept only the subject (tag) of the thread.
    "in other words, by subject": ("Hi,\n\nI found help elsewhere, you can close this.\n", False),
}


@pytest.mark.parametrize("way", list(WITHDRAWALS))
async def test_withdrawing_a_booked_request_cancels_the_session_everywhere(
    desk: Desk, http: aiohttp.ClientSession, way: str
) -> None:
    p = await start(desk, http, [team_member(ADA, "Ada Lovelace")])
    book = await booked(p, claimers=(ADA,))
    session = book.session
    before = await feed_of(p, book.invitations[JORDAN])
    assert before[session["uid"]]["status"] == "TENTATIVE"

    body, threaded = WITHDRAWALS[way]
    desk.send(answer("Jordan Lee <jordan@example.net>", book.ack, body, threaded=threaded))

    # A METHOD:CANCEL of the same UID, SEQUENCE 1, in both calendars.
    sequences = {
        who: assert_cancels(await cancel_of(desk, who, session["uid"]), session, who)
        for who in (ADA, JORDAN)
    }
    assert sequences == {ADA: 1, JORDAN: 1}
    await arrived(desk, JORDAN, lambda m: "Your request MD-0001 is withdrawn" in flat(m))
    told = await desk.mail_to(ADA, "Withdrawn by the mentee")
    assert "has withdrawn MD-0001" in flat(told)
    cancel_to_ada = await cancel_of(desk, ADA, session["uid"])
    assert "Jordan Lee withdrew MD-0001" in flat(cancel_to_ada)

    async with desk.store() as store:
        request, stored = store.request(1), store.session(session["uid"])
        assert request is not None and stored is not None
        assert request["status"] == "withdrawn"
        assert (stored["status"], stored["sequence"]) == ("cancelled", 1)
        assert store.live_session_of(1) is None

    # Both private feeds show it cancelled (or have dropped it).
    for who in (ADA, JORDAN):
        event = (await feed_of(p, book.invitations[who])).get(session["uid"])
        assert event is None or (event["status"], event["sequence"]) == ("CANCELLED", 1)

    await nothing_about_the_session_after(p, session)
    outbox = await p.outbox()
    assert sorted(who for kind, who in outbox if kind == "session_cancelled") == [ADA, JORDAN]
    assert [kind for kind, who in outbox if kind in SESSION_MAIL] == ["session_invite"] * 2


async def test_withdrawing_in_answer_to_the_invitation_cancels_it(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    # The email a mentee is most likely to answer is the last one: the invitation.
    p = await start(desk, http, [team_member(ADA, "Ada Lovelace")])
    book = await booked(p, claimers=(ADA,))
    desk.send(
        answer(
            "Jordan Lee <jordan@example.net>",
            book.invitations[JORDAN],
            "Thanks so much, but I found help elsewhere. You can close this.\n",
        )
    )
    for who in (ADA, JORDAN):
        assert_cancels(await cancel_of(desk, who, book.session["uid"]), book.session, who)
    await desk.mail_to(ADA, "Withdrawn by the mentee")
    await arrived(desk, JORDAN, lambda m: "Your request MD-0001 is withdrawn" in flat(m))
    await desk.until(lambda store: status_of(store) == "withdrawn")
    outbox = await p.outbox()
    assert ("coordinator_notice", COORDINATOR) not in outbox  # nothing left for a person


# --- 2. the holder gives it back; another mentor takes it ------------------------------------


async def test_released_after_booking_then_taken_by_another_gets_a_new_invitation(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    p = await start(
        desk, http, [team_member(ADA, "Ada Lovelace"), team_member(LINUS, "Linus Park")]
    )
    book = await booked(p)
    old = book.session
    [release_url] = links(book.intro, "release")
    async with press(http, release_url) as response:
        assert response.status == 200
        assert "Thanks for letting us know." in await response.text()

    for who in (ADA, JORDAN):
        assert_cancels(await cancel_of(desk, who, old["uid"]), old, who)
    assert "Ada Lovelace can no longer take MD-0001" in flat(
        await cancel_of(desk, JORDAN, old["uid"])
    )
    await desk.mail_to(JORDAN, "We are finding you another mentor")
    again = await desk.mail_to(LINUS, "Back again:")
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None
        assert (request["status"], request["claimed_by"]) == ("open", None)
        assert request["released_by"] == [ADA]
        assert store.session(old["uid"])["status"] == "cancelled"  # type: ignore[index]

    async with press(http, links(again, "claim")[0]) as response:
        assert response.status == 200
    intro = await desk.mail_to(JORDAN, "Linus Park will be your mentor")
    assert "we are sending you both a calendar invitation" in flat(intro)
    # ... and so we do: a new event (new UID, SEQUENCE 0) in both new calendars.
    new = await desk.until(lambda store: store.live_session_of(1))
    assert new["uid"] != old["uid"] and new["mentor"] == LINUS
    to_linus = await desk.mail_to(LINUS, "Mentoring session with")
    [to_jordan] = await arrived(desk, JORDAN, lambda m: "Mentoring session with Linus" in m.subject)
    assert invitation_of(to_linus) == invitation_of(to_jordan) == (new["uid"], 0)
    feed = await feed_of(p, to_jordan)
    assert feed[new["uid"]]["status"] == "TENTATIVE"
    assert feed.get(old["uid"], {"status": "CANCELLED"})["status"] == "CANCELLED"
    # Ada's calendar never hears of the new one; nobody gets a second CANCEL.
    outbox = await p.outbox()
    assert sorted(w for k, w in outbox if k == "session_invite") == [ADA, JORDAN, JORDAN, LINUS]
    assert sorted(w for k, w in outbox if k == "session_cancelled") == [ADA, JORDAN]


# --- 3. the holder resigns; office hours lose her ----------------------------------------------


async def staff_office_hours(p: Program) -> tuple[dict[str, Any], dict[str, Any]]:
    """Thursday office hours Ada staffs alone, and Friday ones she staffs with Linus."""
    commands = p.coordinator.office_hours.commands

    def create(weekday: int, mentors: list[str], title: str) -> dict[str, Any]:
        series: dict[str, Any] = commands.create_series(
            weekday=weekday,
            start_time=time(18, 0),
            zone="Europe/Berlin",
            length=timedelta(minutes=60),
            mentors=mentors,
            now=p.clock(),
            title=title,
        )
        return series

    alone = await p.call(create, 3, [ADA], "Thursday drop-in")
    shared = await p.call(create, 4, [ADA, LINUS], "Friday drop-in")
    await arrived(p.desk, ADA, lambda m: method_of(m) == "REQUEST", count=2)
    return alone, shared


async def assert_mentor_left(
    p: Program, book: Booked, series: tuple[dict[str, Any], dict[str, Any]], why: str
) -> None:
    """What follows when Ada leaves while holding a booked request (SPEC §3a)."""
    desk, session = p.desk, book.session
    for who in (ADA, JORDAN):
        assert_cancels(await cancel_of(desk, who, session["uid"]), session, who)
    await desk.mail_to(JORDAN, "We are finding you another mentor")
    held = await desk.mail_to(COORDINATOR, "[MD-0001] Back to matching: Ada Lovelace")
    assert "cancelled in both calendars" in flat(held)
    # The request is open again without her, and matching started again by itself.
    again = await desk.mail_to(LINUS, "[MD-0001] Back again:")
    assert links(again, "claim")
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None
        assert (request["status"], request["claimed_by"]) == ("open", None)
        assert ADA in request["released_by"]
        assert store.mentor(ADA)["status"] == why  # type: ignore[index]
        assert store.live_session_of(1) is None
        # Off both series; the one she staffed alone has nobody now.
        alone, shared = (store.series(s["id"]) for s in series)
        assert alone is not None and shared is not None
        assert (alone["mentors"], shared["mentors"]) == ([], [LINUS])
    for each in series:  # her own calendar drops both series
        await cancel_of(desk, ADA, each["uid"])
    nobody = await arrived(
        desk, COORDINATOR, lambda m: "no mentor staffs office hours 1" in flat(m)
    )
    assert "Thursday drop-in" in flat(nobody[0]) and "Friday drop-in" not in flat(nobody[0])
    assert not [m for m in desk.sink.messages_to(LINUS) if method_of(m) == "CANCEL"]
    await nothing_about_the_session_after(p, session)
    outbox = await p.outbox()
    assert [w for k, w in outbox if k == "claim_invite"].count(ADA) == 1  # never again


async def test_resigning_releases_the_booked_request_and_the_office_hours(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    p = await start(
        desk, http, [team_member(ADA, "Ada Lovelace"), team_member(LINUS, "Linus Park")]
    )
    series = await staff_office_hours(p)
    book = await booked(p)
    desk.send(mail("Ada Lovelace <ada@example.com>", "resign", "Sorry, I have to stop.\n"))
    done = await desk.mail_to(ADA, "Re: resign")
    assert "You have stepped down as a mentor" in flat(done)
    await assert_mentor_left(p, book, series, "resigned")


# --- 4. the holder's term ends ------------------------------------------------------------------


async def test_a_term_ending_releases_the_booked_request_and_the_office_hours(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    # Her term ends two hours after the booking: before the reminder is due.
    ends = T0 + timedelta(hours=2)
    ada = team_member(ADA, "Ada Lovelace", term_end=iso(ends))
    p = await start(desk, http, [ada, team_member(LINUS, "Linus Park")])
    series = await staff_office_hours(p)
    book = await booked(p)
    done = await p.sweep(ends + timedelta(minutes=1))
    assert done["terms"] == 1  # her "your term has ended"
    told = await desk.mail_to(ADA, "Your mentor term has ended")
    assert "(MD-0001) went back to other mentors" in flat(told)
    await assert_mentor_left(p, book, series, "term-ended")
    held = await desk.mail_to(COORDINATOR, "[MD-0001] Back to matching: Ada Lovelace")
    assert "reached the end of the term" in held.subject


# --- 5. one of the two cancels the session -------------------------------------------------------


async def test_a_cancelled_session_leaves_the_request_with_its_mentor(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    p = await start(desk, http, [team_member(ADA, "Ada Lovelace")])
    book = await booked(p, claimers=(ADA,))
    session = book.session
    desk.send(answer("Jordan Lee <jordan@example.net>", book.invitations[JORDAN], "cancel\n\n> Hi"))
    for who in (ADA, JORDAN):
        assert_cancels(await cancel_of(desk, who, session["uid"]), session, who)
    to_ada = await cancel_of(desk, ADA, session["uid"])
    to_jordan = await cancel_of(desk, JORDAN, session["uid"])
    assert "Jordan Lee had to cancel the session" in flat(to_ada)
    assert "As you asked, the session" in flat(to_jordan)
    # What each is told next is what can happen: Ada picks a time; Jordan can write to her.
    assert "MD-0001 stays yours" in flat(to_ada)
    assert "Ada Lovelace still has MD-0001" in flat(to_jordan) and ADA in text_of(to_jordan)
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None
        assert (request["status"], request["claimed_by"]) == ("claimed", ADA)
        assert request["schedule"] == "mentor picks"  # as the digest will say
        assert store.session(session["uid"])["status"] == "cancelled"  # type: ignore[index]
    await nothing_about_the_session_after(p, session)
    outbox = await p.outbox()
    assert ("withdrawn_mentor", ADA) not in outbox  # a cancelled session is no withdrawal
    assert ("request_released", JORDAN) not in outbox

    # A week on, Ada picks another Tuesday from the link in her cancellation: a new event.
    p.clock.now = T0 + timedelta(days=7)
    [pick_url] = set(SCHEDULE.findall(text_of(to_ada)))
    async with http.get(pick_url) as response:
        assert response.status == 200
        values = re.findall(r'name="slot" value="([^"]+)"', await response.text())
    async with http.post(pick_url, data={"slot": values[0]}) as response:
        assert response.status == 200
    new = await desk.until(lambda store: store.live_session_of(1))
    assert new["uid"] != session["uid"] and new["start"] == values[0]
    for who in (ADA, JORDAN):
        [invitation] = await arrived(
            desk, who, lambda m: method_of(m) == "REQUEST" and new["uid"] in ics_text(m)
        )
        assert invitation_of(invitation) == (new["uid"], 0)
    await desk.until(lambda store: status_of(store) == "booked")


# --- 6. declined, and no other common time --------------------------------------------------------


async def test_a_decline_with_no_other_time_lets_the_mentor_pick_the_same_event(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    # Ada is free one half hour a week; the horizon holds one Tuesday: one common slot.
    ada = team_member(ADA, "Ada Lovelace", availability=[[1, 18 * 60, 18 * 60 + 30]])
    p = await start(desk, http, [ada], sessions={"horizon": "7d"})
    book = await booked(p, claimers=(ADA,))
    first = book.session
    desk.send(declining(JORDAN, "Jordan Lee", first["uid"], 0))
    ask = await desk.mail_to(ADA, "Pick a time")
    declined = await desk.until(
        lambda store: (s := store.session(first["uid"])) and s["status"] == "declined" and s
    )
    assert declined["sequence"] == 0

    # Nobody is reminded of a time one of them declined.
    done = await p.sweep(FIRST_SLOT - p.desk.config.sessions.reminder_before + timedelta(hours=1))
    assert done["session reminders"] == 0
    assert "session_reminder" not in [kind for kind, _ in await p.outbox()]

    [pick_url] = set(SCHEDULE.findall(text_of(ask)))
    async with http.get(pick_url) as response:
        assert response.status == 200
        page = await response.text()
    values = re.findall(r'name="slot" value="([^"]+)"', page)
    assert values and first["start"] not in values
    async with http.post(pick_url, data={"slot": values[0]}) as response:
        assert response.status == 200
        assert "we sent you both the invitation" in await response.text()

    for who in (ADA, JORDAN):
        [moved] = await arrived(desk, who, lambda m: "New time:" in m.subject)
        assert invitation_of(moved) == (first["uid"], 1)
        starts = {e["occurrences"][0]["start"] for e in both_parsers(moved)}
        assert starts == {from_iso(values[0]).strftime("%Y-%m-%dT%H:%M:%SZ")}
    async with desk.store() as store:
        session = store.session(first["uid"])
        request = store.request(1)
        assert session is not None and request is not None
        assert (session["status"], session["sequence"]) == ("proposed", 1)
        assert session["start"] == values[0]
        assert (request["status"], request["claimed_by"]) == ("booked", ADA)
        assert len(store.sessions()) == 1


# --- 7. what must change nothing -----------------------------------------------------------


async def assert_untouched(p: Program, book: Booked) -> None:
    async with p.desk.store() as store:
        request = store.request(1)
        session = store.session(book.session["uid"])
        assert request is not None and session is not None
        assert (request["status"], request["claimed_by"]) == ("booked", ADA)
        assert (session["status"], session["sequence"]) == ("proposed", 0)
    kinds = [kind for kind, _ in await p.outbox()]
    for kind in ("session_cancelled", "withdrawn_mentor", "request_withdrawn", "request_released"):
        assert kind not in kinds


async def test_withdraw_from_someone_who_is_not_the_mentee_changes_nothing(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    p = await start(
        desk, http, [team_member(ADA, "Ada Lovelace"), team_member(LINUS, "Linus Park")]
    )
    book = await booked(p)
    # A forwarded acknowledgement, answered by someone else; the mentor herself, by tag;
    # another mentor in his claim email's thread.
    desk.send(answer(f"Mallory <{MALLORY}>", book.ack, "please withdraw my request"))
    desk.send(mail("Ada Lovelace <ada@example.com>", "withdraw MD-0001", "withdraw"))
    desk.send(answer("Linus Park <linus@example.com>", book.claim_invites[LINUS], "withdraw"))
    await desk.processed(4)  # the request and these three
    await assert_untouched(p, book)
    nothing = await desk.mail_to(ADA, "Re: withdraw")
    assert "there was nothing to withdraw" in flat(nothing)


async def test_release_by_a_mentor_who_does_not_hold_it_changes_nothing(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    p = await start(
        desk, http, [team_member(ADA, "Ada Lovelace"), team_member(LINUS, "Linus Park")]
    )
    book = await booked(p)
    desk.send(answer("Linus Park <linus@example.com>", book.claim_invites[LINUS], "release"))
    refused = await desk.mail_to(LINUS, "Re: [MD-0001]")
    assert "Only the mentor who has MD-0001 can give it back" in flat(refused)
    desk.send(mail("Linus Park <linus@example.com>", "release MD-0001", ""))
    await arrived(desk, LINUS, lambda m: "can give it back" in flat(m), count=2)
    await desk.processed(3)
    await assert_untouched(p, book)


async def test_a_second_withdrawal_is_confirmed_once_and_cancels_nothing_more(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    p = await start(desk, http, [team_member(ADA, "Ada Lovelace")])
    book = await booked(p, claimers=(ADA,))
    desk.send(answer("Jordan Lee <jordan@example.net>", book.ack, "withdraw"))
    await desk.until(lambda store: status_of(store) == "withdrawn")
    await arrived(desk, JORDAN, lambda m: "is withdrawn" in flat(m))
    first = await p.outbox()

    desk.send(answer("Jordan Lee <jordan@example.net>", book.ack, "Please withdraw my request."))
    await desk.processed(3)
    second = (await p.outbox())[len(first) :]
    assert len(second) == 1, second  # one answer, to Jordan, and nothing else
    [(kind, to)] = second
    assert (kind, to) == ("request_withdrawn", JORDAN)
    [_, again] = await arrived(desk, JORDAN, lambda m: "withdrawn" in flat(m), count=2)
    assert "MD-0001" in flat(again)
    async with desk.store() as store:
        session = store.session(book.session["uid"])
        assert session is not None and (session["status"], session["sequence"]) == ("cancelled", 1)


async def test_the_mentees_words_on_a_booked_request_reach_the_mentor(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    # Reported: "can we do 7:30am instead?" on a booked request got "we added what you
    # wrote to MD-0001", and the mentor was never told.
    p = await start(desk, http, [team_member(ADA, "Ada Lovelace")])
    book = await booked(p, claimers=(ADA,))
    desk.send(
        answer(
            "Jordan Lee <jordan@example.net>",
            book.ack,
            "Could we meet half an hour later? My bus gets in at 12:20.\n",
            threaded=True,
        )
    )
    note = await desk.mail_to(ADA, "A note from Jordan")
    assert "My bus gets in at 12:20" in flat(note)
    thanks = await arrived(desk, JORDAN, lambda m: "passed what you wrote on to Ada" in flat(m))
    assert ADA in flat(thanks[0])
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None and request["status"] == "booked"
        assert "My bus" not in request["details"]  # kept as a note, not re-sent as details
