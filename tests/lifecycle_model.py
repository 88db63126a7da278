"""What the lifecycle machine (tests/test_lifecycle_machine.py) needs besides its rules:
the people, the emails they send, a reading of what the store holds, and SPEC §3a's
invariants as functions of that reading.

Emails are built as a mail client builds them (RFC 5322 headers, threaded with
In-Reply-To/References); calendar answers as calendar clients build them (RFC 5546
iTIP REPLY/COUNTER inside an RFC 6047 iMIP message); delivery reports as RFC 3464 DSNs.

The invariants judge only what the store really holds: its request, session, mentor and
office-hours documents, its bounced addresses, and the bytes of the emails in its outbox
(parsed with the ``email`` package, their text/calendar parts with ``icalendar``). Each
returns a list of violations in words; an empty list means the invariant holds. 1–6 are
SPEC §3a's list (and the brief's); 7–9 follow from other sentences of §3a and flow 5,
named in each docstring.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo

import icalendar

from mentordesk.config import ProgramConfig
from mentordesk.flows.digest import Digest
from mentordesk.mailer.drafts import stored_email
from mentordesk.state.records import (
    CAPACITY_COUNTED,
    HELD,
    LIVE,
    MentorStatus,
    RequestStatus,
    SessionStatus,
    parse_time,
    term_over,
)

PROGRAM = "mentors@program.test"
COORDINATOR = "coord@program.test"


# --- the people ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    email: str
    name: str

    def capitalised(self) -> Person:
        """The same person as some clients write them: ``Jordan@Mentees.Test``."""
        local, _, domain = self.email.partition("@")
        return Person(f"{local.capitalize()}@{domain.title()}", self.name)


@dataclass(frozen=True)
class MentorProfile(Person):
    """A mentor and the enrollment forms they may send (one per availability variant)."""

    skills: str
    timezone: str
    availability: tuple[str, ...]  # variants of the Availability line
    capacity: int


@dataclass(frozen=True)
class MenteeProfile(Person):
    timezone: str
    availability: str


# Overlapping skills and hours, so that matching and booking really happen: Ada and Ben
# both do Python in the evening (Berlin) / at lunch (New York); Cleo and Dev share career
# advice; Eve is not enrolled at the start.
MENTORS = (
    MentorProfile(
        "ada@mentors.test",
        "Ada Lovelace",
        "python, javascript",
        "Europe/Berlin",
        ("Mon 18:00-21:00, Tue 18:00-21:00, Thu 18:00-21:00", "Sat 10:00-12:00"),
        3,
    ),
    MentorProfile(
        "ben@mentors.test",
        "Ben Okafor",
        "python, devops",
        "America/New_York",
        ("Tue 12:00-15:00, Thu 12:00-15:00", "Wed 09:00-10:00"),
        2,
    ),
    MentorProfile(
        "cleo@mentors.test",
        "Cleo Park",
        "javascript, career advice",
        "America/New_York",
        ("Mon 09:00-17:00, Wed 09:00-17:00, Fri 09:00-17:00", "Sun 20:00-21:00"),
        2,
    ),
    MentorProfile(
        "dev@mentors.test",
        "Dev Raman",
        "python, career advice",
        "Asia/Kolkata",
        ("Tue 20:00-23:00, Sat 08:00-12:00", "Sun 06:00-07:00"),
        1,
    ),
    MentorProfile(
        "eve@mentors.test",
        "Eve Tanaka",
        "javascript, python",
        "Asia/Tokyo",
        ("Wed 01:00-04:00, Fri 01:00-04:00", "Mon 09:00-10:00"),
        2,
    ),
)
INITIAL_MENTORS = MENTORS[:4]

MENTEES = (
    MenteeProfile(
        "jordan@mentees.test", "Jordan Lee", "America/New_York", "Tue 12:00-14:00, Thu 12:00-14:00"
    ),
    MenteeProfile(
        "kim@mentees.test",
        "Kim Schmidt",
        "Europe/Berlin",
        "Mon 18:00-20:00, Tue 18:00-21:00, Wed 10:00-16:00",
    ),
    MenteeProfile(
        "lu@mentees.test", "Lu Chen", "America/Chicago", "Mon 09:00-12:00, Fri 08:00-16:00"
    ),
)

REQUEST_TOPICS = ("python", "javascript", "career advice", "devops")

WITHDRAW_WORDS = (
    "withdraw",
    "Please withdraw my request.",
    "I found help elsewhere, you can close this.",
    "I no longer need a mentor",
    "Hi,\n\nthanks for trying! I no longer need a mentor.\n\nBest,\nJ.",
)


def enrollment_body(mentor: MentorProfile, variant: int) -> str:
    return (
        f"Name: {mentor.name}\n"
        f"Skills: {mentor.skills}\n"
        f"Timezone: {mentor.timezone}\n"
        f"Availability: {mentor.availability[variant % len(mentor.availability)]}\n"
        f"Capacity: {mentor.capacity}\n"
        f"About: {mentor.name} has mentored juniors for years.\n"
    )


def request_body(mentee: MenteeProfile, topic: str, serial: int, *, complete: bool) -> str:
    """A request; without ``complete`` the details are too thin to match on."""
    details = (
        f"I am stuck on my {topic} side project number {serial} and would love a review "
        "of how I structured it."
        if complete
        else "help?"
    )
    return (
        f"Name: {mentee.name}\n"
        f"Skills: {topic}\n"
        f"Timezone: {mentee.timezone}\n"
        f"Availability: {mentee.availability}\n"
        f"Details: {details}\n"
    )


# --- emails people send -------------------------------------------------------------------


def mail(
    sender: Person,
    subject: str,
    body: str,
    *,
    now: datetime,
    message_id: str,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
) -> bytes:
    """One plain-text email as a mail client sends it (RFC 5322)."""
    msg = EmailMessage()
    msg["From"] = f"{sender.name} <{sender.email}>"
    msg["To"] = PROGRAM
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = " ".join([*references, in_reply_to])
    msg.set_content(body)
    return msg.as_bytes()


def calendar_answer(
    sender: Person,
    uid: str,
    sequence: int,
    *,
    now: datetime,
    message_id: str,
    partstat: str = "ACCEPTED",
    method: str = "REPLY",
    proposed: datetime | None = None,
    shout: bool = False,
) -> bytes:
    """An iMIP answer (RFC 6047) as Gmail/Outlook send it: text + text/calendar.
    ``shout``: the attendee as Outlook writes it, ``MAILTO:JORDAN@MENTEES.TEST``."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    lines = [
        "BEGIN:VCALENDAR",
        "PRODID:-//Google Inc//Google Calendar 70.9054//EN",
        "VERSION:2.0",
        f"METHOD:{method}",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"SEQUENCE:{sequence}",
        f"DTSTAMP:{stamp}",
        f"ORGANIZER;CN=Test Mentors:mailto:{PROGRAM}",
        f"ATTENDEE;CN={sender.name};PARTSTAT={partstat}:"
        + (f"MAILTO:{sender.email.upper()}" if shout else f"mailto:{sender.email}"),
    ]
    if proposed is not None:
        lines += [
            f"DTSTART:{proposed.strftime('%Y%m%dT%H%M%SZ')}",
            f"DTEND:{(proposed + timedelta(minutes=30)).strftime('%Y%m%dT%H%M%SZ')}",
        ]
    lines += ["END:VEVENT", "END:VCALENDAR"]
    ics = "\r\n".join(lines) + "\r\n"
    msg = EmailMessage()
    msg["From"] = f"{sender.name} <{sender.email}>"
    msg["To"] = PROGRAM
    word = "New time proposed" if method == "COUNTER" else partstat.title()
    msg["Subject"] = f"{word}: Mentoring session"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    msg.set_content(f"{sender.name} answered this invitation: {partstat.lower()}.")
    msg.add_alternative(ics, subtype="calendar", params={"method": method})
    return msg.as_bytes()


