"""A private calendar feed per person: their sessions and office hours (issue 4, point 6).

Calendar apps subscribe to ``GET /feed/<token>.ics`` and fetch it again now and then. The
token is signed like every other link (``tokens.py``: purpose ``feed``, person = the
email address, obj ``calendar``) but lasts ``FEED_LIFETIME``, because nobody re-subscribes
every fortnight; every office-hours email carries a fresh one.

The feed is a plain iCalendar object (RFC 5545) without METHOD: it is published data, not
an iTIP message (RFC 5546 §1.4), so clients show it as a read-only calendar and never
offer to answer it. Each entry keeps the UID and SEQUENCE of the invitation it mirrors, so
a client that has both knows they are the same event. Sessions are written in UTC;
office-hours series at their local time with TZID, an RRULE and a VTIMEZONE from
``calendar.invite.vtimezone`` (the one ical.js and vobject read right across DST changes),
cancelled occurrences as EXDATE and moved ones as RECURRENCE-ID overrides.

``build_feed`` and ``feed_series`` are pure; ``session_entries`` reads the sessions out of
the store, and ``person_feed`` puts a person's sessions and series together.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from .calendar.conference import call_url_of
from .calendar.invite import PRODID, vtimezone
from .calendar.recurrence import local_start, weekly_until
from .calendar.series import SeriesEvent
from .config import Config
from .state.records import SessionStatus, session_status
from .state.store import Store, from_iso
from .tokens import sign
from .views import tag

__all__ = [
    "FEED_LIFETIME",
    "FEED_PURPOSE",
    "FeedEntry",
    "FeedSeries",
    "MovedOccurrence",
    "build_feed",
    "feed_series",
    "feed_url",
    "person_feed",
    "session_entries",
]

FEED_PURPOSE = "feed"
FEED_OBJECT = "calendar"
FEED_LIFETIME = timedelta(days=730)
# How far back the feed reaches: enough to look last month up, small enough to stay light.
FEED_HISTORY = timedelta(days=90)
# RFC 7986 §5.7 (and the older X-PUBLISHED-TTL): how often a client should fetch again.
REFRESH = timedelta(hours=1)
REFRESH_TEXT = "PT1H"  # REFRESH as an RFC 5545 §3.3.6 duration

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # not allowed in TEXT, RFC 5545 §3.3.11
# A session's status → the VEVENT STATUS it shows as (RFC 5545 §3.8.1.11).
_SESSION_STATUS = {
    SessionStatus.PROPOSED: "TENTATIVE",
    SessionStatus.DECLINED: "TENTATIVE",
    SessionStatus.ACCEPTED: "CONFIRMED",
    SessionStatus.HELD: "CONFIRMED",
    SessionStatus.NO_SHOW: "CANCELLED",
    SessionStatus.CANCELLED: "CANCELLED",
}


@dataclass(frozen=True)
class FeedEntry:
    """One single event of the feed (a session), times aware."""

    uid: str
    sequence: int
    start: datetime
    end: datetime
    status: str  # TENTATIVE | CONFIRMED | CANCELLED
    summary: str
    description: str = ""
    location: str = ""


@dataclass(frozen=True)
class MovedOccurrence:
    """One occurrence of a series at another time: its original start and its new one."""

    recurrence_id_local: datetime  # in the series' zone, as DTSTART is written
    new_start_local: datetime  # carries a ZoneInfo
    sequence: int


@dataclass(frozen=True)
class FeedSeries:
    """A weekly series of the feed (office hours) at a fixed local time."""

    uid: str
    sequence: int
    first_start_local: datetime  # carries a ZoneInfo
    length: timedelta
    weekly_until: datetime | None  # the last possible start, inclusive
    summary: str
    description: str = ""
    location: str = ""
    exdates: tuple[datetime, ...] = ()  # original starts of cancelled occurrences
    moved: tuple[MovedOccurrence, ...] = ()
    interval: int = 1  # every this many weeks (pairings meet every other week)


def feed_url(config: Config, email: str, now: datetime) -> str:
    """The private feed address of ``email``, valid for ``FEED_LIFETIME`` from ``now``."""
    token = sign(
        config.secret,
        purpose=FEED_PURPOSE,
        person=email.strip().lower(),
        obj=FEED_OBJECT,
        expires=now + FEED_LIFETIME,
    )
    return f"{config.program.base_url}/feed/{token}.ics"


def build_feed(
    *,
    name: str,
    entries: Sequence[FeedEntry],
    series: Sequence[FeedSeries],
    now: datetime,
) -> bytes:
    """The feed as bytes: one VCALENDAR named ``name``, VTIMEZONEs first, no METHOD."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", _text(name))
    cal.add("name", _text(name))  # RFC 7986 §5.1
    cal.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", REFRESH_TEXT)  # the same, for Outlook and older clients

    # One VTIMEZONE per zone used, covering every year a start is written in.
    spans: dict[str, tuple[int, int]] = {}

    def cover(start: datetime) -> None:
        key, year = _zone(start).key, start.year
        lo, hi = spans.get(key, (year, year))
        spans[key] = (min(lo, year), max(hi, year))

    for item in series:
        cover(item.first_start_local)
        if item.weekly_until is not None:
            cover(item.weekly_until.astimezone(_zone(item.first_start_local)))
        for moved in item.moved:
            cover(moved.new_start_local)
    for key, (lo, hi) in sorted(spans.items()):
        cal.add_component(vtimezone(ZoneInfo(key), lo, hi))

    stamp = now.astimezone(UTC).replace(microsecond=0)
    for entry in entries:
        event = _event(entry.uid, entry.sequence, stamp, entry.status, entry.summary)
        event.add("dtstart", entry.start.astimezone(UTC))
        event.add("dtend", entry.end.astimezone(UTC))
        _describe(event, entry.description, entry.location)
        cal.add_component(event)
    for item in series:
        cal.add_component(_master(item, stamp))
        for moved in item.moved:
            event = _event(item.uid, moved.sequence, stamp, "CONFIRMED", item.summary)
            event.add("recurrence-id", moved.recurrence_id_local)
            event.add("dtstart", moved.new_start_local)
            event.add("dtend", _local_end(moved.new_start_local, item.length))
            _describe(event, item.description, item.location)
            cal.add_component(event)
    ics: bytes = cal.to_ical()
    return ics


