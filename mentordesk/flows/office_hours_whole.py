"""Office hours as a whole (SPEC §10): the coordinator ends a series, or changes its day,
time, length or mentors, for everyone on it.

- **end**: METHOD:CANCEL of the whole series (no RECURRENCE-ID, STATUS:CANCELLED,
  SEQUENCE + 1) to everyone who received it; the series then has no occurrence to come
  and nobody on it (``ended_with`` keeps who was).
- **edit**: the series' master gets SEQUENCE + 1 (above any occurrence's own) and every
  member gets the updated METHOD:REQUEST, same UID; a mentor taken off the staff gets a
  CANCEL naming them alone (RFC 5546 §3.2.5), a new one the invitation. A new day or time
  starts afresh from the next such day: earlier one-week changes no longer apply.
- **warnings**: a staffing mentor whose own weekly hours do not cover the series'
  time (in their zone) is named to the coordinator, on add and on edit; so is a session
  already booked in the series' new time.

``end_series``/``edit_series`` are the commands (``office_hours_admin`` dispatches), the
``WholeSeries`` mixin of ``OfficeHoursDesk`` writes the letters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ..calendar.invite import Attendee, series_cancel
from ..calendar.recurrence import (
    WeeklyRule,
    first_date,
    next_occurrence,
    occurrences,
    pattern,
    trouble_ahead,
)
from ..calendar.series import SeriesEvent, series_invitation, series_removal
from ..errors import OfficeHoursError
from ..state.store import Store, from_iso, iso

if TYPE_CHECKING:
    from .office_hours import Letter
    from .office_hours_admin import OfficeHoursAdmin

__all__ = ["WholeSeries", "edit_series", "end_series", "session_clashes", "uncovered_mentors"]


# --- the commands ------------------------------------------------------------------------------


def end_series(
    admin: OfficeHoursAdmin, series_id: int, now: datetime, *, by: str = ""
) -> dict[str, Any]:
    """End series ``series_id`` for everyone; its occurrences to come are gone."""
    with admin.store.transaction():
        series = admin.series(series_id)
        if series.get("ended"):
            raise OfficeHoursError(f"office hours {series_id} ended already ({series['ended']})")
        if next_occurrence(WeeklyRule.of(series), now) is None:
            raise OfficeHoursError(f"office hours {series_id} have no occurrence left to end")
        series["sequence"] = _above_all(series)
        # The CANCEL names the series as people's calendars have it (rule and all).
        admin.announcer.announce_ended(series, now)
        zone = ZoneInfo(series["zone"])
        yesterday = (now.astimezone(zone) - timedelta(days=1)).date()
        series["until"] = yesterday.isoformat()
        series["exceptions"] = {
            key: change
            for key, change in series["exceptions"].items()
            if change.get("status") != "moved"
            or datetime.fromisoformat(change["start"]).replace(tzinfo=zone) < now
        }
        # Nobody is on an ended series any more; who was is kept for the record.
        series["ended_with"] = {"mentors": series["mentors"], "attendees": series["attendees"]}
        series.update(mentors=[], attendees=[], answers={}, occurrence_answers={})
        series["ended"] = iso(now)
        series["updated"] = iso(now)
        admin.store.save_series(series)
        admin.store.audit(
            "office hours ended",
            now=now,
            series=series_id,
            sequence=series["sequence"],
            **({"by": by} if by else {}),
        )
        return series


def edit_series(
    admin: OfficeHoursAdmin,
    series_id: int,
    *,
    now: datetime,
    weekday: int | None = None,
    start_time: Any = None,
    length: timedelta | None = None,
    mentors: Sequence[str] | None = None,
    by: str = "",
) -> tuple[dict[str, Any], list[str]]:
    """Change series ``series_id`` for everyone: (the series, what changed in words)."""
    from .office_hours_admin import MAX_LENGTH, MIN_LENGTH

    with admin.store.transaction():
        series = admin.series(series_id)
        if series.get("ended") or next_occurrence(WeeklyRule.of(series), now) is None:
            raise OfficeHoursError(f"office hours {series_id} have ended: add a new series")
        before = pattern(WeeklyRule.of(series))
        changes: list[str] = []
        new_day = weekday if weekday is not None else int(series["weekday"])
        new_time = start_time or datetime.strptime(series["time"], "%H:%M").time()
        if new_day != int(series["weekday"]) or f"{new_time:%H:%M}" != series["time"]:
            zone = ZoneInfo(series["zone"])
            first = first_date(new_day, new_time, zone, now)
            until = date.fromisoformat(series["until"]) if series.get("until") else None
            if until is not None and until < first:
                raise OfficeHoursError(f"the series ends ({until}) before the new first, {first}")
            trouble = trouble_ahead(zone, new_time, first, until)
            if trouble is not None:
                raise OfficeHoursError(
                    f"{new_time:%H:%M} does not happen exactly once in {zone.key} on "
                    f"{trouble} (the clocks change that night): pick another time"
                )
            series.update(weekday=new_day, time=f"{new_time:%H:%M}", first=first.isoformat())
            series["exceptions"] = {}  # they were weeks of the old day and time
            series["occurrence_answers"] = {}
        if length is not None and int(length.total_seconds() // 60) != series["length_minutes"]:
            if not MIN_LENGTH <= length <= MAX_LENGTH or length % timedelta(minutes=1):
                raise OfficeHoursError("length must be whole minutes from 5m to 12h")
            series["length_minutes"] = int(length.total_seconds() // 60)
        after = pattern(WeeklyRule.of(series))
        if after != before:
            changes.append(f"{before} → {after}")
        removed: list[tuple[str, str]] = []
        if mentors is not None:
            staff = list(mentors)
            if not staff:
                raise OfficeHoursError("office hours need at least one mentor")
            gone = [m for m in staff if m not in series["mentors"] and admin._has_left(m, now)]
            if gone:
                raise OfficeHoursError(
                    f"{', '.join(gone)} can no longer staff office hours (resigned or term ended)"
                )
            for email in series["mentors"]:
                if email not in staff:
                    removed.append((email, admin.announcer.name_in(series, email)))
            added = [m for m in staff if m not in series["mentors"]]
            if removed:
                changes.append("no longer with " + ", ".join(n or e for e, n in removed))
            if added:
                names = [admin.announcer.name_in(series, m) or m for m in added]
                changes.append("now also with " + ", ".join(names))
            series["mentors"] = staff
            for email, _ in removed:
                series["answers"].pop(email, None)
            for email in added:
                series["answers"][email] = "NEEDS-ACTION"
        if not changes:
            raise OfficeHoursError(f"nothing to change: office hours {series_id} are {before}")
        series["sequence"] = _above_all(series)
        series["updated"] = iso(now)
        admin.store.save_series(series)
        admin.store.audit(
            "office hours edited",
            now=now,
            series=series_id,
            sequence=series["sequence"],
            changes=changes,
            **({"by": by} if by else {}),
        )
        admin.announcer.announce_edited(series, removed, changes, now)
        return series, changes


def _above_all(series: Mapping[str, Any]) -> int:
    """A master SEQUENCE above the master's and every occurrence's own (RFC 5545 §3.8.7.4)."""
    own = [int(c["sequence"]) for c in series["exceptions"].values()]
    return max([int(series["sequence"]), *own]) + 1


# --- the warning -----------------------------------------------------------------------------


def uncovered_mentors(store: Store, series: Mapping[str, Any], now: datetime) -> list[str]:
    """A sentence for each staffing mentor whose own weekly hours do not cover the series'
    next occurrence, read in the mentor's zone."""
    coming = next_occurrence(WeeklyRule.of(series), now)
    if coming is None:
        return []
    notes = []
    for email in series["mentors"]:
        mentor = store.mentor(email)
        if mentor is None:
            continue
        try:
            zone = ZoneInfo(str(mentor.get("timezone") or series["zone"]))
        except (KeyError, ValueError):
            zone = ZoneInfo(series["zone"])
        start, end = coming.start.astimezone(zone), coming.end.astimezone(zone)
        begin = start.hour * 60 + start.minute
        finish = begin + int((end - start).total_seconds() // 60)
        covered = any(
            int(day) == start.weekday() and int(lo) <= begin and finish <= int(hi)
            for day, lo, hi in mentor.get("availability") or ()
        )
        if not covered:
            name = mentor.get("name") or email
            notes.append(
                f"{name}'s own hours do not cover these office hours "
                f"({start:%a %H:%M}–{end:%H:%M} in {zone.key})"
            )
    return notes


def session_clashes(
    store: Store, series: Mapping[str, Any], now: datetime, weeks: int = 8
) -> list[str]:
    """A sentence for each live session of a staffing mentor that falls in one of the
    series' occurrences of the next ``weeks`` weeks (booked before the series changed)."""
    rule = WeeklyRule.of(series)
    coming = occurrences(rule, now, now + timedelta(weeks=weeks))
    zone = ZoneInfo(series["zone"])
    notes = []
    for session in store.live_sessions():
        if session.get("mentor") not in series["mentors"]:
            continue
        start, end = from_iso(session["start"]), from_iso(session["end"])
        if any(o.start < end and start < o.end for o in coming):
            notes.append(
                f"{session['mentor']} has a session for MD-{int(session['request']):04d} on "
                f"{start.astimezone(zone):%a %Y-%m-%d %H:%M} ({zone.key}), during these "
                "office hours: move one of them"
            )
    return notes


# --- the letters (a mixin of OfficeHoursDesk) ----------------------------------------------------


class WholeSeries:
    """The letters of a series ended or changed as a whole."""

    if TYPE_CHECKING:

        def event_of(self, series: Mapping[str, Any]) -> SeriesEvent: ...

        def _members(self, series: Mapping[str, Any]) -> list[str]: ...

        def _attendees(self, series: Mapping[str, Any], recipient: str) -> list[Attendee]: ...

        def _name(self, series: Mapping[str, Any], email: str) -> str: ...

        def _view(self, series: Mapping[str, Any], email: str, now: datetime) -> dict[str, Any]: ...

        def feed_url(self, email: str, now: datetime) -> str: ...

        def _send(self, letter: Letter, now: datetime) -> None: ...

    def name_in(self, series: Mapping[str, Any], email: str) -> str:
        return self._name(series, email)

    def announce_ended(self, series: Mapping[str, Any], now: datetime) -> None:
        """METHOD:CANCEL of the whole series to everyone on it."""
        from .office_hours import THREAD, Letter

        event = self.event_of(series)
        for email in self._members(series):
            ics = series_cancel(
                event.head(event.sequence, self._attendees(series, email), now),
                event.weekly_time(),
            )
            context = self._context(series, email, now)
            name = self._name(series, email)
            letter = Letter(
                "office_hours_ended", email, name, context, (THREAD, series["id"]), ics, "CANCEL"
            )
            self._send(letter, now)

    def announce_edited(
        self,
        series: Mapping[str, Any],
        removed: Sequence[tuple[str, str]],
        changes: Sequence[str],
        now: datetime,
    ) -> None:
        """The updated REQUEST to everyone on the series; a CANCEL to mentors taken off."""
        from .office_hours import LEFT_THREAD, THREAD, Letter

        event = self.event_of(series)
        for email in self._members(series):
            ics = series_invitation(event, self._attendees(series, email), now)
            context = {**self._context(series, email, now), "changes": list(changes)}
            name = self._name(series, email)
            letter = Letter(
                "office_hours_updated", email, name, context, (THREAD, series["id"]), ics, "REQUEST"
            )
            self._send(letter, now)
        for email, name in removed:
            ics = series_removal(event, [Attendee(email, name)], now)
            context = {**self._context(series, email, now), "unstaffed": True}
            letter = Letter(
                "office_hours_ended",
                email,
                name,
                context,
                (LEFT_THREAD, series["id"]),
                ics,
                "CANCEL",
            )
            self._send(letter, now)

    def _context(self, series: Mapping[str, Any], email: str, now: datetime) -> dict[str, Any]:
        return {
            "person": {"email": email, "name": self._name(series, email)},
            "series": self._view(series, email, now),
            "host": email in series["mentors"],
            "unstaffed": False,
            "feed_url": self.feed_url(email, now),
        }