def delivery_report(
    failed: str, *, now: datetime, message_id: str, original: bytes | None = None
) -> bytes:
    """A permanent-failure DSN (RFC 3464) for ``failed``, returning ``original``."""
    parts = [
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        b"To: " + PROGRAM.encode() + b"\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"Date: " + format_datetime(now).encode() + b"\r\n"
        b"Message-ID: " + message_id.encode() + b"\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.net\r\n\r\n"
        b"Final-Recipient: rfc822; " + failed.encode() + b"\r\nAction: failed\r\n"
        b"Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n"
    ]
    if original is not None:
        parts.append(b"--B\r\nContent-Type: message/rfc822\r\n\r\n" + original + b"\r\n")
    parts.append(b"--B--\r\n")
    return b"".join(parts)


# --- what the outbox holds ----------------------------------------------------------------


@dataclass(frozen=True)
class CalendarObject:
    """One VEVENT of a text/calendar part: METHOD, UID, SEQUENCE, and whether it is about
    one occurrence of a series (RECURRENCE-ID) rather than the whole event."""

    method: str
    uid: str
    sequence: int
    occurrence: bool = False


@dataclass(frozen=True)
class OutboxMail:
    """One stored outgoing email, read back from its bytes."""

    message_id: str
    kind: str  # the template it was rendered from (the outbox records it)
    recipient: str
    request: int | None
    subject: str
    references: tuple[str, ...]
    calendar: tuple[CalendarObject, ...]
    data: bytes = field(repr=False)


