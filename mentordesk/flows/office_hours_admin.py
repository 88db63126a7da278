"""The coordinator's office-hours commands (SPEC §3 flow 6, §10): create, list, cancel, move;
end and edit a series as a whole (``office_hours_whole.py``).

The CLI sends a command as JSON through the running daemon (``mentordesk.admin``), which
hands it to ``OfficeHoursAdmin.admin``; without a daemon the CLI applies it to the store
itself. This module reads the command's text (``weekday_number``, ``clock``, dates,
durations, addresses), checks it against the series, and records what changes in the
store, one transaction per command. Who hears of a change, and in which words, is the
flow's: ``flows.office_hours`` passes itself in as the ``Announcer``.

    MentordeskError
    └── OfficeHoursError    a command that cannot be applied; the message says why
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from ..calendar.invite import new_uid
from ..calendar.recurrence import (
    WEEKDAYS,
    Occurrence,
    WeeklyRule,
    clock_trouble,
    end_of,
    first_date,
    is_rule_date,
    local_start,
    occurrences,
    pattern,
    trouble_ahead,
)
from ..calendar.series import SeriesEvent
from ..config import Config, parse_duration
from ..errors import OfficeHoursError
from ..state.records import mentor_status, term_over
from ..state.store import Store, iso
from .office_hours_whole import edit_series, end_series, session_clashes, uncovered_mentors

__all__ = [
    "Announcer",
    "OfficeHoursAdmin",
    "OfficeHoursError",
    "clock",
    "weekday_number",
]

MIN_LENGTH = timedelta(minutes=5)
MAX_LENGTH = timedelta(hours=12)

_CLOCK = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")
_DAY_AND_CLOCK = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})[ T](\d{1,2}:\d{2})\s*$")
_ADDRESS = re.compile(r"^[^@\s<>\"(),;:]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.[A-Za-z]+$")


class Announcer(Protocol):
    """What the commands need of the flow: the series' calendar identity and the emails."""

    def event_of(self, series: Mapping[str, Any]) -> SeriesEvent: ...

    def invite_staff(self, series: Mapping[str, Any], now: datetime) -> None: ...

    def announce_cancelled(
        self, series: Mapping[str, Any], was: Occurrence, now: datetime
    ) -> None: ...

    def announce_moved(
        self, series: Mapping[str, Any], was: Occurrence, moved: Occurrence, now: datetime
    ) -> None: ...

    def announce_ended(self, series: Mapping[str, Any], now: datetime) -> None: ...

    def announce_edited(
        self,
        series: Mapping[str, Any],
        removed: Sequence[tuple[str, str]],
        changes: Sequence[str],
        now: datetime,
    ) -> None: ...

    def name_in(self, series: Mapping[str, Any], email: str) -> str: ...


