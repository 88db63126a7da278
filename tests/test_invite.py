"""calendar/invite.py: every invitation is read back by ical.js AND vobject.

The times each independent parser reads are compared with the times that were meant,
written out in UTC (New York: EST UTC-5, EDT UTC-4 from 2026-03-08 to 2026-11-01;
Berlin: CET UTC+1, CEST UTC+2 from 2026-03-29 to 2026-10-25).
"""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage, MIMEPart
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mentordesk.calendar.invite import (
    Attendee,
    WeeklyTime,
    calendar_mime_parts,
    new_uid,
    occurrence_cancel,
    occurrence_move,
    series_request,
    session_cancel,
    session_request,
    vtimezone,
)
from tests.icalcheck import head, read_with_icaljs, read_with_vobject

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 5, 10, 15, 42, tzinfo=UTC)
UID = "2f7c9a1e-5b3d-4e8f-a6c2-9d1b0e7f3a54@program.org"
PROGRAM = "mentors@program.org"
PEOPLE = [Attendee("alex@example.org", "Alex Mentor"), Attendee("dana@example.net", "Dana Müller")]
HALF_HOUR = timedelta(minutes=30)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_both(ics: bytes, occurrences: int = 10) -> list[dict[str, Any]]:
    """What ical.js and vobject read; the two must agree on everything they report."""
    icaljs = read_with_icaljs(ics, occurrences)
    vobj = read_with_vobject(ics, occurrences)
    assert icaljs == vobj, "ical.js and vobject read this object differently"
    return [icaljs, vobj]


def starts(parsed: dict[str, Any], index: int = 0) -> list[str]:
    return [o["start"] for o in parsed["events"][index]["occurrences"]]


def single(**overrides: Any) -> bytes:
    args: dict[str, Any] = {
        "uid": UID,
        "sequence": 0,
        "start": datetime(2026, 3, 10, 23, tzinfo=UTC),
        "length": HALF_HOUR,
        "summary": "Mentoring session: Alex & Dana",
        "description": "Your first session.\nReply to change the time.",
        "location": "https://meet.example.org/md-42",
        "organizer": PROGRAM,
        "organizer_name": "Code Mentors",
        "attendees": PEOPLE,
        "now": NOW,
    }
    args.update(overrides)
    start, length = args.pop("start"), args.pop("length")
    rest = {k: args.pop(k) for k in ("description", "location", "status") if k in args}
    return session_request(head(**args), start, length, **rest)


def series(first: datetime, **overrides: Any) -> bytes:
    args: dict[str, Any] = {
        "uid": UID,
        "sequence": 0,
        "first_start_local": first,
        "length": timedelta(hours=1),
        "weekly_until": None,
        "summary": "Office hours",
        "description": "Drop in.",
        "location": "https://meet.example.org/office-hours",
        "organizer": PROGRAM,
        "organizer_name": "Code Mentors",
        "attendees": PEOPLE,
        "now": NOW,
    }
    args.update(overrides)
    when = WeeklyTime(args.pop("first_start_local"), args.pop("length"), args.pop("weekly_until"))
    rest = {k: args.pop(k) for k in ("description", "location", "exdates") if k in args}
    return series_request(head(**args), when, **rest)


def body_lines(ics: bytes) -> list[bytes]:
    assert ics.endswith(b"\r\n")
    return ics[:-2].split(b"\r\n")


def unfolded(ics: bytes) -> list[str]:
    return ics.decode().replace("\r\n ", "").split("\r\n")


# --- structure -----------------------------------------------------------------------


