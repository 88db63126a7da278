"""Reading what calendar clients send back: iTIP REPLY, COUNTER and friends (RFC 5546).

``parse_calendar`` turns the bytes of a ``text/calendar`` part (transfer encoding
already undone) into plain ``CalendarReply`` records, one per ATTENDEE of each VEVENT.
It is deliberately lenient, because real clients are: LF-only line endings, addresses
without ``mailto:`` or with ``MAILTO:``, Outlook's Windows TZIDs and ``X-`` properties,
a METHOD given only in the MIME type or not at all. It never raises: input it cannot
read gives an empty list, and one unreadable VEVENT does not hide the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from icalendar import Calendar, Component

__all__ = ["CalendarReply", "parse_calendar"]

# PARTSTAT values of a VEVENT (RFC 5545 §3.2.12) that only an attendee's answer sets.
_ANSWERS = frozenset({"ACCEPTED", "DECLINED", "TENTATIVE", "DELEGATED"})


@dataclass(frozen=True)
class CalendarReply:
    """One attendee's part of one VEVENT in an iTIP message, times in UTC.

    ``attendee`` and ``organizer`` are lower-case addresses without ``mailto:``.
    ``recurrence_id`` names one occurrence of a series (None: the whole event).
    ``proposed_start``/``proposed_end`` are the new times of a COUNTER, else None.
    """

    method: str
    uid: str
    sequence: int
    recurrence_id: datetime | None
    attendee: str
    partstat: str | None
    proposed_start: datetime | None
    proposed_end: datetime | None
    organizer: str | None
    comment: str | None


def parse_calendar(data: bytes, content_type_method: str | None = None) -> list[CalendarReply]:
    """Every (VEVENT, ATTENDEE) pair in ``data`` as a ``CalendarReply``; [] if unreadable.

    The METHOD is the object's own, else ``content_type_method`` (the MIME type's
    ``method=`` parameter), else inferred: CANCEL when a VEVENT is STATUS:CANCELLED,
    REPLY when every VEVENT has one ATTENDEE and that attendee has answered, else
    PUBLISH. A REPLY has one ATTENDEE (RFC 5546 §3.2.3); COUNTERs from some clients list
    them all, so match ``attendee`` against the sender. A VEVENT without ATTENDEE gives
    one record with ``attendee=""``; one without UID is skipped. Floating times and
    TZIDs that cannot be resolved are read as UTC.
    """
    try:
        text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
        calendars = Calendar.from_ical(text, multiple=True)
    except Exception:  # any parse failure means "not a calendar we can read"
        return []

    replies: list[CalendarReply] = []
    for calendar in calendars:
        try:
            events = calendar.walk("VEVENT")
            method = _method(calendar, content_type_method, events)
        except Exception:
            continue
        for event in events:
            try:
                replies.extend(_replies(event, method))
            except Exception:  # one broken VEVENT does not hide the others
                continue
    return replies


def _method(calendar: Component, content_type_method: str | None, events: list[Component]) -> str:
    own = str(calendar.get("METHOD") or "").strip().upper()
    if own:
        return own  # RFC 5545 §3.7.2 wants the MIME parameter equal; trust the body
    if content_type_method and content_type_method.strip():
        return content_type_method.strip().upper()
    if any(str(e.get("STATUS") or "").upper() == "CANCELLED" for e in events):
        return "CANCEL"
    if events and all(_answered_alone(e) for e in events):
        return "REPLY"
    return "PUBLISH"


def _answered_alone(event: Component) -> bool:
    attendees = _as_list(event.get("ATTENDEE"))
    return len(attendees) == 1 and _param(attendees[0], "PARTSTAT") in _ANSWERS


def _replies(event: Component, method: str) -> list[CalendarReply]:
    uid = str(event.get("UID") or "").strip()
    if not uid:
        return []
    recurrence_id = _utc(event.get("RECURRENCE-ID"))
    proposed_start = proposed_end = None
    if method == "COUNTER":
        proposed_start = _utc(event.get("DTSTART"))
        proposed_end = _utc(event.get("DTEND"))
        duration = event.get("DURATION")
        if (
            proposed_end is None
            and proposed_start is not None
            and duration is not None
            and isinstance(duration.dt, timedelta)
        ):
            proposed_end = proposed_start + duration.dt
    organizer = _address(event.get("ORGANIZER") or "") or None
    comments = [str(c).strip() for c in _as_list(event.get("COMMENT"))]
    common: dict[str, Any] = {
        "method": method,
        "uid": uid,
        "sequence": _sequence(event.get("SEQUENCE")),
        "recurrence_id": recurrence_id,
        "proposed_start": proposed_start,
        "proposed_end": proposed_end,
        "organizer": organizer,
        "comment": "\n".join(c for c in comments if c) or None,
    }
    attendees = _as_list(event.get("ATTENDEE"))
    if not attendees:
        return [CalendarReply(attendee="", partstat=None, **common)]
    return [
        CalendarReply(attendee=_address(a), partstat=_param(a, "PARTSTAT"), **common)
        for a in attendees
    ]


def _as_list(value: object) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _address(value: object) -> str:
    """``MAILTO:Dana@Example.NET``, ``mailto:dana@example.net`` or bare → ``dana@example.net``."""
    address = str(value).strip()
    if address[:7].lower() == "mailto:":
        address = address[7:]
    return address.strip().strip("<>").strip().lower()


def _param(value: object, name: str) -> str | None:
    params = getattr(value, "params", None)
    if not params or name not in params:
        return None
    found = str(params[name]).strip().upper()
    return found or None


def _sequence(value: object) -> int:
    try:
        return max(int(str(value)), 0) if value is not None else 0
    except ValueError:
        return 0


def _utc(prop: object) -> datetime | None:
    """A DATE or DATE-TIME property in UTC: dates at midnight, floating times as UTC."""
    when = getattr(prop, "dt", None)
    if isinstance(when, datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            return when.replace(tzinfo=UTC)
        return when.astimezone(UTC)
    if isinstance(when, date):
        return datetime(when.year, when.month, when.day, tzinfo=UTC)
    return None