def person_feed(
    config: Config, store: Store, email: str, series: Sequence[SeriesEvent], now: datetime
) -> bytes:
    """The feed of ``email``: their sessions and ``series`` (the ones they staff or joined)."""
    email = email.strip().lower()
    name = (store.mentor(email) or {}).get("name") or email
    return build_feed(
        name=f"{config.program.name}: {name}",
        entries=session_entries(config, store, email, now),
        series=[feed_series(event) for event in series],
        now=now,
    )


def feed_series(event: SeriesEvent) -> FeedSeries:
    """A series as the feed shows it: the invitation's master and overrides, no attendees."""
    rule = event.rule
    return FeedSeries(
        uid=event.uid,
        sequence=event.sequence,
        first_start_local=local_start(rule, rule.first),
        length=rule.length,
        weekly_until=weekly_until(rule),
        summary=event.summary,
        description=event.description,
        location=event.location,
        exdates=tuple(local_start(rule, day) for day in sorted(rule.cancelled)),
        moved=tuple(
            MovedOccurrence(local_start(rule, day), rule.moved[day], event.sequence_of(day))
            for day in sorted(rule.moved)
        ),
        interval=rule.interval,
    )


def session_entries(config: Config, store: Store, email: str, now: datetime) -> list[FeedEntry]:
    """The sessions ``email`` takes part in, from ``FEED_HISTORY`` ago on, as feed entries."""
    email = email.strip().lower()
    since = now - FEED_HISTORY
    entries: list[FeedEntry] = []
    for session in store.sessions_of(email):  # by index: not every session ever held
        if email not in (session.get("mentor"), session.get("mentee")):
            continue
        start, end = from_iso(session["start"]), from_iso(session["end"])
        if end < since:
            continue
        number = int(session["request"])
        request = store.request(number) or {}
        mentor = store.mentor(session["mentor"]) or {}
        if email == session["mentor"]:
            other = str(request.get("name") or "your mentee")
        else:
            other = str(mentor.get("name") or "your mentor")
        skills = ", ".join(request.get("skills") or [])
        entries.append(
            FeedEntry(
                uid=session["uid"],
                sequence=int(session.get("sequence") or 0),
                start=start,
                end=end,
                status=_SESSION_STATUS[session_status(session)],
                summary=f"Mentoring session with {other}",
                description=(
                    f"{tag(number)}{': ' + skills if skills else ''}\n"
                    f"To cancel or move it, reply to the invitation email from "
                    f"{config.program.address}."
                ),
                location=call_url_of(session, mentor) or config.sessions.location,
            )
        )
    entries.sort(key=lambda e: (e.start, e.uid))
    return entries


# --- building blocks --------------------------------------------------------------------


def _master(item: FeedSeries, stamp: datetime) -> Event:
    event = _event(item.uid, item.sequence, stamp, "CONFIRMED", item.summary)
    event.add("dtstart", item.first_start_local)
    event.add("dtend", _local_end(item.first_start_local, item.length))
    rule: dict[str, object] = {"FREQ": "WEEKLY"}
    if item.interval > 1:
        rule["INTERVAL"] = item.interval
    if item.weekly_until is not None:
        # With a TZID on DTSTART, UNTIL is in UTC (RFC 5545 §3.3.10).
        rule["UNTIL"] = item.weekly_until.astimezone(UTC)
    event.add("rrule", rule)
    zone = _zone(item.first_start_local)
    # One EXDATE per date, in DTSTART's zone and value type (RFC 5545 §3.8.5.1).
    for excluded in item.exdates:
        event.add("exdate", excluded.astimezone(zone))
    _describe(event, item.description, item.location)
    return event


def _event(uid: str, sequence: int, stamp: datetime, status: str, summary: str) -> Event:
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", stamp)
    event.add("sequence", max(int(sequence), 0))
    event.add("status", status)
    event.add("summary", _text(summary))
    return event


def _describe(event: Event, description: str, location: str) -> None:
    if description:
        event.add("description", _text(description))
    if location:
        event.add("location", _text(location))


def _text(value: str) -> str:
    return _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))


def _zone(value: datetime) -> ZoneInfo:
    if not isinstance(value.tzinfo, ZoneInfo):
        raise ValueError(f"a series time must carry a zoneinfo.ZoneInfo, got {value!r}")
    return value.tzinfo


def _local_end(start: datetime, length: timedelta) -> datetime:
    """``start + length`` in elapsed time, written in ``start``'s zone."""
    return (start.astimezone(UTC) + length).astimezone(_zone(start))