def test_single_session_structure() -> None:
    ics = single()
    lines = body_lines(ics)
    assert all(b"\n" not in line and b"\r" not in line for line in lines)  # CRLF only
    assert all(len(line) <= 75 for line in lines)  # RFC 5545 §3.1 folding
    text = unfolded(ics)
    assert text[0] == "BEGIN:VCALENDAR"
    header = text[: text.index("BEGIN:VEVENT")]
    assert "VERSION:2.0" in header
    assert any(line.startswith("PRODID:") for line in header)
    assert "METHOD:REQUEST" in header
    assert not any(line.startswith("UID") for line in header)  # no calendar-level UID
    assert f"UID:{UID}" in text
    assert "DTSTAMP:20260305T101542Z" in text
    assert "SEQUENCE:0" in text
    assert "STATUS:CONFIRMED" in text
    assert "DTSTART:20260310T230000Z" in text
    assert "DTEND:20260310T233000Z" in text
    assert 'ORGANIZER;CN="Code Mentors":mailto:mentors@program.org' in text
    attendees = [line for line in text if line.startswith("ATTENDEE")]
    assert len(attendees) == 2
    for line in attendees:
        params = dict(p.split("=", 1) for p in line.split(":", 1)[0].split(";")[1:])
        assert params["ROLE"] == "REQ-PARTICIPANT"
        assert params["PARTSTAT"] == "NEEDS-ACTION"
        assert params["RSVP"] == "TRUE"
        assert params["CUTYPE"] == "INDIVIDUAL"
        assert params["CN"]
    assert "VTIMEZONE" not in ics.decode()


def test_single_session_read_by_both_parsers() -> None:
    for parsed in read_both(single(sequence=3)):
        assert parsed["method"] == "REQUEST"
        [event] = parsed["events"]
        assert event["uid"] == UID
        assert event["sequence"] == 3
        assert event["status"] == "CONFIRMED"
        assert event["summary"] == "Mentoring session: Alex & Dana"
        assert event["organizer"] == {"value": "mailto:mentors@program.org", "cn": "Code Mentors"}
        assert event["occurrences"] == [
            {"start": "2026-03-10T23:00:00Z", "end": "2026-03-10T23:30:00Z"}
        ]
        assert event["attendees"] == [
            {
                "value": "mailto:alex@example.org",
                "cn": "Alex Mentor",
                "partstat": "NEEDS-ACTION",
                "rsvp": "TRUE",
                "role": "REQ-PARTICIPANT",
                "cutype": "INDIVIDUAL",
            },
            {
                "value": "mailto:dana@example.net",
                "cn": "Dana Müller",
                "partstat": "NEEDS-ACTION",
                "rsvp": "TRUE",
                "role": "REQ-PARTICIPANT",
                "cutype": "INDIVIDUAL",
            },
        ]


def test_start_in_another_zone_is_written_in_utc() -> None:
    ics = single(start=datetime(2026, 3, 10, 19, tzinfo=NY))  # EDT
    assert "DTSTART:20260310T230000Z" in unfolded(ics)
    for parsed in read_both(ics):
        assert starts(parsed) == ["2026-03-10T23:00:00Z"]


def test_organizer_is_the_plain_program_address() -> None:
    ics = single(organizer="mentors+md-42@program.org")
    assert 'ORGANIZER;CN="Code Mentors":mailto:mentors@program.org' in unfolded(ics)


def test_awkward_text_and_names_survive() -> None:
    ics = single(
        summary='Session; with "quotes", commas\\and ✓ emoji 🎉',
        description="Line one\r\nLine two\x00\x07 " + "long é text " * 30,
        attendees=[Attendee("o.brien@example.ie", 'Seán "Shay" O\'Brien,\r\nJr.')],
    )
    assert all(len(line) <= 75 for line in body_lines(ics))
    for parsed in read_both(ics):
        [event] = parsed["events"]
        assert event["summary"] == 'Session; with "quotes", commas\\and ✓ emoji 🎉'
        assert event["attendees"][0]["cn"] == "Seán 'Shay' O'Brien, Jr."


