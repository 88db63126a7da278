"""iCalendar invitations sent by email (iMIP): RFC 5545 objects, RFC 5546 methods, RFC 6047 MIME.

Every function returns the serialised VCALENDAR as bytes (CRLF line endings, lines
folded at 75 octets — RFC 5545 §3.1 — by the ``icalendar`` library). The program is the
ORGANIZER; each mentor and mentee is an ATTENDEE who is asked to reply (RFC 5546 §3.2.2).
A reschedule is the same UID with a higher SEQUENCE (RFC 5545 §3.8.7.4); a cancellation
is METHOD:CANCEL (RFC 5546 §3.2.5); one occurrence of a series is addressed by RECURRENCE-ID
(RFC 5545 §3.8.4.4).

Single sessions carry UTC times. Weekly series carry local times with a TZID and a
VTIMEZONE built here from ``zoneinfo`` as yearly RRULE observances, because the
VTIMEZONE that ``icalendar`` generates (onsets given in the new offset, many dates per
RDATE line) is read an hour off around the changes by ical.js and vobject.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import MIMEPart
from functools import lru_cache
from zoneinfo import ZoneInfo

from icalendar import (
    Calendar,
    Event,
    Timezone,
    TimezoneDaylight,
    TimezoneStandard,
    vCalAddress,
)

from mentordesk import __version__

from .conference import add_call

__all__ = [
    "Attendee",
    "EventHead",
    "WeeklyTime",
    "calendar_mime_parts",
    "new_uid",
    "occurrence_cancel",
    "occurrence_move",
    "series_cancel",
    "series_request",
    "session_cancel",
    "session_declinecounter",
    "session_request",
    "vtimezone",
]

PRODID = f"-//mentordesk//mentordesk {__version__}//EN"
_EVENT_STATUSES = frozenset({"TENTATIVE", "CONFIRMED", "CANCELLED"})  # RFC 5545 §3.8.1.11
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # not TSAFE-CHAR, RFC 5545 §3.3.11
_METHOD_LINE = re.compile(rb"^METHOD:([A-Za-z-]+)\r?$", re.MULTILINE)


@dataclass(frozen=True)
class Attendee:
    """A person invited to a session: their address and display name."""

    email: str
    name: str


@dataclass(frozen=True)
class EventHead:
    """What every iTIP message about one event repeats (RFC 5546 §3.2): which event and
    which version of it, who organises it, who is asked, and when this was written."""

    uid: str
    sequence: int
    summary: str
    organizer: Attendee
    attendees: Sequence[Attendee]
    now: datetime  # DTSTAMP


@dataclass(frozen=True)
class WeeklyTime:
    """When a weekly series happens: the first start at a local wall-clock time (with its
    ``ZoneInfo``), each occurrence's length, and the last possible start (or None)."""

    first_start_local: datetime
    length: timedelta
    weekly_until: datetime | None
    interval: int = 1  # every this many weeks


# --- public builders -----------------------------------------------------------------


def session_request(
    head: EventHead,
    start: datetime,
    length: timedelta,
    *,
    description: str,
    location: str,
    status: str = "CONFIRMED",
    call_url: str = "",
) -> bytes:
    """METHOD:REQUEST for one session, DTSTART/DTEND in UTC (RFC 5546 §3.2.2).

    Send it again with a higher ``sequence`` to reschedule (same ``uid``). A
    ``call_url`` goes into URL and CONFERENCE too (``calendar/conference.py``).
    """
    start_utc = _utc(start, "start")
    event = _event(head, status)
    event.add("dtstart", start_utc)
    event.add("dtend", start_utc + _positive(length))
    _describe(event, description, location)
    if call_url:
        add_call(event, call_url)
    return _serialise("REQUEST", [event], zones=())


def session_cancel(head: EventHead, start: datetime, length: timedelta) -> bytes:
    """METHOD:CANCEL, STATUS:CANCELLED for one session (RFC 5546 §3.2.5).

    ``sequence`` must be higher than that of the last REQUEST sent for ``uid``.
    """
    start_utc = _utc(start, "start")
    event = _event(head, "CANCELLED")
    event.add("dtstart", start_utc)
    event.add("dtend", start_utc + _positive(length))
    return _serialise("CANCEL", [event], zones=())


