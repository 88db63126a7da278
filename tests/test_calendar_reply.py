"""calendar/reply.py: what real calendar clients send back, read tolerantly.

The samples under tests/samples/ical/ follow the shapes Gmail, Outlook/Exchange, Apple
Calendar, Thunderbird and older clients produce (line endings, folding, parameters,
X- properties, TZIDs), with invented people and UIDs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mentordesk.calendar.invite import Attendee, session_request
from mentordesk.calendar.reply import CalendarReply, parse_calendar
from tests.icalcheck import head

SAMPLES = Path(__file__).parent / "samples" / "ical"
SESSION_UID = "0b6f1c52-8a1e-4f3b-9d55-2f0e6a7c9b10@program.org"
SERIES_UID = "9e3b7a10-4d6c-4f1e-8b2a-1c5d7e9f0a21@program.org"
OTHER_UID = "5d2a9e40-1c7b-4b8e-a3f2-6e9d0c4b1a77@program.org"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_gmail_reply_accepted() -> None:
    assert parse_calendar(sample("gmail_reply_accepted.ics"), "REPLY") == [
        CalendarReply(
            method="REPLY",
            uid=SESSION_UID,
            sequence=0,
            recurrence_id=None,
            attendee="dana.mentee@gmail.com",
            partstat="ACCEPTED",
            proposed_start=None,
            proposed_end=None,
            organizer="mentors@program.org",
            comment=None,
        )
    ]


def test_outlook_reply_declined_with_x_props_and_windows_tzid() -> None:
    data = sample("outlook_reply_declined.ics")
    assert b"\r\n" in data and b"X-MICROSOFT-CDO-" in data
    [reply] = parse_calendar(data)
    assert reply.method == "REPLY"
    assert reply.uid == SERIES_UID
    assert reply.sequence == 1
    assert reply.attendee == "jonas.berger@example.de"
    assert reply.partstat == "DECLINED"
    # 00:00 "W. Europe Standard Time" (CET, UTC+1) on 2026-03-11.
    assert reply.recurrence_id == utc(2026, 3, 10, 23)
    assert reply.comment == "Leider passt es mir an dem Tag nicht. Geht auch Donnerstag?"
    assert reply.proposed_start is None and reply.proposed_end is None


def test_apple_reply_tentative_with_lf_only_lines() -> None:
    data = sample("apple_reply_tentative.ics")
    assert b"\r" not in data
    [reply] = parse_calendar(data, "REPLY")
    assert (reply.method, reply.uid, reply.sequence) == ("REPLY", OTHER_UID, 2)
    assert (reply.attendee, reply.partstat) == ("sam.lee@icloud.com", "TENTATIVE")
    assert reply.organizer == "mentors@program.org"  # folded in the middle of the address


def test_thunderbird_counter_proposes_a_new_time() -> None:
    replies = parse_calendar(sample("thunderbird_counter.ics"), "COUNTER")
    assert [r.attendee for r in replies] == ["alex@example.org", "jonas.berger@example.de"]
    for reply in replies:
        assert reply.method == "COUNTER"
        assert reply.uid == SESSION_UID
        assert reply.sequence == 1
        # 19:00-19:30 Europe/Berlin (CET) on 2026-03-12.
        assert reply.proposed_start == utc(2026, 3, 12, 18)
        assert reply.proposed_end == utc(2026, 3, 12, 18, 30)
        assert reply.comment is not None and "Thursday" in reply.comment
    assert replies[1].partstat == "TENTATIVE"


def test_reply_without_mailto() -> None:
    [reply] = parse_calendar(sample("reply_without_mailto.ics"))
    assert reply.attendee == "priya.shah@example.com"
    assert reply.organizer == "mentors@program.org"
    assert reply.partstat == "ACCEPTED"


def test_reply_with_upper_case_mailto() -> None:
    [reply] = parse_calendar(sample("reply_uppercase_mailto.ics"))
    assert reply.attendee == "priya.shah@example.com"
    assert reply.organizer == "mentors@program.org"
    assert (reply.method, reply.partstat) == ("REPLY", "ACCEPTED")


def test_reply_without_method_is_inferred() -> None:
    data = sample("reply_without_method.ics")
    assert b"METHOD" not in data
    [reply] = parse_calendar(data)
    assert (reply.method, reply.partstat) == ("REPLY", "DECLINED")
    assert reply.attendee == "dana.mentee@example.net"
    # The MIME type's method= parameter wins over the guess.
    [told] = parse_calendar(data, "reply")
    assert told.method == "REPLY"
    [odd] = parse_calendar(data, "COUNTER")
    assert odd.method == "COUNTER" and odd.proposed_start == utc(2026, 3, 10, 23)


def test_body_method_wins_over_the_mime_parameter() -> None:
    [reply] = parse_calendar(sample("gmail_reply_accepted.ics"), "REQUEST")
    assert reply.method == "REPLY"


def test_multiple_vevents_series_and_one_exception() -> None:
    master, exception = parse_calendar(sample("gmail_reply_series_with_exception.ics"))
    assert master.uid == exception.uid == SERIES_UID
    assert (master.recurrence_id, master.partstat) == (None, "ACCEPTED")
    # RECURRENCE-ID 18:00 America/New_York (EDT) with no VTIMEZONE in the object.
    assert exception.recurrence_id == utc(2026, 3, 10, 22)
    assert (exception.partstat, exception.comment) == ("DECLINED", "Travelling that week.")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   \r\n",
        b"hello world",
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n",  # cut short
        b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",  # nothing in it
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VCALENDAR\r\n",  # mismatched
        b"\xff\xfe\x00B\x00E\x00G\x00I\x00N",  # UTF-16 noise
        "ümlaut garbage ✓".encode(),
    ],
)
def test_garbage_gives_nothing(data: bytes) -> None:
    assert parse_calendar(data) == []


def test_garbage_sample_gives_nothing() -> None:
    assert parse_calendar(sample("garbage.ics"), "REPLY") == []


def test_vevent_without_uid_is_skipped_but_others_are_kept() -> None:
    data = (
        b"BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\n"
        b"BEGIN:VEVENT\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:a@example.org\r\nEND:VEVENT\r\n"
        b"BEGIN:VEVENT\r\nUID:x@y\r\nSEQUENCE:not-a-number\r\n"
        b"ATTENDEE;PARTSTAT=accepted:mailto:b@example.org\r\nEND:VEVENT\r\n"
        b"END:VCALENDAR\r\n"
    )
    [reply] = parse_calendar(data)
    assert (reply.uid, reply.attendee, reply.sequence, reply.partstat) == (
        "x@y",
        "b@example.org",
        0,
        "ACCEPTED",
    )


def test_vevent_without_attendee_gives_one_record() -> None:
    data = (
        b"BEGIN:VCALENDAR\r\nMETHOD:REFRESH\r\nBEGIN:VEVENT\r\nUID:x@y\r\n"
        b"END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    [reply] = parse_calendar(data)
    assert (reply.method, reply.attendee, reply.partstat) == ("REFRESH", "", None)


def test_cancelled_without_method_is_a_cancel() -> None:
    data = (
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x@y\r\nSTATUS:CANCELLED\r\n"
        b"ATTENDEE:mailto:a@example.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    [reply] = parse_calendar(data)
    assert reply.method == "CANCEL"


def test_our_own_request_reads_back() -> None:
    start = utc(2026, 3, 10, 23)
    ics = session_request(
        head(
            uid="u@program.org",
            sequence=2,
            summary="s",
            organizer="mentors@program.org",
            organizer_name="P",
            attendees=[Attendee("Alex@Example.org", "Alex")],
            now=utc(2026, 3, 5),
        ),
        start,
        timedelta(minutes=30),
        description="",
        location="",
    )
    [reply] = parse_calendar(ics)
    assert (reply.method, reply.uid, reply.sequence) == ("REQUEST", "u@program.org", 2)
    assert (reply.attendee, reply.partstat) == ("alex@example.org", "NEEDS-ACTION")
    assert reply.proposed_start is None


def test_damaged_samples_never_raise() -> None:
    # Every sample cut at many places, and with bytes flipped, reads or gives [].
    for path in sorted(SAMPLES.glob("*.ics")):
        data = path.read_bytes()
        for cut in range(0, len(data), 23):
            assert isinstance(parse_calendar(data[:cut]), list)
            flipped = data[:cut] + bytes([data[cut] ^ 0x5A]) + data[cut + 1 :]
            assert isinstance(parse_calendar(flipped), list)