class OfficeHoursAdmin:
    """The coordinator's commands on office-hours series."""

    def __init__(self, config: Config, store: Store, announcer: Announcer) -> None:
        self.config = config
        self.store = store
        self.announcer = announcer

    def admin(self, command: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """Apply one coordinator command, as the CLI sends it (JSON), and say what happened.

        ``{"action": "add", "weekday": "thu", "time": "18:00", "zone": "Europe/Berlin",
        "length": "60m", "mentors": [...], "until": "2027-06-30", "title", "location"}``,
        ``{"action": "list"}``, ``{"action": "cancel", "id": 1, "date": "2026-04-02"}``,
        ``{"action": "move", "id": 1, "date": "2026-04-02", "to": "19:00"}`` (or
        ``"2026-04-03 19:00"``). Raises OfficeHoursError naming what is wrong.
        """
        action = command.get("action")
        by = _text(command, "by").strip()[:100]  # who acts, for the audit ("cli:alice")
        if action == "list":
            return {"series": [self.describe(s, now) for s in self.store.all_series()]}
        if action == "add":
            mentors = command.get("mentors")
            if not isinstance(mentors, list) or not all(isinstance(m, str) for m in mentors):
                raise OfficeHoursError("mentors must be a list of email addresses")
            gone = [m for m in mentors if self._has_left(m, now)]
            if gone:
                # SPEC §3a: a mentor who left is off every series; they cannot staff one.
                raise OfficeHoursError(
                    f"{', '.join(gone)} can no longer staff office hours (resigned or term "
                    "ended); renew them first or choose other mentors"
                )
            until = command.get("until")
            series = self.create_series(
                weekday=weekday_number(_text(command, "weekday")),
                start_time=clock(_text(command, "time")),
                zone=_text(command, "zone") or self.config.program.timezone,
                length=_duration(_text(command, "length") or "60m"),
                mentors=mentors,
                now=now,
                until=_day(until) if until else None,
                title=_text(command, "title"),
                location=_text(command, "location"),
                by=by,
            )
            unknown = [m for m in series["mentors"] if self.store.mentor(m) is None]
            warnings = [f"{m} is not an enrolled mentor (invited all the same)" for m in unknown]
            warnings += uncovered_mentors(self.store, series, now)
            return {"series": self.describe(series, now), "warnings": warnings}
        if action in ("end", "edit"):
            return self._whole(action, command, now, by)
        if action in ("cancel", "move"):
            series_id = command.get("id")
            if isinstance(series_id, bool) or not isinstance(series_id, int):
                raise OfficeHoursError(f"id must be a series number, got {series_id!r}")
            day = _day(_text(command, "date"))
            if action == "cancel":
                series = self.cancel_occurrence(series_id, day, now, by=by)
            else:
                series = self.move_occurrence(series_id, day, _new_time(command, day), now, by=by)
            return {"series": self.describe(series, now)}
        raise OfficeHoursError(
            f"unknown action {action!r}: want add, list, cancel, move, end or edit"
        )

    def _whole(
        self, action: str, command: Mapping[str, Any], now: datetime, by: str
    ) -> dict[str, Any]:
        """``{"action": "end", "id": 1}`` or ``{"action": "edit", "id": 1, "weekday",
        "time", "length", "mentors"}`` (each optional): the series as a whole."""
        series_id = command.get("id")
        if isinstance(series_id, bool) or not isinstance(series_id, int):
            raise OfficeHoursError(f"id must be a series number, got {series_id!r}")
        if action == "end":
            return {"series": self.describe(end_series(self, series_id, now, by=by), now)}
        mentors = command.get("mentors")
        if mentors is not None and (
            not isinstance(mentors, list) or not all(isinstance(m, str) for m in mentors)
        ):
            raise OfficeHoursError("mentors must be a list of email addresses")
        weekday, start, length = (
            _text(command, "weekday"),
            _text(command, "time"),
            _text(command, "length"),
        )
        series, changes = edit_series(
            self,
            series_id,
            now=now,
            weekday=weekday_number(weekday) if weekday else None,
            start_time=clock(start) if start else None,
            length=_duration(length) if length else None,
            mentors=_addresses(mentors) if mentors is not None else None,
            by=by,
        )
        return {
            "series": self.describe(series, now),
            "changes": changes,
            "warnings": [
                *uncovered_mentors(self.store, series, now),
                *session_clashes(self.store, series, now),
            ],
        }

    def _has_left(self, email: str, now: datetime) -> bool:
        mentor = self.store.mentor(email)
        return mentor is not None and (mentor_status(mentor).left or term_over(mentor, now))

    def create_series(
        self,
        *,
        weekday: int,
        start_time: time,
        zone: str,
        length: timedelta,
        mentors: Sequence[str],
        now: datetime,
        until: date | None = None,
        title: str = "",
        location: str = "",
        by: str = "",
    ) -> dict[str, Any]:
        """Create a weekly series from the next ``weekday`` on and invite its mentors."""
        tz = _zone(zone)
        if not 0 <= weekday <= 6:
            raise OfficeHoursError(f"weekday must be 0 (Monday) to 6 (Sunday), got {weekday}")
        if not MIN_LENGTH <= length <= MAX_LENGTH or length % timedelta(minutes=1):
            raise OfficeHoursError(
                f"length must be whole minutes from 5m to 12h, got {_minutes(length)} minutes"
            )
        staff = _addresses(mentors)
        if not staff:
            raise OfficeHoursError("office hours need at least one mentor: add --mentor EMAIL")
        first = first_date(weekday, start_time, tz, now)
        if until is not None and until < first:
            raise OfficeHoursError(
                f"the series would end ({until}) before its first {WEEKDAYS[weekday]}, {first}"
            )
        trouble = trouble_ahead(tz, start_time, first, until)
        if trouble is not None:
            raise OfficeHoursError(
                f"{start_time:%H:%M} does not happen exactly once in {zone} on {trouble} "
                "(the clocks change that night): pick a time outside 01:00-04:00"
            )
        with self.store.transaction():
            series: dict[str, Any] = {
                "id": self.store.new_series_id(),
                "uid": new_uid(self.config.program.domain),
                "sequence": 0,
                "title": " ".join(title.split()) or "Office hours",
                "location": " ".join(location.split()),
                "weekday": weekday,
                "time": start_time.strftime("%H:%M"),
                "zone": tz.key,
                "length_minutes": _minutes(length),
                "first": first.isoformat(),
                "until": until.isoformat() if until else None,
                "mentors": staff,
                "attendees": [],
                "names": {},
                "exceptions": {},
                "answers": {email: "NEEDS-ACTION" for email in staff},
                "occurrence_answers": {},
                "created": iso(now),
                "updated": iso(now),
            }
            self.store.save_series(series)
            self.store.audit(
                "office hours created",
                now=now,
                series=series["id"],
                mentors=staff,
                uid=series["uid"],
                **_who(by),
            )
            self.announcer.invite_staff(series, now)
            return series

    def cancel_occurrence(
        self, series_id: int, day: date, now: datetime, *, by: str = ""
    ) -> dict[str, Any]:
        """Cancel the occurrence originally on ``day`` for everyone on the series."""
        with self.store.transaction():
            series = self.series(series_id)
            was = self._upcoming(series, day, now)
            key = day.isoformat()
            sequence = self.announcer.event_of(series).next_sequence(day)
            series["exceptions"][key] = {"status": "cancelled", "sequence": sequence}
            series["updated"] = iso(now)
            self.store.save_series(series)
            self.store.audit(
                "office hours cancelled",
                now=now,
                series=series_id,
                date=key,
                sequence=sequence,
                **_who(by),
            )
            self.announcer.announce_cancelled(series, was, now)
            return series

    def move_occurrence(
        self, series_id: int, day: date, new_start: datetime, now: datetime, *, by: str = ""
    ) -> dict[str, Any]:
        """Move the occurrence originally on ``day`` to ``new_start`` (naive: series' zone)."""
        with self.store.transaction():
            series = self.series(series_id)
            was = self._upcoming(series, day, now)
            rule = WeeklyRule.of(series)
            wall = new_start.replace(tzinfo=None)
            if clock_trouble(rule.zone, wall.time(), [wall.date()]) is not None:
                raise OfficeHoursError(
                    f"{wall:%Y-%m-%d %H:%M} happens twice or not at all in {rule.zone.key} "
                    "(the clocks change that night): pick another time"
                )
            start = wall.replace(tzinfo=rule.zone)
            if start <= now:
                raise OfficeHoursError(f"{wall:%Y-%m-%d %H:%M} ({rule.zone.key}) has passed")
            key = day.isoformat()
            sequence = self.announcer.event_of(series).next_sequence(day)
            series["exceptions"][key] = {
                "status": "moved",
                "start": wall.strftime("%Y-%m-%dT%H:%M"),
                "sequence": sequence,
            }
            series["updated"] = iso(now)
            self.store.save_series(series)
            self.store.audit(
                "office hours moved",
                now=now,
                series=series_id,
                date=key,
                to=series["exceptions"][key]["start"],
                sequence=sequence,
                **_who(by),
            )
            moved = Occurrence(day, start, end_of(start, rule.length), True)
            self.announcer.announce_moved(series, was, moved, now)
            return series

    def describe(self, series: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """A series as the CLI shows it (JSON-able)."""
        rule = WeeklyRule.of(series)
        coming = occurrences(rule, now, now + timedelta(weeks=4))
        return {
            "id": series["id"],
            "title": series["title"],
            "when": pattern(rule),
            "zone": series["zone"],
            "location": series["location"],
            "first": series["first"],
            "until": series.get("until"),
            "mentors": list(series["mentors"]),
            "joined": len(series["attendees"]),
            "next": [
                f"{o.start:%a %Y-%m-%d %H:%M}" + (" (moved)" if o.moved else "") for o in coming
            ],
            "cancelled": sorted(
                k for k, v in series["exceptions"].items() if v["status"] == "cancelled"
            ),
            "moved": {
                k: v["start"]
                for k, v in sorted(series["exceptions"].items())
                if v["status"] == "moved"
            },
            "ended": series.get("ended"),
        }

    def series(self, series_id: int) -> dict[str, Any]:
        """The stored series ``series_id``; OfficeHoursError naming the known ones if none."""
        series = self.store.series(series_id)
        if series is None:
            known = ", ".join(str(s["id"]) for s in self.store.all_series()) or "none yet"
            raise OfficeHoursError(f"there is no office-hours series {series_id} (known: {known})")
        return series

    def _upcoming(self, series: Mapping[str, Any], day: date, now: datetime) -> Occurrence:
        """The upcoming occurrence originally on ``day``; OfficeHoursError if there is none."""
        rule = WeeklyRule.of(series)
        if not is_rule_date(rule, day):
            until = f" to {rule.until}" if rule.until else ""
            raise OfficeHoursError(
                f"{day} ({WEEKDAYS[day.weekday()]}) is not a date of office hours "
                f"{series['id']}: they are {pattern(rule)}, from {rule.first}{until}"
            )
        if day in rule.cancelled:
            raise OfficeHoursError(f"office hours {series['id']} on {day} are already cancelled")
        start = rule.moved.get(day) or local_start(rule, day)
        if start <= now:
            raise OfficeHoursError(f"office hours {series['id']} on {day} have already begun")
        return Occurrence(day, start, end_of(start, rule.length), day in rule.moved)


# --- reading the command's text -----------------------------------------------------------


def _who(by: str) -> dict[str, str]:
    """The audit's ``by`` field, when someone was named."""
    return {"by": by} if by else {}


def weekday_number(text: str) -> int:
    """'thu', 'Thursday', 'THURS' → 3; OfficeHoursError otherwise."""
    word = text.strip().lower()
    for number, name in enumerate(WEEKDAYS):
        if len(word) >= 2 and name.lower().startswith(word):
            return number
    raise OfficeHoursError(f"{text!r} is not a weekday: write mon, tue, wed, thu, fri, sat or sun")


def clock(text: str) -> time:
    """'18:00' → 18:00; OfficeHoursError otherwise."""
    match = _CLOCK.match(text)
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise OfficeHoursError(f"{text!r} is not a time of day like 18:00")
    return time(int(match.group(1)), int(match.group(2)))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name.strip())
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise OfficeHoursError(
            f"unknown timezone {name!r}: use an IANA name such as Europe/Berlin"
        ) from None


def _minutes(length: timedelta) -> int:
    return int(length.total_seconds() // 60)


def _addresses(raw: Sequence[str]) -> list[str]:
    found: list[str] = []
    for text in raw:
        email = text.strip().lower()
        if email.startswith("mailto:"):
            email = email[len("mailto:") :]
        if not _ADDRESS.match(email):
            raise OfficeHoursError(f"{text!r} is not an email address")
        if email not in found:
            found.append(email)
    return found


def _text(command: Mapping[str, Any], key: str) -> str:
    value = command.get(key) or ""
    if not isinstance(value, str):
        raise OfficeHoursError(f"{key} must be text, got {value!r}")
    return value


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise OfficeHoursError(f"{text!r} is not a date like 2026-04-02") from None


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise OfficeHoursError(str(exc)) from None


def _new_time(command: Mapping[str, Any], day: date) -> datetime:
    """'19:00' (the same day) or '2026-04-03 19:00' → a naive local datetime."""
    text = _text(command, "to")
    both = _DAY_AND_CLOCK.match(text)
    if both:
        return datetime.combine(_day(both.group(1)), clock(both.group(2)))
    return datetime.combine(day, clock(text))