def session_declinecounter(
    head: EventHead, start: datetime, length: timedelta, *, comment: str = ""
) -> bytes:
    """METHOD:DECLINECOUNTER to the attendee whose COUNTER cannot be accepted
    (RFC 5546 §3.2.8): the event as it stands, at its current ``sequence``;
    ``head.attendees`` is that one attendee."""
    start_utc = _utc(start, "start")
    event = _event(head, "CONFIRMED")
    event.add("dtstart", start_utc)
    event.add("dtend", start_utc + _positive(length))
    if comment:
        event.add("comment", _text(comment))
    return _serialise("DECLINECOUNTER", [event], zones=())


def series_request(
    head: EventHead,
    when: WeeklyTime,
    *,
    description: str,
    location: str,
    exdates: Sequence[datetime] = (),
) -> bytes:
    """METHOD:REQUEST for a weekly series at a fixed local wall-clock time.

    ``first_start_local`` must carry a ``ZoneInfo``: DTSTART is written with its TZID
    and a VTIMEZONE, so every occurrence keeps its local time across DST changes
    (RFC 5545 §3.3.10). ``weekly_until`` (aware) is the last possible start, inclusive,
    or None for an open-ended series. ``exdates`` are starts of occurrences left out.

    Avoid local times that a DST change skips or repeats (02:00-03:00 on change nights
    in most zones): clients disagree there. RFC 5545 §3.3.5 reads a repeated time as its
    first occurrence and a skipped one with the offset from before the gap; ical.js
    (Thunderbird) takes the second occurrence, and ical.js and vobject both read a
    skipped time with the offset from after the gap.
    """
    first_start_local, weekly_until = when.first_start_local, when.weekly_until
    zone = _zone_of(first_start_local, "first_start_local")
    event = _event(head, "CONFIRMED")
    event.add("dtstart", first_start_local)
    event.add("dtend", _local_end(first_start_local, when.length))
    rule: dict[str, object] = {"FREQ": "WEEKLY"}
    if when.interval > 1:
        rule["INTERVAL"] = when.interval
    if weekly_until is not None:
        # With a TZID on DTSTART, UNTIL must be in UTC (RFC 5545 §3.3.10).
        rule["UNTIL"] = _utc(weekly_until, "weekly_until")
    event.add("rrule", rule)
    # One EXDATE per date, in DTSTART's zone and value type (RFC 5545 §3.8.5.1).
    for excluded in exdates:
        event.add("exdate", _utc(excluded, "exdates").astimezone(zone))
    _describe(event, description, location)
    last = weekly_until if weekly_until is not None else first_start_local
    return _serialise("REQUEST", [event], zones=[(zone, first_start_local, last)])


def series_cancel(head: EventHead, when: WeeklyTime) -> bytes:
    """METHOD:CANCEL of a whole weekly series (RFC 5546 §3.2.5), STATUS:CANCELLED.

    Sent to everyone, it ends the series; sent to one attendee (``attendees`` = that
    person), it takes that person off it. The VEVENT repeats the series' DTSTART, TZID,
    VTIMEZONE and RRULE (as ``series_request`` wrote them) without RECURRENCE-ID, so every
    occurrence goes. To take one attendee off, ``sequence`` may stay that of the last
    REQUEST: the later DTSTAMP makes the CANCEL the newer message (RFC 5546 §2.1.5).
    """
    first_start_local, weekly_until = when.first_start_local, when.weekly_until
    zone = _zone_of(first_start_local, "first_start_local")
    event = _event(head, "CANCELLED")
    event.add("dtstart", first_start_local)
    event.add("dtend", _local_end(first_start_local, when.length))
    rule: dict[str, object] = {"FREQ": "WEEKLY"}
    if when.interval > 1:
        rule["INTERVAL"] = when.interval
    if weekly_until is not None:
        rule["UNTIL"] = _utc(weekly_until, "weekly_until")  # RFC 5545 §3.3.10
    event.add("rrule", rule)
    last = weekly_until if weekly_until is not None else first_start_local
    return _serialise("CANCEL", [event], zones=[(zone, first_start_local, last)])


