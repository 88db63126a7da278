"""Flow 5 end to end: claim → invitation → answers from calendar clients → move/cancel.

Every invitation that arrives at the SMTP server is read back by Mozilla's ical.js (the
parser inside Thunderbird) and by vobject, and the times they read are compared with the
slot that was meant. Answers are written in the shapes real clients send and delivered
through the real mailbox.
"""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage, MIMEPart
from email.utils import make_msgid
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from mentordesk.state.store import from_iso

from .desk import PROGRAM, Desk, mail, text_of
from .forms import press
from .icalcheck import read_with_icaljs, read_with_vobject
from .servers import ReceivedMessage
from .test_claims import JORDAN, REQUEST, links, mentor, seed

ADA = "ada@example.com"
BERLIN = ZoneInfo("Europe/Berlin")


def calendar_of(message: ReceivedMessage) -> tuple[str, bytes]:
    """(METHOD from the MIME type, the object) of the inline text/calendar part."""
    for part in message.message.walk():
        if part.get_content_type() == "text/calendar":
            ics = part.get_payload(decode=True)
            assert isinstance(ics, bytes)
            return str(part.get_param("method")), ics
    raise AssertionError(f"no text/calendar part in {message.subject!r}")


def urls(message: ReceivedMessage, path: str) -> list[str]:
    """The links to /path/... in a message's text part."""
    return re.findall(rf"http://127\.0\.0\.1:\d+/{path}/[A-Za-z0-9_\-.]+", text_of(message))


def ics_attachment(message: ReceivedMessage) -> bytes:
    [attachment] = list(message.message.iter_attachments())
    assert attachment.get_filename() == "invite.ics"
    return bytes(attachment.get_payload(decode=True))


async def claimed(desk: Desk, http: aiohttp.ClientSession, **ada: object) -> None:
    """Ada (Berlin, Tue 18–20) takes Jordan's request (New York, Tue 12–14)."""
    seed(desk, [mentor(ADA, "Ada Lovelace", ["python"], **ada)])
    await desk.start()
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    invite = await desk.mail_to(ADA, "would like help")
    async with press(http, links(invite, "claim")[0]) as response:
        assert response.status == 200


def expected_first_slot(now: datetime) -> datetime:
    """The next Tuesday 18:00 Berlin at least 24 h away: both windows (Tue 18–20 Berlin,
    Tue 12–14 New York) start there, whatever the DST state of either zone... almost: in
    the weeks when only one zone has changed clocks they overlap from 18:00 or 19:00."""
    day = (now + timedelta(hours=24)).astimezone(BERLIN)
    while True:
        for hour, minute in ((18, 0), (18, 30), (19, 0), (19, 30)):
            start = datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN)
            new_york = start.astimezone(ZoneInfo("America/New_York"))
            in_mentee = (
                new_york.weekday() == 1
                and 12 * 60 <= (new_york.hour * 60 + new_york.minute) <= 13 * 60 + 30
            )
            if day.weekday() == 1 and start >= now + timedelta(hours=24) and in_mentee:
                return start.astimezone(UTC)
        day += timedelta(days=1)