def read_outbox_item(doc: Mapping[str, Any], program: ProgramConfig) -> OutboxMail:
    """Parse one outbox document's email: its stored bytes, or its draft written."""
    raw = stored_email(doc, program)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    objects: list[CalendarObject] = []
    for part in message.walk():
        if part.get_content_type() != "text/calendar":
            continue
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        calendar = icalendar.Calendar.from_ical(payload)
        method = str(calendar.get("METHOD", "")).upper()
        for event in calendar.walk("VEVENT"):
            found = CalendarObject(
                method,
                str(event["UID"]),
                int(event.get("SEQUENCE", 0)),
                "RECURRENCE-ID" in event,
            )
            if found not in objects:  # the inline part and the .ics attachment agree
                objects.append(found)
    recipients = [str(r).lower() for r in doc["recipients"]]
    assert len(recipients) == 1, doc["recipients"]
    references = tuple(str(message.get("References", "")).split())
    return OutboxMail(
        message_id=str(doc["message_id"]),
        kind=str(doc["kind"]),
        recipient=recipients[0],
        request=None if doc.get("request") is None else int(doc["request"]),
        subject=str(message.get("Subject", "")),
        references=references,
        calendar=tuple(objects),
        data=raw,
    )


class OutboxReader:
    """The outbox, parsed once per email (the outbox only grows in these tests)."""

    def __init__(self, program: ProgramConfig) -> None:
        self.program = program
        self._parsed: dict[str, OutboxMail] = {}

    def read(self, docs: Iterable[Mapping[str, Any]]) -> list[OutboxMail]:
        """Every stored email, oldest first."""
        mails = []
        for doc in docs:
            message_id = str(doc["message_id"])
            mail_ = self._parsed.get(message_id)
            if mail_ is None:
                assert "data" in doc or "draft" in doc, f"outbox item {message_id} lost its email"
                mail_ = self._parsed[message_id] = read_outbox_item(doc, self.program)
            mails.append(mail_)
        return mails


# --- the state, read once per check -------------------------------------------------------