def occurrence_cancel(head: EventHead, recurrence_id_local: datetime, length: timedelta) -> bytes:
    """METHOD:CANCEL of the one occurrence of series ``uid`` that starts at ``recurrence_id_local``.

    ``recurrence_id_local`` is the occurrence's original start, with the series' zone,
    so that RECURRENCE-ID matches the series' DTSTART form (RFC 5545 §3.8.4.4).
    """
    zone = _zone_of(recurrence_id_local, "recurrence_id_local")
    event = _event(head, "CANCELLED")
    event.add("recurrence-id", recurrence_id_local)
    event.add("dtstart", recurrence_id_local)
    event.add("dtend", _local_end(recurrence_id_local, length))
    return _serialise("CANCEL", [event], zones=[(zone, recurrence_id_local, recurrence_id_local)])


def occurrence_move(
    head: EventHead,
    recurrence_id_local: datetime,
    new_start_local: datetime,
    length: timedelta,
    *,
    description: str,
    location: str,
    status: str = "CONFIRMED",
) -> bytes:
    """METHOD:REQUEST overriding one occurrence of series ``uid`` (RFC 5546 §3.2.2).

    The occurrence originally at ``recurrence_id_local`` (the series' zone, matching its
    DTSTART form, RFC 5545 §3.8.4.4) moves to ``new_start_local`` (any ``ZoneInfo``);
    the rest of the series is unchanged. Only the overriding VEVENT is sent.
    """
    old_zone = _zone_of(recurrence_id_local, "recurrence_id_local")
    new_zone = _zone_of(new_start_local, "new_start_local")  # may differ from old_zone
    event = _event(head, status)
    event.add("recurrence-id", recurrence_id_local)
    event.add("dtstart", new_start_local)
    event.add("dtend", _local_end(new_start_local, length))
    _describe(event, description, location)
    return _serialise(
        "REQUEST",
        [event],
        zones=[
            (old_zone, recurrence_id_local, recurrence_id_local),
            (new_zone, new_start_local, new_start_local),
        ],
    )


def new_uid(domain: str) -> str:
    """A fresh globally unique UID, ``<uuid4>@<domain>`` (RFC 5545 §3.8.4.7)."""
    return f"{uuid.uuid4()}@{domain}"


def calendar_mime_parts(ics: bytes, method: str) -> tuple[MIMEPart, MIMEPart]:
    """The two MIME parts that carry ``ics`` in an invitation email (RFC 6047 §2.4).

    The first, ``text/calendar; charset=utf-8; method=METHOD``, goes inside the
    multipart/alternative next to the text and HTML bodies, where calendar clients look
    for it; the second is the same bytes as an ``invite.ics`` attachment
    (``application/ics``) for clients that only offer attachments. Raises ValueError when
    ``method`` differs from the METHOD inside ``ics``: RFC 6047 §2.4 requires them equal.
    """
    method = method.upper()
    found = _METHOD_LINE.search(ics)
    if found is None or found.group(1).decode("ascii").upper() != method:
        inside = found.group(1).decode("ascii") if found else "none"
        raise ValueError(f"method {method!r} does not match the METHOD in the object ({inside})")

    # Base64 keeps the CRLF line endings and folding intact through any relay. The
    # fields are what set_content writes, stored as they are: set_content parses each one
    # through the header registry, a sixth of a claim's work on the writer. The body is
    # in base64 lines of 76 characters, as set_content writes it.
    body = base64.encodebytes(ics).decode("ascii")
    inline = _part(f'text/calendar; charset="utf-8"; method="{method}"', None, body)
    attachment = _part(
        'application/ics; name="invite.ics"', 'attachment; filename="invite.ics"', body
    )
    return inline, attachment