def reply_mail(
    sender: str,
    name: str,
    uid: str,
    sequence: int,
    partstat: str,
    *,
    method: str = "REPLY",
    proposed: datetime | None = None,
    mime_method: bool = True,
    line_end: str = "\r\n",
) -> bytes:
    """An iMIP answer as Gmail/Outlook/Apple send it: text + text/calendar (+ .ics)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
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
        f"ATTENDEE;CN={name};PARTSTAT={partstat}:MAILTO:{sender.upper()}",
    ]
    if proposed is not None:
        lines += [
            f"DTSTART:{proposed.strftime('%Y%m%dT%H%M%SZ')}",
            f"DTEND:{(proposed + timedelta(minutes=30)).strftime('%Y%m%dT%H%M%SZ')}",
        ]
    lines += ["END:VEVENT", "END:VCALENDAR"]
    ics = line_end.join(lines) + line_end
    msg = EmailMessage()
    msg["From"] = f"{name} <{sender}>"
    msg["To"] = PROGRAM
    msg["Subject"] = f"{partstat.title()}: Mentoring session"
    msg["Message-ID"] = make_msgid(domain="calendar.test")
    msg.set_content(f"{name} has {partstat.lower()} this invitation.")
    part = MIMEPart()
    params = {"method": method} if mime_method else {}
    part.set_content(ics.encode(), "text", "calendar", cte="quoted-printable", params=params)
    msg.make_alternative()
    MIMEPart.attach(msg, part)
    return msg.as_bytes()


async def session_doc(desk: Desk, sequence: int = 0) -> dict[str, Any]:
    found: dict[str, Any] = await desk.until(
        lambda store: next((s for s in store.sessions() if s["sequence"] >= sequence), None)
    )
    return found


async def test_claim_sends_both_people_a_real_invitation(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    started = datetime.now(UTC)
    await claimed(desk, http)
    to_ada = await desk.mail_to(ADA, "Mentoring session with")
    to_jordan = await desk.mail_to(JORDAN, "Mentoring session with")
    session = await session_doc(desk)
    start = from_iso(session["start"])
    assert start == expected_first_slot(started)

    for message in (to_ada, to_jordan):
        # multipart/mixed → multipart/alternative {text, html, calendar} + invite.ics
        assert message.message.get_content_type() == "multipart/mixed"
        alternative = next(message.message.iter_parts())
        assert [p.get_content_type() for p in alternative.iter_parts()] == [
            "text/plain",
            "text/html",
            "text/calendar",
        ]
        mime_method, ics = calendar_of(message)
        assert mime_method == "REQUEST"
        assert ics_attachment(message) == ics
        for read in (read_with_icaljs(ics), read_with_vobject(ics)):
            assert read["method"] == "REQUEST"
            [event] = read["events"]
            assert event["uid"] == session["uid"] and event["uid"].endswith("@program.test")
            assert event["sequence"] == 0
            assert event["organizer"]["value"].lower() == f"mailto:{PROGRAM}"
            people = {a["value"].lower(): a for a in event["attendees"]}
            assert set(people) == {f"mailto:{ADA}", f"mailto:{JORDAN}"}
            for attendee in people.values():
                assert attendee["partstat"] == "NEEDS-ACTION" and attendee["rsvp"] == "TRUE"
                assert attendee["role"] == "REQ-PARTICIPANT"
            assert event["occurrences"][0]["start"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")
            assert event["occurrences"][0]["end"] == (start + timedelta(minutes=30)).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
        assert b"\r\nUID:" in ics and b"BEGIN:VEVENT" in ics
        assert ics.index(b"UID:") > ics.index(b"BEGIN:VEVENT")  # no calendar-level UID
    # Each person reads the time in their own zone.
    local = start.astimezone(BERLIN)
    assert f"{local:%H:%M}–" in text_of(to_ada) and "(Europe/Berlin)" in text_of(to_ada)
    assert "(America/New_York)" in text_of(to_jordan)


async def test_both_accepting_confirms_the_session(desk: Desk, http: aiohttp.ClientSession) -> None:
    await claimed(desk, http)
    session = await session_doc(desk)
    # Gmail's shape, and Apple's (LF-only lines, no method= on the MIME type).
    desk.send(reply_mail(ADA, "Ada Lovelace", session["uid"], 0, "ACCEPTED"))
    desk.send(
        reply_mail(
            JORDAN, "Jordan Lee", session["uid"], 0, "ACCEPTED", mime_method=False, line_end="\n"
        )
    )
    confirmed = await desk.until(
        lambda store: (s := store.session(session["uid"])) and s["status"] == "accepted" and s
    )
    assert confirmed["answers"] == {ADA: "ACCEPTED", JORDAN: "ACCEPTED"}
    await desk.processed(3)  # the request and the two answers
    # Calendar answers are never answered by email.
    assert not [m for m in desk.sink.messages if m.subject.startswith("Re: Accepted")]


async def test_a_decline_leads_to_a_new_proposal_with_the_same_uid(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await claimed(desk, http)
    first = await session_doc(desk)
    desk.send(reply_mail(JORDAN, "Jordan Lee", first["uid"], 0, "DECLINED"))
    moved = await desk.mail_to(JORDAN, "New time:")
    second = await session_doc(desk, sequence=1)
    assert second["uid"] == first["uid"] and second["sequence"] == 1
    assert from_iso(second["start"]) > from_iso(first["start"])
    _, ics = calendar_of(moved)
    [event] = read_with_icaljs(ics)["events"]
    assert event["uid"] == first["uid"] and event["sequence"] == 1
    assert event["occurrences"][0]["start"] == from_iso(second["start"]).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    await desk.mail_to(ADA, "New time:")


async def test_stale_or_foreign_answers_change_nothing(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await claimed(desk, http)
    first = await session_doc(desk)
    desk.send(reply_mail(JORDAN, "Jordan Lee", first["uid"], 0, "DECLINED"))
    await session_doc(desk, sequence=1)
    # An old answer to sequence 0 arrives late; someone else answers for Ada.
    desk.send(reply_mail(ADA, "Ada Lovelace", first["uid"], 0, "DECLINED"))
    forged = reply_mail(ADA, "Ada Lovelace", first["uid"], 1, "DECLINED").replace(
        b"From: Ada Lovelace <ada@example.com>", b"From: Mallory <mallory@example.com>"
    )
    desk.send(forged)
    await desk.processed(4)
    async with desk.store() as store:
        session = store.session(first["uid"])
        assert session is not None and session["sequence"] == 1
        assert session["answers"][ADA] == "NEEDS-ACTION"
        events = [e["event"] for e in store.audit_log()]
        assert "calendar answer stale" in events and "calendar answer refused" in events


async def test_counter_inside_the_mentors_week_is_accepted_else_declined(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await claimed(desk, http)
    first = await session_doc(desk)
    start = from_iso(first["start"])
    # Thunderbird proposes 19:30 Berlin the same day: inside Ada's Tue 18–20 window.
    fits = start.astimezone(BERLIN).replace(hour=19, minute=30).astimezone(UTC)
    desk.send(
        reply_mail(
            JORDAN, "Jordan Lee", first["uid"], 0, "NEEDS-ACTION", method="COUNTER", proposed=fits
        )
    )
    second = await session_doc(desk, sequence=1)
    assert from_iso(second["start"]) == fits
    # A counter at 03:00 Berlin does not fit: DECLINECOUNTER, and the time stands.
    night = fits.astimezone(BERLIN).replace(hour=3, minute=0).astimezone(UTC)
    desk.send(
        reply_mail(
            JORDAN, "Jordan Lee", first["uid"], 1, "NEEDS-ACTION", method="COUNTER", proposed=night
        )
    )
    declined = await desk.mail_to(JORDAN, "That time does not work")
    method, ics = calendar_of(declined)
    assert method == "DECLINECOUNTER"
    assert read_with_icaljs(ics)["method"] == "DECLINECOUNTER"
    async with desk.store() as store:
        assert store.session(first["uid"])["start"] == second["start"]  # type: ignore[index]


async def test_reschedule_by_email_and_cancel_by_link(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await claimed(desk, http)
    invite = await desk.mail_to(ADA, "Mentoring session with")
    first = await session_doc(desk)
    desk.send(
        mail(
            "Ada Lovelace <ada@example.com>",
            f"Re: {invite.subject}",
            "Sorry, I need to reschedule.\n",
            in_reply_to=invite.message["Message-ID"],
        )
    )
    moved = await session_doc(desk, sequence=1)
    assert moved["start"] != first["start"]

    [cancel_url] = urls(invite, "session-cancel")
    async with http.get(cancel_url) as response:
        assert "Cancel your session with Jordan Lee?" in await response.text()
    async with desk.store() as store:
        assert store.session(first["uid"])["status"] == "proposed"  # type: ignore[index]
    async with http.post(cancel_url) as response:
        assert response.status == 200
        assert "The session is cancelled." in await response.text()
    cancelled = await desk.mail_to(JORDAN, "Cancelled:")
    method, ics = calendar_of(cancelled)
    assert method == "CANCEL"
    for read in (read_with_icaljs(ics), read_with_vobject(ics)):
        assert read["method"] == "CANCEL"
        [event] = read["events"]
        assert event["status"] == "CANCELLED" and event["sequence"] == 2
        assert event["uid"] == first["uid"]


async def test_no_common_time_lets_the_mentor_pick(desk: Desk, http: aiohttp.ClientSession) -> None:
    # Ada is only free on Saturday mornings; Jordan on Tuesdays.
    seed(desk, [mentor(ADA, "Ada Lovelace", ["python"], availability=[[5, 540, 600]])])
    await desk.start()
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    invite = await desk.mail_to(ADA, "would like help")
    async with press(http, links(invite, "claim")[0]) as response:
        claimed_page = await response.text()
    # The claim page leads straight to picking a time, and so does an email.
    [page_link] = re.findall(r'href="(http://[^"]+/schedule/[^"]+)"', claimed_page)
    ask = await desk.mail_to(ADA, "Pick a time")
    [pick_url] = urls(ask, "schedule")
    assert page_link.rsplit("/", 1)[0] == pick_url.rsplit("/", 1)[0]
    async with http.get(pick_url) as response:
        page = await response.text()
    assert "Pick a time to meet Jordan" in page
    values = re.findall(r'name="slot" value="([^"]+)"', page)
    assert values
    choice = from_iso(values[0])
    assert choice.astimezone(ZoneInfo("America/New_York")).weekday() == 1  # his Tuesday
    async with http.post(pick_url, data={"slot": values[0]}) as response:
        assert response.status == 200
        assert "we sent you both the invitation" in await response.text()
    session = await session_doc(desk)
    assert from_iso(session["start"]) == choice
    await desk.mail_to(JORDAN, "Mentoring session with")


async def test_reminders_go_out_once_before_the_session(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    # The first possible slot is at most 8 days away: a 9-day reminder is due now.
    desk.configure(sessions={"reminder_before": "9d"})
    await claimed(desk, http)
    session = await session_doc(desk)
    daemon = desk.daemon
    assert daemon is not None and daemon.coordinator is not None
    sessions = daemon.coordinator.sessions
    now = datetime.now(UTC)
    assert from_iso(session["start"]) - timedelta(days=9) <= now
    sent = [await daemon.writer.call(sessions.remind, now) for _ in range(2)]
    assert sent == [1, 0]
    daemon.sender.poke()  # type: ignore[union-attr]
    reminder = await desk.mail_to(JORDAN, "Reminder:")
    assert "ada@example.com" in text_of(reminder)
    await desk.mail_to(ADA, "Reminder:")


async def test_an_answer_wrapped_in_forwarded_mail_counts(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await claimed(desk, http)
    session = await session_doc(desk)
    inner = reply_mail(JORDAN, "Jordan Lee", session["uid"], 0, "ACCEPTED")
    outer = EmailMessage()
    outer["From"] = "Jordan Lee <jordan@example.net>"
    outer["To"] = PROGRAM
    outer["Subject"] = "Fwd: Accepted: Mentoring session"
    outer["Message-ID"] = make_msgid(domain="client.test")
    outer.set_content("Forwarding my answer.")
    outer.add_attachment(email.message_from_bytes(inner, policy=email.policy.default))
    desk.send(outer.as_bytes())
    await desk.until(
        lambda store: store.session(session["uid"])["answers"][JORDAN] == "ACCEPTED"  # type: ignore[index]
    )


async def test_a_bounce_of_our_invitation_is_a_bounce_not_an_answer(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await claimed(desk, http)
    invite = await desk.mail_to(JORDAN, "Mentoring session with")
    session = await session_doc(desk)
    # A DSN (RFC 3464) returning our whole invitation, calendar part included.
    bounce = (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        b"To: " + PROGRAM.encode() + b"\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: <bounce-invite@mx.example.net>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.net\r\n\r\n"
        b"Final-Recipient: rfc822; jordan@example.net\r\nAction: failed\r\n"
        b"Status: 5.1.1\r\n\r\n"
        b"--B\r\nContent-Type: message/rfc822\r\n\r\n" + invite.data + b"\r\n--B--\r\n"
    )
    desk.send(bounce)
    await desk.until(lambda store: store.is_bounced(JORDAN))
    async with desk.store() as store:
        current = store.session(session["uid"])
        assert current is not None
        assert current["sequence"] == 0 and current["answers"][JORDAN] == "NEEDS-ACTION"