@dataclass(frozen=True)
class World:
    """Everything the invariants look at, read from the store at one moment."""

    now: datetime
    requests: tuple[dict[str, Any], ...]
    sessions: tuple[dict[str, Any], ...]
    mentors: dict[str, dict[str, Any]]
    bounced: frozenset[str]
    outbox: tuple[OutboxMail, ...]
    series: tuple[dict[str, Any], ...] = ()
    # (template, recipient, request) of every email the gate held back because the
    # address was marked bounced then (the audit's "not sent: address bounced").
    withheld: frozenset[tuple[str, str, int | None]] = frozenset()

    def was_withheld(self, kind: str, recipient: str, request: int | None) -> bool:
        return (kind, recipient, request) in self.withheld

    def request(self, number: int | None) -> dict[str, Any] | None:
        return next((r for r in self.requests if r["number"] == number), None)

    def live_sessions_of(self, number: int) -> list[dict[str, Any]]:
        return [s for s in self.sessions if s.get("request") == number and s["status"] in LIVE]

    def status_of(self, number: int | None) -> str | None:
        request = self.request(number)
        return None if request is None else str(request["status"])


# Mail about a session: everything but the CANCEL (SPEC §3a invariant 3).
SESSION_MAIL = frozenset(
    {
        "session_invite",
        "session_reminder",
        "session_pick",
        "session_counter_declined",
        "after_session_mentee",
        "after_session_mentor",
    }
)
ENDED = frozenset({RequestStatus.WITHDRAWN, RequestStatus.EXPIRED, RequestStatus.CLOSED})
HOLDER_STATUSES = frozenset({MentorStatus.ACTIVE, MentorStatus.PAUSED})


def one_live_session_with_its_holder(world: World) -> list[str]:
    """1. A request has at most one live session; a live session's mentor is the
    request's current holder; the holder is active or paused, in term."""
    problems = []
    for request in world.requests:
        number = request["number"]
        live = world.live_sessions_of(number)
        if len(live) > 1:
            uids = ", ".join(f"{s['uid']} ({s['status']})" for s in live)
            problems.append(f"MD-{number}: {len(live)} live sessions: {uids}")
        holder = request.get("claimed_by") if request["status"] in HELD else None
        for session in live:
            if session["mentor"] != holder:
                problems.append(
                    f"MD-{number} ({request['status']}, holder {holder}): live session "
                    f"{session['uid']} ({session['status']}) is with {session['mentor']}"
                )
        if holder:
            mentor = world.mentors.get(holder)
            if mentor is None:
                problems.append(f"MD-{number}: held by {holder}, who is not a mentor")
            elif mentor["status"] not in HOLDER_STATUSES or term_over(mentor, world.now):
                problems.append(
                    f"MD-{number} ({request['status']}): held by {holder}, who is "
                    f"{mentor['status']} with term_end {mentor.get('term_end')} "
                    f"(now {world.now.isoformat()})"
                )
    # A session nobody's request knows is a calendar entry nobody will ever cancel.
    numbers = {r["number"] for r in world.requests}
    for session in world.sessions:
        if session["status"] in LIVE and session.get("request") not in numbers:
            problems.append(f"live session {session['uid']} for unknown request")
    return problems