def test_session_cancel() -> None:
    ics = session_cancel(
        head(
            uid=UID,
            sequence=2,
            summary="Mentoring session",
            organizer=PROGRAM,
            organizer_name="Code Mentors",
            attendees=PEOPLE,
            now=NOW,
        ),
        datetime(2026, 3, 10, 23, tzinfo=UTC),
        HALF_HOUR,
    )
    text = unfolded(ics)
    assert "METHOD:CANCEL" in text
    assert "STATUS:CANCELLED" in text
    for parsed in read_both(ics):
        assert parsed["method"] == "CANCEL"
        [event] = parsed["events"]
        assert (event["uid"], event["sequence"], event["status"]) == (UID, 2, "CANCELLED")
        assert starts(parsed) == ["2026-03-10T23:00:00Z"]
        assert len(event["attendees"]) == 2


def test_reschedule_is_the_same_uid_with_a_higher_sequence() -> None:
    first = read_with_icaljs(single(sequence=0))["events"][0]
    moved = read_with_icaljs(single(sequence=1, start=datetime(2026, 3, 12, 17, tzinfo=UTC)))
    assert moved["events"][0]["uid"] == first["uid"]
    assert moved["events"][0]["sequence"] == 1
    assert starts(moved) == ["2026-03-12T17:00:00Z"]


def test_tentative_status() -> None:
    assert "STATUS:TENTATIVE" in unfolded(single(status="tentative"))


# --- weekly series across DST changes -------------------------------------------------


def weekly_utc(first_local: datetime, weeks: int) -> list[str]:
    """The intended occurrences: the same wall-clock time every week, in UTC."""
    return [iso(first_local + timedelta(weeks=k)) for k in range(weeks)]


@pytest.mark.parametrize(
    ("first", "change", "before", "after"),
    [
        # 12 weeks each side of each change: (first start, change date, UTC hour before,
        # UTC hour after) for a 18:00 local series.
        pytest.param(
            datetime(2025, 12, 16, 18, tzinfo=NY),
            datetime(2026, 3, 8, tzinfo=UTC),
            23,
            22,
            id="new-york-march",
        ),
        pytest.param(
            datetime(2026, 8, 11, 18, tzinfo=NY),
            datetime(2026, 11, 1, tzinfo=UTC),
            22,
            23,
            id="new-york-november",
        ),
        pytest.param(
            datetime(2026, 1, 6, 18, tzinfo=BERLIN),
            datetime(2026, 3, 29, tzinfo=UTC),
            17,
            16,
            id="berlin-march",
        ),
        pytest.param(
            datetime(2026, 8, 4, 18, tzinfo=BERLIN),
            datetime(2026, 10, 25, tzinfo=UTC),
            16,
            17,
            id="berlin-october",
        ),
    ],
)
def test_weekly_series_keeps_its_local_time_across_dst(
    first: datetime, change: datetime, before: int, after: int
) -> None:
    ics = series(first)
    text = unfolded(ics)
    assert f"DTSTART;TZID={first.tzinfo}:{first:%Y%m%dT%H%M%S}" in text
    assert "RRULE:FREQ=WEEKLY" in text
    assert "BEGIN:VTIMEZONE" in text and f"TZID:{first.tzinfo}" in text
    expected = weekly_utc(first, 24)
    for parsed in read_both(ics, 24):
        assert parsed["events"][0]["start_zone"] == str(first.tzinfo)
        got = starts(parsed)
        assert got == expected
        hours = [datetime.fromisoformat(s).hour for s in got]
        flips = [datetime.fromisoformat(s) >= change for s in got]
        assert flips.count(False) == 12 and flips.count(True) == 12
        assert hours == [after if flipped else before for flipped in flips]
        # One hour long everywhere, even across the change.
        for occurrence in parsed["events"][0]["occurrences"]:
            length = datetime.fromisoformat(occurrence["end"]) - datetime.fromisoformat(
                occurrence["start"]
            )
            assert length == timedelta(hours=1)


def test_open_ended_series_stays_right_for_years() -> None:
    first = datetime(2026, 1, 6, 18, tzinfo=NY)
    expected = weekly_utc(first, 300)  # into 2031, past the VTIMEZONE's explicit years
    for parsed in read_both(series(first), 300):
        assert starts(parsed) == expected


