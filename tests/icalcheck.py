"""Read invitations back with two independent iCalendar parsers.

``read_with_icaljs`` runs Mozilla's ical.js (the parser inside Thunderbird) through
``tests/js/read_ics.mjs``; ``read_with_vobject`` does the same with vobject and
dateutil's rrule. Both return the same JSON shape::

    {"method": "REQUEST", "events": [{"uid", "sequence", "status", "method", "summary",
      "organizer": {"value", "cn"}, "attendees": [{"value", "cn", "partstat", "rsvp",
      "role", "cutype"}], "recurrence_id", "start_zone",
      "occurrences": [{"start": "2026-03-01T23:00:00Z", "end": ...}, ...],
      "location", "url", "conferences": [{"value", "feature", "label", "value_type"}]}]}

so that a test can compare what each parser understood with what was meant. A missing
node or ical.js is an error, never a skip: ``scripts/setup-tests.sh`` installs them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import vobject
import vobject.icalendar

from mentordesk.calendar.invite import Attendee, EventHead

JS_DIR = Path(__file__).resolve().parent / "js"
HARNESS = JS_DIR / "read_ics.mjs"
ICALJS = JS_DIR / "node_modules" / "ical.js" / "package.json"


class ParserHarnessMissing(RuntimeError):
    """node or ical.js is not installed; run scripts/setup-tests.sh."""


def read_with_icaljs(ics: bytes, occurrences: int = 10) -> dict[str, Any]:
    """What ical.js reads from ``ics``, expanding the first ``occurrences`` of each VEVENT."""
    node = shutil.which("node")
    if node is None:
        raise ParserHarnessMissing(
            "node is not on PATH: the invitation tests need it to run ical.js; "
            "run scripts/setup-tests.sh"
        )
    if not ICALJS.is_file():
        raise ParserHarnessMissing(
            f"ical.js is not installed in {JS_DIR / 'node_modules'}; run scripts/setup-tests.sh"
        )
    done = subprocess.run(
        [node, str(HARNESS), str(occurrences)],
        input=ics,
        capture_output=True,
        timeout=30,
        check=False,
        # Floating times would otherwise depend on the machine's zone.
        env={**os.environ, "TZ": "UTC"},
    )
    if done.returncode != 0:
        raise AssertionError(
            f"ical.js rejected the object (exit {done.returncode}): "
            f"{done.stderr.decode(errors='replace')}\n{ics.decode(errors='replace')}"
        )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def read_with_vobject(ics: bytes, occurrences: int = 10) -> dict[str, Any]:
    """What vobject reads from ``ics``, in ``read_with_icaljs``'s shape."""
    # vobject keeps a process-wide TZID registry and never replaces an entry: empty it
    # so that this object's own VTIMEZONEs are the ones used, not a previous test's.
    registry: dict[str, Any] = getattr(vobject.icalendar, "__tzidMap")
    registry.clear()
    vobject.icalendar.registerTzid("UTC", vobject.icalendar.utc)

    cal = vobject.readOne(ics.decode("utf-8"))
    method = cal.method.value if hasattr(cal, "method") else None
    vevents = list(cal.vevent_list) if hasattr(cal, "vevent") else []
    overrides: dict[str, dict[datetime, Any]] = {}
    for vevent in vevents:
        if hasattr(vevent, "recurrence_id"):
            when = _utc(vevent.recurrence_id.value)
            overrides.setdefault(vevent.uid.value, {})[when] = vevent

    events = []
    for vevent in vevents:
        start = vevent.dtstart.value
        events.append(
            {
                "uid": vevent.uid.value,
                "sequence": int(vevent.sequence.value) if hasattr(vevent, "sequence") else 0,
                "status": vevent.status.value if hasattr(vevent, "status") else None,
                "method": method,
                "summary": vevent.summary.value if hasattr(vevent, "summary") else None,
                "organizer": _organizer(vevent),
                "attendees": [_address(a) for a in getattr(vevent, "attendee_list", [])],
                "recurrence_id": (
                    _iso(_utc(vevent.recurrence_id.value))
                    if hasattr(vevent, "recurrence_id")
                    else None
                ),
                "start_zone": _zone_name(start),
                "occurrences": _occurrences(
                    vevent, overrides.get(vevent.uid.value, {}), occurrences
                ),
                "location": vevent.location.value if hasattr(vevent, "location") else None,
                "url": vevent.url.value if hasattr(vevent, "url") else None,
                "conferences": [_conference(c) for c in getattr(vevent, "conference_list", [])],
            }
        )
    return {"method": method, "events": events}