def cancels_reach_every_calendar(world: World) -> list[str]:
    """2. Every calendar that got an invitation for a session that was cancelled got a
    METHOD:CANCEL with the same UID and a higher SEQUENCE; an invitation for a UID the
    store does not know is an orphan. (2b, which follows from flow 5: both people of a
    live session hold its current invitation: a REQUEST at its current SEQUENCE.)

    An email the gate held back because its address was marked bounced at the time is
    excused (invariant 5 forbids it); a mark can be lifted later (the person wrote back),
    so "bounced now" is not the test. Whether what was held back should go out once the
    mark is lifted is no rule of SPEC §3a, so it is not checked here."""
    problems = []
    requested: dict[tuple[str, str], int] = {}  # (uid, recipient) → highest REQUEST seq
    cancelled: dict[tuple[str, str], int] = {}  # (uid, recipient) → highest CANCEL seq
    for mail_ in world.outbox:
        if mail_.kind.startswith("office_hours"):
            continue  # series invitations: office hours, not sessions
        for obj in mail_.calendar:
            key = (obj.uid, mail_.recipient)
            if obj.method == "REQUEST":
                requested[key] = max(requested.get(key, -1), obj.sequence)
            elif obj.method == "CANCEL":
                cancelled[key] = max(cancelled.get(key, -1), obj.sequence)
    sessions = {s["uid"]: s for s in world.sessions}
    for (uid, recipient), sequence in sorted(requested.items()):
        session = sessions.get(uid)
        if session is None:
            problems.append(f"invitation {uid} to {recipient}: no such session stored")
            continue
        status = session["status"]
        number = session.get("request")
        if status == SessionStatus.CANCELLED:
            got = cancelled.get((uid, recipient))
            if got is None and world.was_withheld("session_cancelled", recipient, number):
                continue
            if got is None:
                problems.append(
                    f"session {uid} (MD-{session.get('request')}) is cancelled but "
                    f"{recipient} never got its CANCEL (invited at SEQUENCE {sequence})"
                )
            elif got <= sequence:
                problems.append(
                    f"session {uid}: {recipient}'s CANCEL has SEQUENCE {got}, "
                    f"not above the invitation's {sequence}"
                )
        elif status in LIVE:
            current = int(session.get("sequence") or 0)
            if (uid, recipient) in cancelled:
                problems.append(
                    f"session {uid} is {status} but {recipient} got a CANCEL for it "
                    f"(SEQUENCE {cancelled[(uid, recipient)]})"
                )
            if sequence != current and not world.was_withheld("session_invite", recipient, number):
                problems.append(
                    f"2b: session {uid} is {status} at SEQUENCE {current}, but the last "
                    f"invitation {recipient} got has SEQUENCE {sequence}"
                )
    for session in world.sessions:
        if session["status"] not in LIVE:
            continue
        for person in (session["mentor"], session["mentee"]):
            if (session["uid"], person) not in requested and not world.was_withheld(
                "session_invite", person, session.get("request")
            ):
                problems.append(
                    f"2b: live session {session['uid']} (MD-{session.get('request')}): "
                    f"{person} never got its invitation"
                )
    return problems


def no_session_mail_after_the_end(
    world: World, new: Sequence[OutboxMail], status_before: Mapping[int, str]
) -> list[str]:
    """3. No mail about a session (invitation, reminder, pick, counter answer,
    after-session questions) goes out for a request that is withdrawn, expired or
    closed, except the CANCEL. Judged on the emails stored by the last step: their
    request had ended before the step, or ended in it — except that the after-session
    questions are what closes a met request (RequestEvent.CLOSED), and one sweep may
    find the session over, the request met, ask, and close it."""
    problems = []
    for mail_ in new:
        if mail_.kind not in SESSION_MAIL:
            continue
        before = status_before.get(mail_.request) if mail_.request is not None else None
        after = world.status_of(mail_.request)
        closes_it = (
            mail_.kind.startswith("after_session")
            and before in (RequestStatus.BOOKED, RequestStatus.MET)
            and after == RequestStatus.CLOSED
        )
        if before in ENDED or (after in ENDED and not closes_it):
            problems.append(
                f"{mail_.kind} to {mail_.recipient} for MD-{mail_.request}, which was "
                f"{before} before the step and is {after} after it"
            )
    return problems