def _part(content_type: str, disposition: str | None, base64_body: str) -> MIMEPart:
    """A base64 MIME part with these fields (plain ASCII, short: nothing to fold), in
    set_content's order."""
    part = MIMEPart()
    part.set_raw("Content-Transfer-Encoding", "base64")
    if disposition is not None:
        part.set_raw("Content-Disposition", disposition)
    part.set_raw("Content-Type", content_type)
    part.set_payload(base64_body)
    return part


# --- the event -----------------------------------------------------------------------


def _event(head: EventHead, status: str) -> Event:
    """A VEVENT with the properties every iTIP method here needs (RFC 5546 §3.2)."""
    uid, sequence, now, summary = head.uid, head.sequence, head.now, head.summary
    organizer, organizer_name = head.organizer.email, head.organizer.name
    attendees = head.attendees
    if not uid or _CONTROL.search(uid) or "\n" in uid:
        raise ValueError(f"bad UID {uid!r}")
    if sequence < 0:
        raise ValueError(f"SEQUENCE must not be negative, got {sequence}")
    status = status.upper()
    if status not in _EVENT_STATUSES:
        raise ValueError(f"bad VEVENT STATUS {status!r}: want one of {sorted(_EVENT_STATUSES)}")
    if not attendees:
        raise ValueError("an invitation needs at least one attendee")

    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", _utc(now, "now").replace(microsecond=0))
    event.add("sequence", sequence)
    event.add("status", status)
    event.add("summary", _text(summary))
    # Replies go to the ORGANIZER, and clients compare it with the From address:
    # the plain program address, never a +tag variant.
    event.add("organizer", _address(_untagged(organizer), organizer_name))
    for person in attendees:
        attendee = _address(person.email, person.name)
        attendee.params["CUTYPE"] = "INDIVIDUAL"
        attendee.params["ROLE"] = "REQ-PARTICIPANT"
        attendee.params["PARTSTAT"] = "NEEDS-ACTION"
        attendee.params["RSVP"] = "TRUE"
        event.add("attendee", attendee)
    return event


def _describe(event: Event, description: str, location: str) -> None:
    if description:
        event.add("description", _text(description))
    if location:
        event.add("location", _text(location))


def _address(email: str, name: str) -> vCalAddress:
    email = email.strip()
    if email.lower().startswith("mailto:"):
        email = email[len("mailto:") :]
    if "@" not in email or any(c.isspace() or c in '<>"' for c in email) or _CONTROL.search(email):
        raise ValueError(f"bad email address {email!r}")
    address = vCalAddress(f"mailto:{email}")
    # Parameter values cannot hold control characters or DQUOTE (RFC 5545 §3.1):
    # flatten them rather than rely on every reader decoding RFC 6868's ^' escapes.
    cn = " ".join(_CONTROL.sub(" ", name).replace('"', "'").split())
    if cn:
        address.params["CN"] = cn
    return address


def _untagged(email: str) -> str:
    local, at, domain = email.strip().rpartition("@")
    return f"{local.split('+', 1)[0]}{at}{domain}" if at else email


def _text(value: str) -> str:
    """TEXT without control characters; line breaks are kept (escaped by icalendar)."""
    return _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))


def _utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime, got {value!r}")
    return value.astimezone(UTC)


def _positive(length: timedelta) -> timedelta:
    if length <= timedelta(0):
        raise ValueError(f"length must be positive, got {length}")
    return length


def _zone_of(value: datetime, what: str) -> ZoneInfo:
    if not isinstance(value.tzinfo, ZoneInfo):
        raise ValueError(f"{what} must carry a zoneinfo.ZoneInfo timezone, got {value!r}")
    return value.tzinfo


def _local_end(start: datetime, length: timedelta) -> datetime:
    """``start + length`` in exact elapsed time, expressed in ``start``'s zone."""
    assert start.tzinfo is not None
    return (_utc(start, "start") + _positive(length)).astimezone(start.tzinfo)


