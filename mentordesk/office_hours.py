"""Office hours (SPEC §3 flow 6): weekly drop-in series staffed by mentors.

The coordinator creates a series with the CLI (``create_series``, through ``admin``); its
staffing mentors get the series invitation, an iMIP REQUEST of a weekly RRULE at a fixed
local time (RFC 5546 §3.2.2). Anyone who emails "office hours" joins (``answer``) and gets
the same invitation; "office hours leave" takes them off with a CANCEL sent to them
alone. One occurrence can be cancelled (CANCEL with RECURRENCE-ID, RFC 5546 §3.2.5) or
moved (a REQUEST overriding that RECURRENCE-ID) for everyone on the series. A mentor's
occurrences keep sessions off their time (``busy_for``); answers from calendar clients
are recorded (``handle_reply``). Like the rest of the core it runs on the store's writer
thread, and each public method that writes is one store transaction.

SEQUENCE (RFC 5545 §3.8.7.4, RFC 5546 §2.1.4-2.1.5) is kept per component: the series'
own ``sequence`` belongs to the master VEVENT; each cancelled or moved occurrence gets its
own, higher than anything sent for it before. Clients keep the master at the SEQUENCE
they got and apply an occurrence's CANCEL or override beside it, so their answers to the
series still carry the master's number and are not mistaken for stale ones. Adding or
removing an attendee is no change of the event itself: the newcomer gets a REQUEST and
the leaver a CANCEL, both at the current SEQUENCE and newer by their DTSTAMP.

Privacy (SPEC §6): each person's copy lists the staffing mentors and that person only,
so nobody learns who else joined.

A series doc: id, uid, sequence, title, location, weekday (0 = Monday), time ("18:00",
local), zone (IANA), length_minutes, first and until (local dates of the first and the
last possible occurrence; until may be None), mentors (staffing emails), attendees
(emails of people who joined), names {email: name}, exceptions {original local date:
{"status": "cancelled" | "moved", "start": new local "YYYY-MM-DDTHH:MM", "sequence"}},
answers {email: PARTSTAT}, occurrence_answers {date: {email: PARTSTAT}}, created, updated.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .calendar.invite import (
    Attendee,
    calendar_mime_parts,
    new_uid,
    occurrence_cancel,
    occurrence_move,
    series_cancel,
    series_request,
)
from .calendar.reply import CalendarReply
from .calendar.slots import Busy
from .config import Config, parse_duration
from .errors import MentordeskError
from .feed import FeedSeries, MovedOccurrence, build_feed, feed_url, session_entries
from .inbox.parse import ParsedMessage
from .mailer.outbox import Postman
from .state.store import Store, iso

log = logging.getLogger(__name__)

Links = Callable[[str, str, str, datetime], str]  # (purpose, person, obj, now) → URL

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MIN_LENGTH = timedelta(minutes=5)
MAX_LENGTH = timedelta(hours=12)
# Local times are checked against DST changes this far ahead (or up to the series' end).
CHECK_WEEKS = 5 * 52
# A series is offered to newcomers while it has an occurrence within this time.
LOOKAHEAD = timedelta(days=400)
_ANSWERS = frozenset({"ACCEPTED", "DECLINED", "TENTATIVE", "NEEDS-ACTION"})

_CLOCK = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")
_DAY_AND_CLOCK = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})[ T](\d{1,2}:\d{2})\s*$")
_ADDRESS = re.compile(r"^[^@\s<>\"(),;:]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.[A-Za-z]+$")
_GREETING = re.compile(r"^(?:hi|hello|hey|dear|hallo|hola)\b[^.!?]{0,40}[,!]?$", re.IGNORECASE)
_LEAVE_LINE = re.compile(
    r"^(?:please\s+)?(?:leave|unsubscribe|stop|remove me|opt[- ]?out)\b", re.IGNORECASE
)
_JOIN_LINE = re.compile(r"^(?:please\s+)?(?:re-?join|join|sign me up|add me)\b", re.IGNORECASE)


class OfficeHoursError(MentordeskError):
    """A coordinator's office-hours command cannot be applied; the message says why."""


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a series: its original local date and when it actually happens."""

    original: date  # the date of the rule's occurrence (what RECURRENCE-ID names)
    start: datetime  # aware, in the series' zone (moved, if it was)
    end: datetime
    moved: bool


# --- reading a series doc (pure) ------------------------------------------------------------


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


def zone_of(series: Mapping[str, Any]) -> ZoneInfo:
    return ZoneInfo(series["zone"])


def local_start(series: Mapping[str, Any], day: date) -> datetime:
    """The rule's start on ``day``, aware, in the series' zone."""
    return datetime.combine(day, time.fromisoformat(series["time"]), zone_of(series))


def length_of(series: Mapping[str, Any]) -> timedelta:
    return timedelta(minutes=int(series["length_minutes"]))


def until_of(series: Mapping[str, Any]) -> date | None:
    return date.fromisoformat(series["until"]) if series.get("until") else None


def is_rule_date(series: Mapping[str, Any], day: date) -> bool:
    """Does the weekly rule have an occurrence on ``day`` (cancelled or not)?"""
    first = date.fromisoformat(series["first"])
    until = until_of(series)
    return day >= first and (until is None or day <= until) and (day - first).days % 7 == 0


def occurrences(
    series: Mapping[str, Any], start_utc: datetime, end_utc: datetime
) -> list[Occurrence]:
    """The occurrences of ``series`` overlapping ``[start_utc, end_utc)``, in time order.

    Weekly from ``first`` to ``until`` at the local time in the series' zone (so the UTC
    time follows DST), minus cancelled ones; moved ones at their new time.
    """
    zone = zone_of(series)
    length = length_of(series)
    first = date.fromisoformat(series["first"])
    until = until_of(series)
    exceptions: Mapping[str, Mapping[str, Any]] = series.get("exceptions") or {}
    found: list[Occurrence] = []

    def overlaps(start: datetime) -> bool:
        # _end, not start + length: that would be wall-clock arithmetic in the zone.
        return start < end_utc and _end(start, length) > start_utc

    # A day either side: local dates differ from UTC ones by up to a day.
    day = max(first, (start_utc - length).astimezone(zone).date() - timedelta(days=1))
    day += timedelta(days=(first.weekday() - day.weekday()) % 7)
    last = end_utc.astimezone(zone).date() + timedelta(days=1)
    if until is not None:
        last = min(last, until)
    while day <= last:
        if day.isoformat() not in exceptions:
            start = local_start(series, day)
            if overlaps(start):
                found.append(Occurrence(day, start, _end(start, length), False))
        day += timedelta(days=7)
    for key, change in exceptions.items():
        if change.get("status") == "moved":
            start = datetime.fromisoformat(change["start"]).replace(tzinfo=zone)
            if overlaps(start):
                found.append(Occurrence(date.fromisoformat(key), start, _end(start, length), True))
    found.sort(key=lambda o: (o.start, o.original))
    return found


def next_occurrence(series: Mapping[str, Any], now: datetime) -> Occurrence | None:
    """The first occurrence that has not ended by ``now`` (within ``LOOKAHEAD``)."""
    found = occurrences(series, now, now + LOOKAHEAD)
    return found[0] if found else None


def clock_trouble(zone: ZoneInfo, wall: time, days: Sequence[date]) -> date | None:
    """The first of ``days`` on which ``wall`` is skipped or repeated by a DST change.

    Calendar clients disagree about such times (see ``series_request``), so they are
    refused rather than guessed.
    """
    for day in days:
        early = datetime.combine(day, wall, zone)
        if early.utcoffset() != early.replace(fold=1).utcoffset():
            return day
    return None


def _end(start: datetime, length: timedelta) -> datetime:
    """``start + length`` in elapsed time, in ``start``'s zone."""
    assert start.tzinfo is not None
    return (start.astimezone(UTC) + length).astimezone(start.tzinfo)