def statuses_match_facts(world: World) -> list[str]:
    """4. Statuses are the enums' values; a request is booked exactly when it has a live
    session; claimed/booked has claimed_by set, incomplete/open has none (an ended
    request may keep who had it: a met one must, for capacity and the after-session
    questions). A mentor whose status says the term ended has a term that ended."""
    problems = []
    request_words = {s.value for s in RequestStatus}
    session_words = {s.value for s in SessionStatus}
    mentor_words = {s.value for s in MentorStatus}
    for request in world.requests:
        number, status = request["number"], request["status"]
        if status not in request_words:
            problems.append(f"MD-{number}: status {status!r} is not a RequestStatus")
            continue
        live = bool(world.live_sessions_of(number))
        if (status == RequestStatus.BOOKED) != live:
            problems.append(f"MD-{number} is {status} but has {'a' if live else 'no'} live session")
        holder = request.get("claimed_by")
        if status in HELD and not holder:
            problems.append(f"MD-{number} is {status} but claimed_by is empty")
        if status in (RequestStatus.INCOMPLETE, RequestStatus.OPEN) and holder:
            problems.append(f"MD-{number} is {status} but claimed_by is {holder}")
    for session in world.sessions:
        if session["status"] not in session_words:
            problems.append(f"session {session['uid']}: status {session['status']!r}")
    for mentor in world.mentors.values():
        if mentor["status"] not in mentor_words:
            problems.append(f"mentor {mentor['email']}: status {mentor['status']!r}")
        end = parse_time(mentor.get("term_end"))
        if mentor["status"] == MentorStatus.TERM_ENDED and end is not None and end > world.now:
            problems.append(
                f"mentor {mentor['email']} is term-ended, but their term runs until "
                f"{mentor['term_end']} (now {world.now.isoformat()})"
            )
    return problems


def nothing_to_bounced(
    new: Sequence[OutboxMail], bounced_before: frozenset[str], bounced_after: frozenset[str]
) -> list[str]:
    """5. Nothing is sent to an address marked bounced. Judged on the emails the last
    step stored, to addresses marked before it and still marked after it: a step in which
    the person wrote back lifts their mark (``BounceDesk.answered``), and the answer to
    them is then due."""
    return [
        f"{m.kind} (MD-{m.request}) to {m.recipient}, marked bounced"
        for m in new
        if m.recipient in bounced_before and m.recipient in bounced_after
    ]


def timed_mail_at_most_once(world: World, reminder_of: Mapping[str, str]) -> list[str]:
    """7 (SPEC §3a, Time). Each timed step happens at most once per object: a session's
    reminder once per time it was (re)proposed at, to each of the two (an invitation the
    gate held back counts: it was proposed); the after-session
    questions once per session that took place (or not), to each of the two.
    ``reminder_of``: a reminder's Message-ID → the UID of the session it is about (the
    store's thread record)."""
    problems = []
    invitations: dict[tuple[str, str], set[int]] = {}
    for mail_ in world.outbox:
        for obj in mail_.calendar:
            if obj.method == "REQUEST":
                invitations.setdefault((obj.uid, mail_.recipient), set()).add(obj.sequence)
    reminders: dict[tuple[str, str], int] = {}
    asked: dict[tuple[int | None, str, str], int] = {}
    for mail_ in world.outbox:
        if mail_.kind == "session_reminder":
            key = (reminder_of.get(mail_.message_id, "?"), mail_.recipient)
            reminders[key] = reminders.get(key, 0) + 1
        elif mail_.kind.startswith("after_session"):
            ask_key = (mail_.request, mail_.kind, mail_.recipient)
            asked[ask_key] = asked.get(ask_key, 0) + 1
    request_of = {str(s["uid"]): s.get("request") for s in world.sessions}
    for (uid, recipient), count in sorted(reminders.items()):
        times = len(invitations.get((uid, recipient), ()))
        # An invitation the gate held back (the address was marked bounced then) was
        # proposed all the same: once the person writes again, the reminder may go.
        if world.was_withheld("session_invite", recipient, request_of.get(uid)):
            times += 1
        if count > times:
            problems.append(
                f"{count} reminders of session {uid} to {recipient}, "
                f"which was proposed {times} time(s)"
            )
    for (number, kind, recipient), count in sorted(asked.items(), key=str):
        met = sum(
            1
            for s in world.sessions
            if s.get("request") == number
            and s["status"] in (SessionStatus.HELD, SessionStatus.NO_SHOW)
        )
        if count > met:
            problems.append(
                f"{count} × {kind} to {recipient} for MD-{number}, which has {met} "
                "session(s) that took place"
            )
    return problems