@pytest.mark.parametrize(
    "zone",
    [
        "Europe/London",
        "Australia/Sydney",
        "Asia/Kolkata",
        "America/Sao_Paulo",
        "UTC",
        "Pacific/Auckland",
    ],
)
def test_series_in_other_zones(zone: str) -> None:
    first = datetime(2026, 1, 7, 9, 30, tzinfo=ZoneInfo(zone))
    for parsed in read_both(series(first), 60):
        assert starts(parsed) == weekly_utc(first, 60)


def test_series_until_and_exdates() -> None:
    first = datetime(2026, 2, 24, 18, tzinfo=NY)
    skipped = [
        datetime(2026, 3, 10, 18, tzinfo=NY),
        datetime(2026, 3, 24, 22, tzinfo=UTC),
    ]  # 18:00 EDT, given in UTC
    until = datetime(2026, 4, 7, 18, tzinfo=NY)  # inclusive
    ics = series(first, weekly_until=until, exdates=skipped)
    text = unfolded(ics)
    assert "RRULE:FREQ=WEEKLY;UNTIL=20260407T220000Z" in text
    assert "EXDATE;TZID=America/New_York:20260310T180000" in text
    assert "EXDATE;TZID=America/New_York:20260324T180000" in text
    expected = [
        iso(datetime(2026, m, d, 18, tzinfo=NY))
        for m, d in [(2, 24), (3, 3), (3, 17), (3, 31), (4, 7)]
    ]
    for parsed in read_both(ics, 20):
        assert starts(parsed) == expected


# --- one occurrence ---------------------------------------------------------------------


def with_override(series_ics: bytes, override_ics: bytes) -> bytes:
    """The calendar a client holds after applying the override: both VEVENTs, one UID."""
    match = re.search(rb"BEGIN:VEVENT\r\n.*END:VEVENT\r\n", override_ics, re.DOTALL)
    assert match is not None
    return series_ics.replace(b"END:VCALENDAR\r\n", match.group(0) + b"END:VCALENDAR\r\n")


def test_occurrence_cancel_names_an_occurrence_of_the_series() -> None:
    first = datetime(2026, 2, 24, 18, tzinfo=NY)
    occurrence = datetime(2026, 3, 10, 18, tzinfo=NY)  # first week after the US change
    ics = occurrence_cancel(
        head(
            uid=UID,
            sequence=1,
            summary="Office hours",
            organizer=PROGRAM,
            organizer_name="Code Mentors",
            attendees=PEOPLE,
            now=NOW,
        ),
        occurrence,
        timedelta(hours=1),
    )
    text = unfolded(ics)
    assert "METHOD:CANCEL" in text
    assert "RECURRENCE-ID;TZID=America/New_York:20260310T180000" in text
    assert "STATUS:CANCELLED" in text
    for parsed, series_read in zip(read_both(ics), read_both(series(first), 10), strict=True):
        [event] = parsed["events"]
        assert parsed["method"] == "CANCEL"
        assert (event["uid"], event["sequence"], event["status"]) == (UID, 1, "CANCELLED")
        assert event["recurrence_id"] == "2026-03-10T22:00:00Z"
        assert event["recurrence_id"] in starts(series_read)