def _serialise(
    method: str,
    events: Iterable[Event],
    zones: Iterable[tuple[ZoneInfo, datetime, datetime]],
) -> bytes:
    """A VCALENDAR with METHOD (RFC 5546 §1.4), PRODID and VERSION, no calendar-level UID.

    ``zones`` lists (zone, first, last) for every TZID the events use; each gets one
    VTIMEZONE covering the years of all its entries.
    """
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    for event in events:
        cal.add_component(event)
    ics: bytes = cal.to_ical()

    spans: dict[str, tuple[int, int]] = {}
    for zone, first, last in zones:
        years = spans.get(zone.key, (first.year, first.year))
        spans[zone.key] = (
            min(years[0], first.year, last.year),
            max(years[1], first.year, last.year),
        )
    if spans:
        # Serialising a VTIMEZONE costs more than the whole event, so its text is cached
        # and put where icalendar would put it, before the first VEVENT.
        timezones = b"".join(_vtimezone_ical(key, lo, hi) for key, (lo, hi) in spans.items())
        ics = ics.replace(b"BEGIN:VEVENT\r\n", timezones + b"BEGIN:VEVENT\r\n", 1)
    return ics


@lru_cache(maxsize=64)
def _vtimezone_ical(key: str, first_year: int, last_year: int) -> bytes:
    ical: bytes = vtimezone(ZoneInfo(key), first_year, last_year).to_ical()
    return ical


# --- VTIMEZONE -----------------------------------------------------------------------


def vtimezone(zone: ZoneInfo, first_year: int, last_year: int) -> Timezone:
    """A VTIMEZONE for ``zone`` that is right from ``first_year`` on (RFC 5545 §3.6.5).

    The offset changes from 2000 (or ``first_year - 1`` if earlier) to ``last_year + 2``
    become yearly RRULE observances (``BYMONTH=3;BYDAY=2SU`` and the like), one per rule
    period. Rules still followed at the end stay open-ended, like zoneinfo's own rule
    for the future, so an open-ended series stays right after ``last_year`` too. The
    2000 start is for vobject, which takes a VTIMEZONE whose offsets match UTC's over
    2000-2020 for UTC and drops it: GMT zones such as Europe/London need their history.
    """
    tz = Timezone()
    tz.add("tzid", zone.key)
    for spec in _observances(zone.key, first_year, last_year):
        part = TimezoneDaylight() if spec.dst else TimezoneStandard()
        part.add("dtstart", spec.onset)
        part.add("tzoffsetfrom", spec.offset_from)
        part.add("tzoffsetto", spec.offset_to)
        part.add("tzname", spec.name)
        if spec.rule is not None:
            part.add("rrule", dict(spec.rule))
        tz.add_component(part)
    return tz


@dataclass(frozen=True)
class _Change:
    """One change of a zone's offset, DST flag or abbreviation."""

    onset: datetime  # naive wall-clock time in the old offset (RFC 5545 §3.6.5 DTSTART)
    at_utc: datetime
    offset_from: timedelta
    offset_to: timedelta
    dst: bool
    name: str

    def rule_key(self) -> tuple[object, ...]:
        """What must stay the same for changes to share one yearly RRULE."""
        return (
            self.dst,
            self.offset_from,
            self.offset_to,
            self.name,
            self.onset.month,
            self.onset.weekday(),
            self.onset.time(),
        )


@dataclass(frozen=True)
class _Observance:
    """One STANDARD or DAYLIGHT sub-component, as plain data."""

    dst: bool
    onset: datetime
    offset_from: timedelta
    offset_to: timedelta
    name: str
    rule: tuple[tuple[str, object], ...] | None