def mentors_sessions_apart(world: World) -> list[str]:
    """8 (flow 5). A mentor's live sessions never overlap each other."""
    problems = []
    live = [s for s in world.sessions if s["status"] in LIVE]
    for i, one in enumerate(live):
        for other in live[i + 1 :]:
            if one["mentor"] != other["mentor"]:
                continue
            if one["start"] < other["end"] and other["start"] < one["end"]:
                problems.append(
                    f"{one['mentor']}: MD-{one['request']} {one['start']}–{one['end']} and "
                    f"MD-{other['request']} {other['start']}–{other['end']} overlap"
                )
    return problems


def office_hours_at(series: Mapping[str, Any], start: datetime, end: datetime) -> bool:
    """Does an occurrence of the weekly ``series`` overlap ``[start, end)``? Read from
    the series document alone: weekday, local time and zone, length, first/until, and
    the cancelled or moved occurrences."""
    zone = ZoneInfo(series["zone"])
    hour, minute = (int(part) for part in str(series["time"]).split(":"))
    length = timedelta(minutes=int(series["length_minutes"]))
    first = date.fromisoformat(series["first"])
    until = date.fromisoformat(series["until"]) if series.get("until") else None
    exceptions = series.get("exceptions") or {}
    day = start.astimezone(zone).date() - timedelta(days=1)
    while day <= end.astimezone(zone).date() + timedelta(days=1):
        if day.weekday() == series["weekday"] and first <= day and (until is None or day <= until):
            begin = datetime.combine(day, time(hour, minute), tzinfo=zone)
            change = exceptions.get(day.isoformat()) or {}
            if change.get("status") == "moved" and change.get("start"):
                begin = datetime.fromisoformat(change["start"]).replace(tzinfo=zone)
            if change.get("status") != "cancelled" and begin < end and start < begin + length:
                return True
        day += timedelta(days=1)
    return False


def sessions_clear_of_office_hours(world: World, proposed_after: Mapping[str, int]) -> list[str]:
    """8b (flow 5). A session proposed after a series began is not at the time of an
    office hour its mentor staffs. ``proposed_after``: session UID → the index in the
    audit log of its latest proposal; a series' creation is found the same way."""
    problems = []
    for series in world.series:
        created = proposed_after.get(f"series:{series['id']}", -1)
        for session in world.sessions:
            if session["status"] not in LIVE or session["mentor"] not in series["mentors"]:
                continue
            if proposed_after.get(session["uid"], -1) < created:
                continue  # booked before the series existed: nobody could avoid it
            start, end = parse_time(session["start"]), parse_time(session["end"])
            if start is not None and end is not None and office_hours_at(series, start, end):
                problems.append(
                    f"MD-{session['request']}: session {session['start']} with "
                    f"{session['mentor']} falls in office hours {series['id']} "
                    f"({series['weekday']} {series['time']} {series['zone']})"
                )
    return problems


def office_hours_membership(world: World) -> list[str]:
    """9 (SPEC §3a, office hours). A mentor who left (resigned, term over) staffs no
    series; whoever got a series' invitation and is no longer on it got its CANCEL
    (series-wide, sent after that invitation); whoever is on it holds its invitation."""
    problems = []
    for series in world.series:
        for address in series["mentors"]:
            mentor = world.mentors.get(address)
            if mentor is not None and (
                MentorStatus(mentor["status"]).left or term_over(mentor, world.now)
            ):
                problems.append(
                    f"office hours {series['id']} still staffed by {address}, "
                    f"{mentor['status']} (term_end {mentor.get('term_end')})"
                )
        members = set(series["mentors"]) | set(series["attendees"])
        last: dict[str, str] = {}  # recipient → method of the last series-wide message
        for mail_ in world.outbox:
            for obj in mail_.calendar:
                if obj.uid == series["uid"] and not obj.occurrence:
                    last[mail_.recipient] = obj.method
        for address, method in sorted(last.items()):
            if address in world.bounced or world.was_withheld("office_hours_left", address, None):
                continue
            if address not in members and method != "CANCEL":
                problems.append(
                    f"{address} is off office hours {series['id']} but the last word their "
                    f"calendar got about it is {method}"
                )
            if address in members and method != "REQUEST":
                problems.append(
                    f"{address} is on office hours {series['id']} but their calendar last got "
                    f"{method}"
                )
        for address in sorted(members - set(last) - world.bounced):
            if world.was_withheld("office_hours_invite", address, None):
                continue
            problems.append(f"{address} is on office hours {series['id']} with no invitation")
    return problems