def says_leave(new_text: str) -> bool:
    """Does the first line that is not a greeting ask to leave ("leave", "Stop please")?"""
    return bool(_LEAVE_LINE.match(_first_line(new_text)))


def says_join(new_text: str) -> bool:
    """Does the first line that is not a greeting ask to join ("join", "rejoin please")?"""
    return bool(_JOIN_LINE.match(_first_line(new_text)))


def _first_line(new_text: str) -> str:
    for line in new_text.splitlines():
        line = line.strip()
        if line and not _GREETING.match(line):
            return line
    return ""


# --- the desk ----------------------------------------------------------------------------------


class OfficeHoursDesk:
    """Runs the office-hours series: create, join, leave, cancel or move one, answers, feed.

    ``links`` makes signed links (``ClaimDesk.link``); it is taken for the one-click links
    the office-hours emails may carry later, like the other desks.
    """

    def __init__(self, config: Config, store: Store, postman: Postman, links: Links) -> None:
        self.config = config
        self.store = store
        self.postman = postman
        self.links = links

    # The coordinator (CLI) ---------------------------------------------------------------

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
        today = now.astimezone(tz).date()
        first = today + timedelta(days=(weekday - today.weekday()) % 7)
        if datetime.combine(first, start_time, tz) <= now:
            first += timedelta(days=7)
        if until is not None and until < first:
            raise OfficeHoursError(
                f"the series would end ({until}) before its first {WEEKDAYS[weekday]}, {first}"
            )
        days = [first + timedelta(weeks=k) for k in range(CHECK_WEEKS)]
        trouble = clock_trouble(tz, start_time, [d for d in days if until is None or d <= until])
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
            )
            for email in staff:
                self._invite(series, email, now, role="host")
            return series

    def cancel_occurrence(self, series_id: int, day: date, now: datetime) -> dict[str, Any]:
        """Cancel the occurrence originally on ``day`` for everyone on the series."""
        with self.store.transaction():
            series = self._series(series_id)
            occurrence = self._occurrence(series, day, now)
            key = day.isoformat()
            sequence = self._next_sequence(series, key)
            series["exceptions"][key] = {"status": "cancelled", "sequence": sequence}
            series["updated"] = iso(now)
            self.store.save_series(series)
            self.store.audit(
                "office hours cancelled", now=now, series=series_id, date=key, sequence=sequence
            )
            for email in self._members(series):
                ics = occurrence_cancel(
                    uid=series["uid"],
                    sequence=sequence,
                    recurrence_id_local=local_start(series, day),
                    length=length_of(series),
                    summary=series["title"],
                    organizer=self.config.program.address,
                    organizer_name=self.config.program.name,
                    attendees=self._attendees(series, email),
                    now=now,
                )
                self._send_change(series, email, ics, "CANCEL", occurrence, None, now)
            return series

    def move_occurrence(
        self, series_id: int, day: date, new_start: datetime, now: datetime
    ) -> dict[str, Any]:
        """Move the occurrence originally on ``day`` to ``new_start`` (naive: series' zone)."""
        with self.store.transaction():
            series = self._series(series_id)
            occurrence = self._occurrence(series, day, now)
            zone = zone_of(series)
            wall = new_start.replace(tzinfo=None)
            if clock_trouble(zone, wall.time(), [wall.date()]) is not None:
                raise OfficeHoursError(
                    f"{wall:%Y-%m-%d %H:%M} happens twice or not at all in {zone.key} "
                    "(the clocks change that night): pick another time"
                )
            start = wall.replace(tzinfo=zone)
            if start <= now:
                raise OfficeHoursError(f"{wall:%Y-%m-%d %H:%M} ({zone.key}) has passed")
            key = day.isoformat()
            sequence = self._next_sequence(series, key)
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
            )
            moved = Occurrence(day, start, _end(start, length_of(series)), True)
            for email in self._members(series):
                ics = occurrence_move(
                    uid=series["uid"],
                    sequence=sequence,
                    recurrence_id_local=local_start(series, day),
                    new_start_local=start,
                    length=length_of(series),
                    summary=series["title"],
                    description=self._description(series),
                    location=series["location"],
                    organizer=self.config.program.address,
                    organizer_name=self.config.program.name,
                    attendees=self._attendees(series, email),
                    now=now,
                )
                self._send_change(series, email, ics, "REQUEST", occurrence, moved, now)
            return series

    def admin(self, command: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """Apply one coordinator command, as the CLI sends it (JSON), and say what happened.

        ``{"action": "add", "weekday": "thu", "time": "18:00", "zone": "Europe/Berlin",
        "length": "60m", "mentors": [...], "until": "2027-06-30", "title", "location"}``,
        ``{"action": "list"}``, ``{"action": "cancel", "id": 1, "date": "2026-04-02"}``,
        ``{"action": "move", "id": 1, "date": "2026-04-02", "to": "19:00"}`` (or
        ``"2026-04-03 19:00"``). Raises OfficeHoursError naming what is wrong.
        """
        action = command.get("action")
        if action == "list":
            return {"series": [self.describe(s, now) for s in self.store.all_series()]}
        if action == "add":
            mentors = command.get("mentors")
            if not isinstance(mentors, list) or not all(isinstance(m, str) for m in mentors):
                raise OfficeHoursError("mentors must be a list of email addresses")
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
            )
            unknown = [m for m in series["mentors"] if self.store.mentor(m) is None]
            warnings = [f"{m} is not an enrolled mentor (invited all the same)" for m in unknown]
            return {"series": self.describe(series, now), "warnings": warnings}
        if action in ("cancel", "move"):
            series_id = command.get("id")
            if isinstance(series_id, bool) or not isinstance(series_id, int):
                raise OfficeHoursError(f"id must be a series number, got {series_id!r}")
            day = _day(_text(command, "date"))
            if action == "cancel":
                series = self.cancel_occurrence(series_id, day, now)
            else:
                series = self.move_occurrence(series_id, day, _new_time(command, day), now)
            return {"series": self.describe(series, now)}
        raise OfficeHoursError(f"unknown action {action!r}: want add, list, cancel or move")

    def describe(self, series: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """A series as the CLI shows it (JSON-able)."""
        coming = occurrences(series, now, now + timedelta(weeks=4))
        return {
            "id": series["id"],
            "title": series["title"],
            "when": self._pattern(series),
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
        }

    # People by email -------------------------------------------------------------------------

    def answer(self, msg: ParsedMessage, now: datetime, *, leave: bool = False) -> None:
        """Someone wrote "office hours": join them, or take them off ("leave", subject or body)."""
        with self.store.transaction():
            thread = self.store.thread([*msg.references, *msg.in_reply_to])
            answers = str(thread["kind"]) if thread else ""
            if leave or says_leave(msg.new_text):
                self._leave(msg, now)
            elif not answers.startswith("office-hours") or (
                answers == "office-hours-left" and says_join(msg.new_text)
            ):
                self._join(msg, now)
            else:
                # "Thanks!" or a question in answer to one of our office-hours emails:
                # sending the invitation again would not answer it; a person will.
                self.store.audit("office hours reply", now=now, sender=msg.sender)
                self._tell_coordinator(msg, now, "a reply about office hours")

    def _join(self, msg: ParsedMessage, now: datetime) -> None:
        email = msg.sender
        open_series = [s for s in self.store.all_series() if next_occurrence(s, now)]
        if not open_series:
            self.store.audit("office hours asked, none scheduled", now=now, sender=email)
            self._reply(msg, "office_hours_none", now, {"situation": "none"})
            self._tell_coordinator(msg, now, "someone asked for office hours; none are scheduled")
            return
        replies: list[tuple[dict[str, Any], str, bool]] = []
        for series in open_series:
            if email in series["mentors"]:
                replies.append((series, "host", True))
                continue
            already = email in series["attendees"]
            if not already:
                series["attendees"].append(email)
                series["answers"][email] = "NEEDS-ACTION"
            if msg.sender_name:
                series["names"][email] = msg.sender_name
            series["updated"] = iso(now)
            self.store.save_series(series)
            self.store.audit(
                "office hours joined" if not already else "office hours invitation resent",
                now=now,
                series=series["id"],
                person=email,
            )
            replies.append((series, "guest", already))
        if not self._may_answer(email, now):
            return
        for series, role, already in replies:
            self._invite(series, email, now, role=role, already=already, answering=msg)

    def _leave(self, msg: ParsedMessage, now: datetime) -> None:
        email = msg.sender
        left = [s for s in self.store.all_series() if email in s["attendees"]]
        for series in left:
            series["attendees"].remove(email)
            series["answers"].pop(email, None)
            series["names"].pop(email, None)
            for answers in series["occurrence_answers"].values():
                answers.pop(email, None)
            series["updated"] = iso(now)
            self.store.save_series(series)
            self.store.audit("office hours left", now=now, series=series["id"], person=email)
        if left:
            if not self._may_answer(email, now):
                return
            for series in left:
                self._send_leave(series, email, msg, now)
            return
        if any(email in s["mentors"] for s in self.store.all_series()):
            self._reply(msg, "office_hours_none", now, {"situation": "host"})
            self._tell_coordinator(msg, now, "a staffing mentor asked to leave office hours")
            return
        self._reply(msg, "office_hours_none", now, {"situation": "not_joined"})

    # Calendar answers (RFC 5546 §3.2.3) ------------------------------------------------------

    def handle_reply(self, reply: CalendarReply, sender: str, now: datetime) -> bool:
        """Record an attendee's answer to a series or one occurrence of it.

        True when ``reply.uid`` is an office-hours series (whatever became of the answer:
        refused, stale or recorded); False when it is not ours.
        """
        series = next((s for s in self.store.all_series() if s["uid"] == reply.uid), None)
        if series is None:
            return False
        with self.store.transaction():
            attendee, sender = reply.attendee.lower(), sender.strip().lower()
            detail = {"series": series["id"], "attendee": attendee, "sender": sender}
            if attendee not in self._members(series) or sender != attendee:
                # Only an attendee speaks for themself: a forwarded invitation answered by
                # someone else changes nothing.
                self.store.audit("office hours answer refused", now=now, **detail)
                return True
            if reply.method != "REPLY":
                # A COUNTER: office hours keep their time; a person decides about changes.
                self.store.audit("office hours counter ignored", now=now, **detail)
                return True
            key = None
            if reply.recurrence_id is not None:
                day = reply.recurrence_id.astimezone(zone_of(series)).date()
                if not is_rule_date(series, day):
                    self.store.audit("office hours answer for no occurrence", now=now, **detail)
                    return True
                key = day.isoformat()
            if reply.sequence < self._sequence_of(series, key):
                self.store.audit(
                    "office hours answer stale", now=now, sequence=reply.sequence, **detail
                )
                return True
            partstat = (reply.partstat or "NEEDS-ACTION").upper()
            if partstat not in _ANSWERS:
                partstat = "NEEDS-ACTION"
            if key is None:
                series["answers"][attendee] = partstat
            else:
                series["occurrence_answers"].setdefault(key, {})[attendee] = partstat
            series["updated"] = iso(now)
            self.store.save_series(series)
            self.store.audit("office hours answer", now=now, date=key, partstat=partstat, **detail)
            if partstat == "DECLINED" and attendee in series["mentors"] and key is None:
                self._tell_coordinator(
                    None,
                    now,
                    f"{attendee} declined to staff office hours {series['id']} ({series['title']})",
                )
            return True

    # Sessions stay off office hours ------------------------------------------------------------

    def busy_for(self, mentor_email: str, start_utc: datetime, end_utc: datetime) -> list[Busy]:
        """The occurrences ``mentor_email`` staffs that overlap ``[start_utc, end_utc)``, in UTC."""
        email = mentor_email.strip().lower()
        busy = [
            Busy(o.start.astimezone(UTC), o.end.astimezone(UTC))
            for series in self.store.all_series()
            if email in series["mentors"]
            for o in occurrences(series, start_utc, end_utc)
        ]
        busy.sort(key=lambda b: b.start)
        return busy

    # The calendar feed ---------------------------------------------------------------------------

    def feed_url(self, email: str, now: datetime) -> str:
        """The private calendar-feed address of ``email`` (sessions and office hours)."""
        return feed_url(self.config, email, now)

    def feed(self, email: str, now: datetime) -> bytes:
        """The calendar feed of ``email``: their sessions and the series they staff or joined."""
        email = email.strip().lower()
        name = (self.store.mentor(email) or {}).get("name") or email
        series = [
            self._feed_series(s)
            for s in self.store.all_series()
            if email in self._members(s) and next_occurrence(s, now - timedelta(days=90))
        ]
        return build_feed(
            name=f"{self.config.program.name}: {name}",
            entries=session_entries(self.config, self.store, email, now),
            series=series,
            now=now,
        )

    def _feed_series(self, series: Mapping[str, Any]) -> FeedSeries:
        exceptions = series["exceptions"]
        return FeedSeries(
            uid=series["uid"],
            sequence=int(series["sequence"]),
            first_start_local=local_start(series, date.fromisoformat(series["first"])),
            length=length_of(series),
            weekly_until=self._weekly_until(series),
            summary=series["title"],
            description=self._description(series),
            location=series["location"],
            exdates=tuple(
                local_start(series, date.fromisoformat(key))
                for key, change in sorted(exceptions.items())
                if change["status"] == "cancelled"
            ),
            moved=tuple(
                MovedOccurrence(
                    local_start(series, date.fromisoformat(key)),
                    datetime.fromisoformat(change["start"]).replace(tzinfo=zone_of(series)),
                    int(change["sequence"]),
                )
                for key, change in sorted(exceptions.items())
                if change["status"] == "moved"
            ),
        )

    # Invitations and notices ------------------------------------------------------------------

    def series_ics(self, series: Mapping[str, Any], email: str, now: datetime) -> bytes:
        """The REQUEST ``email`` gets: the series with its cancelled and moved occurrences."""
        exceptions = series["exceptions"]
        master = series_request(
            uid=series["uid"],
            sequence=int(series["sequence"]),
            first_start_local=local_start(series, date.fromisoformat(series["first"])),
            length=length_of(series),
            weekly_until=self._weekly_until(series),
            summary=series["title"],
            description=self._description(series),
            location=series["location"],
            organizer=self.config.program.address,
            organizer_name=self.config.program.name,
            attendees=self._attendees(series, email),
            now=now,
            exdates=[
                local_start(series, date.fromisoformat(key))
                for key, change in sorted(exceptions.items())
                if change["status"] == "cancelled"
            ],
        )
        # A moved occurrence travels as an overriding VEVENT of the same UID beside the
        # master (RFC 5545 §3.8.4.4), with its own SEQUENCE.
        overrides = [
            occurrence_move(
                uid=series["uid"],
                sequence=int(change["sequence"]),
                recurrence_id_local=local_start(series, date.fromisoformat(key)),
                new_start_local=datetime.fromisoformat(change["start"]).replace(
                    tzinfo=zone_of(series)
                ),
                length=length_of(series),
                summary=series["title"],
                description=self._description(series),
                location=series["location"],
                organizer=self.config.program.address,
                organizer_name=self.config.program.name,
                attendees=self._attendees(series, email),
                now=now,
            )
            for key, change in sorted(exceptions.items())
            if change["status"] == "moved"
        ]
        return _with_overrides(master, overrides)

    def _invite(
        self,
        series: Mapping[str, Any],
        email: str,
        now: datetime,
        *,
        role: str,
        already: bool = False,
        answering: ParsedMessage | None = None,
    ) -> None:
        if self.store.is_bounced(email):
            self.store.audit("not sent: address bounced", now=now, to=email)
            return
        inline, attachment = calendar_mime_parts(self.series_ics(series, email, now), "REQUEST")
        self.postman.send(
            "office_hours_invite",
            to=email,
            to_name=self._name(series, email),
            now=now,
            context={
                "person": {"email": email, "name": self._name(series, email)},
                "series": self._view(series, email, now),
                "host": role == "host",
                "already": already,
                "feed_url": self.feed_url(email, now),
            },
            answering=answering,
            thread=("office-hours", series["id"]),
            alternatives=[inline],
            attachments=[attachment],
        )

    def _send_leave(
        self, series: Mapping[str, Any], email: str, msg: ParsedMessage, now: datetime
    ) -> None:
        if self.store.is_bounced(email):
            return
        name = msg.sender_name
        ics = series_cancel(
            uid=series["uid"],
            sequence=int(series["sequence"]),
            first_start_local=local_start(series, date.fromisoformat(series["first"])),
            length=length_of(series),
            weekly_until=self._weekly_until(series),
            summary=series["title"],
            organizer=self.config.program.address,
            organizer_name=self.config.program.name,
            # RFC 5546 §3.2.5: the CANCEL that takes one attendee off names that attendee.
            attendees=[Attendee(email, name)],
            now=now,
        )
        inline, attachment = calendar_mime_parts(ics, "CANCEL")
        self.postman.send(
            "office_hours_left",
            to=email,
            to_name=name,
            now=now,
            context={
                "person": {"email": email, "name": name},
                "series": self._view(series, email, now),
            },
            answering=msg,
            thread=("office-hours-left", series["id"]),
            alternatives=[inline],
            attachments=[attachment],
        )

    def _send_change(
        self,
        series: Mapping[str, Any],
        email: str,
        ics: bytes,
        method: str,
        was: Occurrence,
        moved: Occurrence | None,
        now: datetime,
    ) -> None:
        if self.store.is_bounced(email):
            self.store.audit("not sent: address bounced", now=now, to=email)
            return
        zone = self._zone_for(series, email)
        inline, attachment = calendar_mime_parts(ics, method)
        self.postman.send(
            "office_hours_change",
            to=email,
            to_name=self._name(series, email),
            now=now,
            context={
                "person": {"email": email, "name": self._name(series, email)},
                "series": self._view(series, email, now),
                "host": email in series["mentors"],
                "was": _when(was.start, was.end, zone),
                "was_day": f"{was.start.astimezone(zone):%A %-d %B}",
                "moved_to": _when(moved.start, moved.end, zone) if moved else "",
                "moved_to_short": f"{moved.start.astimezone(zone):%A %-d %B at %H:%M} ({zone.key})"
                if moved
                else "",
                "feed_url": self.feed_url(email, now),
            },
            thread=("office-hours", series["id"]),
            alternatives=[inline],
            attachments=[attachment],
        )

    def _view(self, series: Mapping[str, Any], email: str, now: datetime) -> dict[str, Any]:
        """The series in the reader's own words: their zone where we know it."""
        zone = self._zone_for(series, email)
        coming = next_occurrence(series, now)
        your_time = ""
        if zone.key != series["zone"] and coming is not None:
            start, end = coming.start.astimezone(zone), coming.end.astimezone(zone)
            your_time = f"{start:%A}s, {start:%H:%M}–{end:%H:%M} ({zone.key})"
        until = until_of(series)
        staff = [self._name(series, m) or m for m in series["mentors"]]
        title = str(series["title"])
        return {
            "id": series["id"],
            "title": title,
            # Subjects always say "office hours", so answers find their way back here.
            "heading": title if "office hours" in title.lower() else f"Office hours – {title}",
            "pattern": self._pattern(series),
            "pattern_short": self._pattern(series, short=True),
            "your_time": your_time,
            "next": _when(coming.start, coming.end, zone) if coming else "",
            "location": series["location"],
            "mentors": _and(staff),
            "until": f"{until:%A %-d %B %Y}" if until else "",
            "length_minutes": series["length_minutes"],
        }

    def _pattern(self, series: Mapping[str, Any], *, short: bool = False) -> str:
        """'every Thursday, 18:00–19:00 (Europe/Berlin)'; short: 'every Thursday at 18:00 (…)'.

        The short form is plain ASCII, for subjects: headers with non-ASCII text become
        RFC 2047 encoded words, which some clients show with stray spaces where folded.
        """
        first = local_start(series, date.fromisoformat(series["first"]))
        day, zone = WEEKDAYS[series["weekday"]], series["zone"]
        if short:
            return f"every {day} at {first:%H:%M} ({zone})"
        end = _end(first, length_of(series))
        return f"every {day}, {first:%H:%M}–{end:%H:%M} ({zone})"

    def _description(self, series: Mapping[str, Any]) -> str:
        staff = _and([self._name(series, m) or m for m in series["mentors"]])
        return (
            f"Drop-in office hours of {self.config.program.name} with {staff}. "
            "No booking needed: bring a question, a project or just say hello.\n"
            f"To stop getting these, email {self.config.program.address} "
            'with the subject "office hours leave".'
        )

    # Helpers ---------------------------------------------------------------------------------

    def _series(self, series_id: int) -> dict[str, Any]:
        series = self.store.series(series_id)
        if series is None:
            known = ", ".join(str(s["id"]) for s in self.store.all_series()) or "none yet"
            raise OfficeHoursError(f"there is no office-hours series {series_id} (known: {known})")
        return series

    def _occurrence(self, series: Mapping[str, Any], day: date, now: datetime) -> Occurrence:
        """The upcoming occurrence originally on ``day``; OfficeHoursError if there is none."""
        if not is_rule_date(series, day):
            raise OfficeHoursError(
                f"{day} ({WEEKDAYS[day.weekday()]}) is not a date of office hours "
                f"{series['id']}: they are {self._pattern(series)}, "
                f"from {series['first']}{' to ' + series['until'] if series.get('until') else ''}"
            )
        change = series["exceptions"].get(day.isoformat())
        if change and change["status"] == "cancelled":
            raise OfficeHoursError(f"office hours {series['id']} on {day} are already cancelled")
        if change and change["status"] == "moved":
            start = datetime.fromisoformat(change["start"]).replace(tzinfo=zone_of(series))
        else:
            start = local_start(series, day)
        if start <= now:
            raise OfficeHoursError(f"office hours {series['id']} on {day} have already begun")
        return Occurrence(day, start, _end(start, length_of(series)), bool(change))

    def _sequence_of(self, series: Mapping[str, Any], key: str | None) -> int:
        """The SEQUENCE last sent for the master (``key`` None) or one occurrence."""
        change = series["exceptions"].get(key) if key else None
        return int(change["sequence"]) if change else int(series["sequence"])

    def _next_sequence(self, series: Mapping[str, Any], key: str) -> int:
        return max(int(series["sequence"]), self._sequence_of(series, key)) + 1

    def _members(self, series: Mapping[str, Any]) -> list[str]:
        return [*series["mentors"], *(a for a in series["attendees"] if a not in series["mentors"])]

    def _attendees(self, series: Mapping[str, Any], recipient: str) -> list[Attendee]:
        """The staffing mentors, and the recipient: nobody sees who else joined (SPEC §6)."""
        people = [Attendee(m, self._name(series, m)) for m in series["mentors"]]
        if recipient not in series["mentors"]:
            people.append(Attendee(recipient, self._name(series, recipient)))
        return people

    def _name(self, series: Mapping[str, Any], email: str) -> str:
        mentor = self.store.mentor(email)
        if mentor and mentor.get("name"):
            return str(mentor["name"])
        return str(series["names"].get(email, ""))

    def _zone_for(self, series: Mapping[str, Any], email: str) -> ZoneInfo:
        """The reader's own zone if we know it (as a mentor or from a request), else the series'."""
        mentor = self.store.mentor(email) or {}
        known = mentor.get("timezone")
        if not known:
            known = next(
                (r["timezone"] for r in self.store.open_requests_of(email) if r.get("timezone")),
                None,
            )
        try:
            return ZoneInfo(known) if known else zone_of(series)
        except (KeyError, ValueError):
            return zone_of(series)

    def _weekly_until(self, series: Mapping[str, Any]) -> datetime | None:
        until = until_of(series)
        return local_start(series, until) if until else None

    def _may_answer(self, email: str, now: datetime) -> bool:
        """Answer a person within the per-sender limit (SPEC §5 loop prevention)."""
        if self.store.is_bounced(email):
            self.store.audit("not answered: address bounced", now=now, to=email)
            return False
        per_hour = self.config.limits.replies_per_sender_per_hour
        if not self.store.take_reply_slot(email, now=now, per_hour=per_hour):
            self.store.audit("not answered: reply limit", now=now, to=email)
            return False
        return True

    def _reply(
        self, msg: ParsedMessage, template: str, now: datetime, context: Mapping[str, Any]
    ) -> None:
        if self._may_answer(msg.sender, now):
            self.postman.send(
                template,
                to=msg.sender,
                to_name=msg.sender_name,
                now=now,
                context={"person": {"email": msg.sender, "name": msg.sender_name}, **context},
                answering=msg,
                thread=("office-hours", None),
            )

    def _tell_coordinator(self, msg: ParsedMessage | None, now: datetime, reason: str) -> None:
        self.store.audit("coordinator told", now=now, reason=reason)
        self.postman.send(
            "coordinator_notice",
            to=self.config.program.coordinator,
            now=now,
            context={
                "reason": reason,
                "error": "",
                "address": "",
                "sender": msg.sender if msg else "",
                "sender_name": msg.sender_name if msg else "",
                "subject": msg.subject if msg else "",
                "excerpt": (msg.new_text or msg.text)[:2000] if msg else "",
            },
        )


# --- small helpers -----------------------------------------------------------------------------


def _with_overrides(master: bytes, overrides: Sequence[bytes]) -> bytes:
    """``master`` with the VEVENTs of ``overrides`` added before its END:VCALENDAR.

    The overrides are built in the master's zone, whose VTIMEZONE the master already has.
    """
    events = b""
    for override in overrides:
        begin = override.index(b"BEGIN:VEVENT\r\n")
        end = override.rindex(b"END:VEVENT\r\n") + len(b"END:VEVENT\r\n")
        events += override[begin:end]
    at = master.rindex(b"END:VCALENDAR\r\n")
    return master[:at] + events + master[at:]


def _when(start: datetime, end: datetime, zone: ZoneInfo) -> str:
    """'Thursday 26 November, 18:00–19:00 (Europe/Berlin)'."""
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    return f"{local_start:%A %-d %B}, {local_start:%H:%M}–{local_end:%H:%M} ({zone.key})"


def _and(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


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