def test_occurrence_move_replaces_exactly_one_occurrence() -> None:
    first = datetime(2026, 2, 24, 18, tzinfo=NY)
    original = datetime(2026, 3, 10, 18, tzinfo=NY)
    moved_to = datetime(2026, 3, 11, 19, 30, tzinfo=NY)
    override = occurrence_move(
        head(
            uid=UID,
            sequence=1,
            summary="Office hours (moved)",
            organizer=PROGRAM,
            organizer_name="Code Mentors",
            attendees=PEOPLE,
            now=NOW,
        ),
        original,
        moved_to,
        timedelta(hours=1),
        description="Moved.",
        location="Room 2",
    )
    text = unfolded(override)
    assert "METHOD:REQUEST" in text
    assert "RECURRENCE-ID;TZID=America/New_York:20260310T180000" in text
    assert "DTSTART;TZID=America/New_York:20260311T193000" in text
    for parsed in read_both(override):
        [event] = parsed["events"]
        assert event["recurrence_id"] == "2026-03-10T22:00:00Z"
        assert parsed["events"][0]["occurrences"] == [
            {"start": "2026-03-11T23:30:00Z", "end": "2026-03-12T00:30:00Z"}
        ]
    expected = weekly_utc(first, 6)
    expected[2] = "2026-03-11T23:30:00Z"
    for parsed in read_both(with_override(series(first), override), 6):
        assert starts(parsed, 0) == expected
        assert parsed["events"][1]["summary"] == "Office hours (moved)"


def test_occurrence_moved_into_another_zone() -> None:
    original = datetime(2026, 3, 31, 18, tzinfo=BERLIN)
    moved_to = datetime(2026, 3, 31, 13, tzinfo=NY)  # the same day, 19:00 in Berlin
    override = occurrence_move(
        head(
            uid=UID,
            sequence=4,
            summary="Office hours",
            organizer=PROGRAM,
            organizer_name="Code Mentors",
            attendees=PEOPLE,
            now=NOW,
        ),
        original,
        moved_to,
        HALF_HOUR,
        description="",
        location="",
    )
    assert unfolded(override).count("BEGIN:VTIMEZONE") == 2
    for parsed in read_both(override):
        assert parsed["events"][0]["recurrence_id"] == "2026-03-31T16:00:00Z"
        assert starts(parsed) == ["2026-03-31T17:00:00Z"]


# --- MIME ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["REQUEST", "CANCEL"])
def test_mime_parts_carry_the_same_bytes_and_method(method: str) -> None:
    if method == "REQUEST":
        ics = single()
    else:
        ics = session_cancel(
            head(
                uid=UID,
                sequence=1,
                summary="s",
                organizer=PROGRAM,
                organizer_name="P",
                attendees=PEOPLE,
                now=NOW,
            ),
            datetime(2026, 3, 10, 23, tzinfo=UTC),
            HALF_HOUR,
        )
    inline, attachment = calendar_mime_parts(ics, method.lower())

    # Put them in a real message and read it back as a mail client would.
    message = EmailMessage()
    message["Subject"] = "Invitation"
    message.set_content("text body")
    message.add_alternative("<p>html body</p>", subtype="html")
    # typeshed types EmailMessage's parts as EmailMessage; a MIMEPart is what it holds.
    message.attach(inline)  # type: ignore[arg-type]  # alternative: text, html, calendar
    message.make_mixed()
    message.attach(attachment)  # type: ignore[arg-type]
    parsed = email.message_from_bytes(
        message.as_bytes(policy=email.policy.SMTP), policy=email.policy.default
    )
    calendar_parts = [p for p in parsed.walk() if p.get_content_type() == "text/calendar"]
    ics_parts = [p for p in parsed.walk() if p.get_content_type() == "application/ics"]
    assert len(calendar_parts) == 1 and len(ics_parts) == 1
    [calendar_part], [ics_part] = calendar_parts, ics_parts
    assert calendar_part.get_param("method") == method
    assert calendar_part.get_content_charset() == "utf-8"
    body_method = re.search(rb"^METHOD:(\w+)\r$", ics, re.MULTILINE)
    assert body_method is not None and body_method.group(1).decode() == method
    assert calendar_part.get_payload(decode=True) == ics
    assert ics_part.get_filename() == "invite.ics"
    assert ics_part.get_content_disposition() == "attachment"
    assert ics_part.get_payload(decode=True) == ics