def digest_numbers(digest: Digest) -> dict[str, int]:
    """The counts the digest states, by name."""
    standing, load = digest.standing, digest.load
    found: dict[str, int] = {
        f"requests {status.value}": standing.count(status) for status in RequestStatus
    }
    found.update(
        {
            "new": digest.section("new").count,
            "booked since": digest.section("booked").count,
            "live sessions": standing.live_sessions,
            "waiting": standing.waiting.count,
            "waiting by age (sum)": sum(count for _, count in standing.waiting_by_age),
            "picking a time": standing.picking.count,
            "astray": standing.astray.count,
            "mentors active": load.active,
            "mentors paused": load.paused,
            "mentors pending": load.pending,
            "mentors term ended": load.term_ended,
            "claims this month": load.claims_this_month,
        }
    )
    return found


def digest_counts_match(world: World, digest: Digest, month_start: datetime) -> list[str]:
    """6. The digest's counts equal the counts recomputed here from the records."""
    since, now = digest.since, world.now

    def created_in_window(doc: Mapping[str, Any]) -> bool:
        created = parse_time(doc.get("created"))
        return created is not None and since <= created < now

    def holder_gone(holder: str) -> bool:
        mentor = world.mentors.get(holder)
        return mentor is None or MentorStatus(mentor["status"]).left or term_over(mentor, now)

    expected: dict[str, int] = {f"requests {s.value}": 0 for s in RequestStatus}
    expected.update(dict.fromkeys(("live sessions", "picking a time", "astray"), 0))
    expected["new"] = sum(1 for r in world.requests if created_in_window(r))
    for request in world.requests:
        status, number = request["status"], request["number"]
        expected[f"requests {status}"] = expected.get(f"requests {status}", 0) + 1
        live = bool(world.live_sessions_of(number))
        if status in HELD:
            gone = holder_gone(str(request.get("claimed_by") or ""))
            if gone or (status == RequestStatus.BOOKED and not live):
                expected["astray"] += 1
            elif status == RequestStatus.CLAIMED and not live:
                expected["picking a time"] += 1
    expected["waiting"] = expected["waiting by age (sum)"] = expected["requests open"]
    expected["live sessions"] = sum(1 for s in world.sessions if s["status"] in LIVE)
    # Sessions booked since: created in the window, still live, for a request still
    # booked with that mentor (a session of a withdrawn or given-back request is not).
    expected["booked since"] = 0
    for session in world.sessions:
        its = world.request(session.get("request"))
        if (
            created_in_window(session)
            and session["status"] in LIVE
            and its is not None
            and its["status"] == RequestStatus.BOOKED
            and its.get("claimed_by") == session["mentor"]
        ):
            expected["booked since"] += 1
    for key in ("active", "paused", "term ended", "pending"):
        expected[f"mentors {key}"] = 0
    for mentor in world.mentors.values():
        status = MentorStatus(mentor["status"])
        if status is MentorStatus.RESIGNED:
            continue
        if status.left or term_over(mentor, now):
            expected["mentors term ended"] += 1
        else:
            expected[f"mentors {status.value}"] += 1
    expected["claims this month"] = 0
    for request in world.requests:
        claimed_at = parse_time(request.get("claimed_at"))
        if (
            request.get("claimed_by")
            and request["status"] in CAPACITY_COUNTED
            and claimed_at is not None
            and claimed_at >= month_start
        ):
            expected["claims this month"] += 1
    found = digest_numbers(digest)
    return [
        f"digest says {name} = {count}, the records say {expected[name]}"
        for name, count in found.items()
        if count != expected[name]
    ]