def _occurrences(vevent: Any, overrides: dict[datetime, Any], limit: int) -> list[dict[str, str]]:
    start = vevent.dtstart.value
    length = _length(vevent)
    if hasattr(vevent, "recurrence_id") or not hasattr(vevent, "rrule"):
        return [{"start": _iso(_utc(start)), "end": _iso(_utc(start) + length)}]
    found = []
    for when in vevent.getrruleset(addRDate=True):  # applies EXDATE too
        replaced = overrides.get(_utc(when))  # a RECURRENCE-ID override of this one
        if replaced is not None:
            start_utc = _utc(replaced.dtstart.value)
            end_utc = start_utc + _length(replaced)
        else:
            start_utc = _utc(when)
            end_utc = start_utc + length
        found.append({"start": _iso(start_utc), "end": _iso(end_utc)})
        if len(found) >= limit:
            break
    return found


def _conference(prop: Any) -> dict[str, str | None]:
    """An RFC 7986 CONFERENCE property as vobject reads it."""

    def param(name: str) -> str | None:
        values = prop.params.get(name.upper())
        return str(values[0]) if values else None

    return {
        "value": str(prop.value),
        "feature": param("feature"),
        "label": param("label"),
        "value_type": (param("value") or "").lower() or None,
    }


def _length(vevent: Any) -> timedelta:
    if hasattr(vevent, "dtend"):
        end: timedelta = _utc(vevent.dtend.value) - _utc(vevent.dtstart.value)
        return end
    if hasattr(vevent, "duration"):
        duration: timedelta = vevent.duration.value
        return duration
    return timedelta(0)


def _address(prop: Any) -> dict[str, str | None]:
    def param(name: str) -> str | None:
        values = prop.params.get(name.upper())
        return str(values[0]) if values else None

    return {
        "value": str(prop.value),
        "cn": param("cn"),
        "partstat": param("partstat"),
        "rsvp": param("rsvp"),
        "role": param("role"),
        "cutype": param("cutype"),
    }


def _utc(value: date | datetime) -> datetime:
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if value.tzinfo is None:
        raise AssertionError(f"vobject read a floating time {value!r}: TZID not resolved")
    return value.astimezone(UTC)


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _zone_name(value: date | datetime) -> str | None:
    if not isinstance(value, datetime) or value.tzinfo is None:
        return None
    tzid = getattr(value.tzinfo, "_tzid", None)  # dateutil's tzical: the object's VTIMEZONE
    if tzid is not None:
        return str(tzid)
    if value.tzinfo in (UTC, vobject.icalendar.utc):
        return "UTC"
    # vobject fell back to a zone of its own (pytz) instead of the object's VTIMEZONE.
    return f"not from the object: {value.tzinfo!r}"


def _organizer(vevent: Any) -> dict[str, str | None] | None:
    if not hasattr(vevent, "organizer"):
        return None
    full = _address(vevent.organizer)
    return {"value": full["value"], "cn": full["cn"]}


def head(
    *,
    uid: str,
    sequence: int,
    summary: str,
    organizer: str,
    organizer_name: str,
    attendees: Sequence[Attendee],
    now: datetime,
) -> EventHead:
    """An invitation's head as the tests spell it: the organizer as address and name."""
    return EventHead(uid, sequence, summary, Attendee(organizer, organizer_name), attendees, now)