@lru_cache(maxsize=64)
def _observances(key: str, first_year: int, last_year: int) -> tuple[_Observance, ...]:
    zone = ZoneInfo(key)
    scan_from, scan_to = min(first_year - 1, 2000), last_year + 2
    begin = datetime(scan_from, 1, 1, tzinfo=zone)
    end = datetime(scan_to + 1, 1, 1, tzinfo=zone)

    # The observance in force when the scan starts (the only one for zones without DST).
    offset = begin.utcoffset() or timedelta(0)
    in_dst = (begin.dst() or timedelta(0)) > timedelta(0)
    found = [
        _Observance(in_dst, begin.replace(tzinfo=None), offset, offset, begin.tzname() or key, None)
    ]

    # Group changes into runs, one per yearly rule: same kind, month, weekday and time,
    # consecutive years, and one BYDAY pattern that names every date.
    runs: list[list[_Change]] = []
    open_runs: dict[tuple[object, ...], list[_Change]] = {}
    for change in _changes(zone, begin.astimezone(UTC), end.astimezone(UTC)):
        run = open_runs.get(change.rule_key())
        if (
            run is not None
            and change.onset.year == run[-1].onset.year + 1
            and _byday([*(c.onset.date() for c in run), change.onset.date()])
        ):
            run.append(change)
            continue
        open_runs[change.rule_key()] = run = [change]
        runs.append(run)

    for run in runs:
        first = run[0]
        # A lone change (Morocco's Ramadan dates) is no evidence of a yearly rule.
        in_force = len(run) > 1 and run[-1].onset.year == scan_to
        rule: tuple[tuple[str, object], ...] | None = None
        if len(run) > 1:
            byday = _byday([c.onset.date() for c in run])
            assert byday is not None  # checked while grouping
            rule = (("FREQ", "YEARLY"), ("BYMONTH", first.onset.month), *byday)
            if not in_force:
                # Inside a VTIMEZONE, UNTIL is in UTC (RFC 5545 §3.6.5).
                rule += (("UNTIL", run[-1].at_utc),)
        found.append(
            _Observance(
                first.dst, first.onset, first.offset_from, first.offset_to, first.name, rule
            )
        )
    return tuple(found)


_WEEKDAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def _byday(days: Sequence[date]) -> tuple[tuple[str, object], ...] | None:
    """The BYDAY (and BYMONTHDAY) rule parts naming ``days``, which share month and weekday.

    ``-1SU`` (last Sunday) or ``2SU`` (second Sunday) where they fit, else the
    "Sunday on or after the Nth" form ``BYDAY=SU;BYMONTHDAY=N..N+6`` (RFC 5545 §3.3.10),
    or None when no one rule names every day.
    """
    code = _WEEKDAY_CODES[days[0].weekday()]
    if all(d.day + 7 > _days_in_month(d) for d in days):
        return (("BYDAY", f"-1{code}"),)
    # Every day must lie in [n, n + 6]; n <= 22 keeps that week inside any month.
    low = max(max(d.day for d in days) - 6, 1)
    high = min(min(d.day for d in days), 22)
    if low > high:
        return None
    for n in (1, 8, 15, 22):
        if low <= n <= high:
            return (("BYDAY", f"{(n + 6) // 7}{code}"),)
    return (("BYDAY", code), ("BYMONTHDAY", list(range(low, low + 7))))


def _days_in_month(day: date) -> int:
    following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def _changes(zone: ZoneInfo, start: datetime, end: datetime) -> list[_Change]:
    """Every change of offset, DST flag or name of ``zone`` in ``[start, end)``, in order."""

    def state(instant: datetime) -> tuple[timedelta, bool, str]:
        local = instant.astimezone(zone)
        return local.utcoffset() or timedelta(0), bool(local.dst()), local.tzname() or zone.key

    found: list[_Change] = []
    here, here_state = start, state(start)
    while here < end:
        # A week apart: no zone changes twice within a week (Morocco's Ramadan break,
        # the shortest, lasts about a month).
        there = min(here + timedelta(days=7), end)
        there_state = state(there)
        if there_state != here_state:
            # Bisect to the second: zones change on whole seconds, so the change lies
            # in (lo, hi] and flooring hi once they are a second apart finds it.
            lo, hi = here, there
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                if state(mid) == here_state:
                    lo = mid
                else:
                    hi = mid
            at = hi.replace(microsecond=0)
            offset_from = here_state[0]
            offset_to, dst, name = state(at)
            if offset_to != offset_from:
                # DAYLIGHT is the part of the year with the larger offset; tzdata's
                # negative DST (Europe/Dublin's winter) would otherwise swap the names.
                dst = offset_to > offset_from
            found.append(
                _Change(
                    (at + offset_from).replace(tzinfo=None), at, offset_from, offset_to, dst, name
                )
            )
        here, here_state = there, there_state
    return found