@settings(max_examples=60, deadline=None)
@given(
    method=st.sampled_from(["REQUEST", "CANCEL", "DECLINECOUNTER", "PUBLISH"]),
    before=st.binary(max_size=200).map(lambda b: b.replace(b"METHOD", b"")),
    after=st.binary(max_size=400),
)
def test_mime_parts_are_what_set_content_makes(method: str, before: bytes, after: bytes) -> None:
    """The parts are written field by field, not through set_content: the same bytes
    (whatever the object holds, of any length), and the same reading of them."""
    ics = before + b"\r\nMETHOD:" + method.encode() + b"\r\n" + after
    inline, attachment = calendar_mime_parts(ics, method.lower())
    expected_inline, expected_attachment = MIMEPart(), MIMEPart()
    expected_inline.set_content(
        ics, "text", "calendar", cte="base64", params={"charset": "utf-8", "method": method}
    )
    expected_attachment.set_content(
        ics,
        "application",
        "ics",
        cte="base64",
        disposition="attachment",
        filename="invite.ics",
        params={"name": "invite.ics"},
    )
    for ours, theirs in ((inline, expected_inline), (attachment, expected_attachment)):
        assert ours.as_bytes(policy=email.policy.SMTP) == theirs.as_bytes(policy=email.policy.SMTP)
        assert ours.get_payload(decode=True) == ics
        assert ours.get_content_type() == theirs.get_content_type()
        assert ours.get_params() == theirs.get_params()
        assert ours.get_filename() == theirs.get_filename()


def test_mime_method_must_match_the_body() -> None:
    with pytest.raises(ValueError, match="does not match"):
        calendar_mime_parts(single(), "CANCEL")


# --- contracts ---------------------------------------------------------------------------


def test_new_uid() -> None:
    first, second = new_uid("program.org"), new_uid("program.org")
    assert first != second
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}"
        r"@program\.org",
        first,
    )


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        single(start=datetime(2026, 3, 10, 23))
    with pytest.raises(ValueError, match="aware"):
        single(now=datetime(2026, 3, 5))
    with pytest.raises(ValueError, match="STATUS"):
        single(status="MAYBE")
    with pytest.raises(ValueError, match="attendee"):
        single(attendees=[])
    with pytest.raises(ValueError, match="email address"):
        single(attendees=[Attendee("not an address", "X")])
    with pytest.raises(ValueError, match="length"):
        single(length=timedelta(0))
    with pytest.raises(ValueError, match="ZoneInfo"):
        series(datetime(2026, 1, 6, 18, tzinfo=UTC))


# --- VTIMEZONE and the harness -------------------------------------------------------------


def test_vtimezone_uses_yearly_rules_with_onsets_in_the_old_offset() -> None:
    text = vtimezone(NY, 2026, 2026).to_ical().decode().replace("\r\n ", "").split("\r\n")
    assert not any(line.startswith("RDATE") for line in text)
    # The current US rules, open-ended; the onset is local time before the change.
    spring = text.index("DTSTART:20070311T020000")
    autumn = text.index("DTSTART:20071104T020000")
    assert text[spring + 1] == "RRULE:FREQ=YEARLY;BYDAY=2SU;BYMONTH=3"
    assert text[autumn + 1] == "RRULE:FREQ=YEARLY;BYDAY=1SU;BYMONTH=11"
    # The 1987-2006 rules end with UNTIL in UTC.
    assert "RRULE:FREQ=YEARLY;UNTIL=20060402T070000Z;BYDAY=1SU;BYMONTH=4" in text


def test_missing_ical_js_is_an_error_not_a_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.icalcheck as icalcheck

    monkeypatch.setattr(icalcheck, "ICALJS", icalcheck.JS_DIR / "nowhere" / "package.json")
    with pytest.raises(icalcheck.ParserHarnessMissing, match=r"scripts/setup-tests\.sh"):
        read_with_icaljs(single())
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(icalcheck.ParserHarnessMissing, match="node is not on PATH"):
        read_with_icaljs(single())
