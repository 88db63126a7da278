"""Office hours (SPEC §3 flow 6): weekly drop-in series staffed by mentors.

The coordinator defines a series (``flows.office_hours_admin``); the mentors who staff it
get the series invitation, an iMIP REQUEST of a weekly RRULE at a fixed local time
(RFC 5546 §3.2.2). Anyone who emails "office hours" joins every series that runs and gets
the same invitation. Membership is per series (SPEC §3a): "leave" in a series' thread (a
reply to one of its emails) takes the person off that series; "office hours leave" in a
fresh email takes them off all, one CANCEL per series, sent to them alone. One occurrence
can be cancelled (CANCEL with RECURRENCE-ID, RFC 5546 §3.2.5) or moved (a REQUEST
overriding that RECURRENCE-ID) for everyone on the series. A mentor who resigns or whose
term ends comes off every series they staff (``remove_mentor``); the coordinator hears
when a series has no mentor left. A mentor's occurrences keep sessions off their time
(``busy_for``); answers from calendar clients are recorded (``handle_reply``). Like the
rest of the core it runs on the store's writer thread, and each public method that
writes is one store transaction.

SEQUENCE (RFC 5545 §3.8.7.4, RFC 5546 §2.1.4-2.1.5) is kept per component: the series'
own ``sequence`` belongs to the master VEVENT; each cancelled or moved occurrence gets its
own, higher than anything sent for it before. Clients keep the master at the SEQUENCE
they got and apply an occurrence's CANCEL or override beside it, so their answers to the
series still carry the master's number and are not mistaken for stale ones. Adding or
removing an attendee (or a mentor) is no change of the event itself: the newcomer gets a
REQUEST and the leaver a CANCEL, both at the current SEQUENCE and newer by their DTSTAMP;
nobody else is sent anything, and their copies stay valid.

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
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ..calendar.invite import Attendee, calendar_mime_parts
from ..calendar.recurrence import (
    Occurrence,
    WeeklyRule,
    is_rule_date,
    next_occurrence,
    occurrences,
    pattern,
    when,
)
from ..calendar.reply import CalendarReply
from ..calendar.series import (
    SeriesEvent,
    drop_in_description,
    occurrence_cancellation,
    occurrence_override,
    series_invitation,
    series_removal,
)
from ..calendar.slots import Busy
from ..config import Config
from ..errors import OfficeHoursError
from ..feed import FEED_HISTORY, feed_url, person_feed
from ..inbox.parse import ParsedMessage
from ..inbox.quoting import is_greeting_line
from ..mailer.outbox import Postman
from ..state.store import Store, iso
from .office_hours_admin import OfficeHoursAdmin
from .office_hours_whole import WholeSeries

__all__ = ["OfficeHoursDesk", "OfficeHoursError", "says_join", "says_leave"]

log = logging.getLogger(__name__)

Links = Callable[[str, str, str, datetime], str]  # (purpose, person, obj, now) → URL

# Thread kinds (``Postman.send(thread=...)``): replies to a series' emails carry its id.
THREAD = "office-hours"
LEFT_THREAD = "office-hours-left"  # the confirmation that someone is off a series
_ANSWERS = frozenset({"ACCEPTED", "DECLINED", "TENTATIVE", "NEEDS-ACTION"})

_LEAVE_LINE = re.compile(
    r"^(?:please\s+)?(?:leave|unsubscribe|stop|remove me|opt[- ]?out)\b", re.IGNORECASE
)
_JOIN_LINE = re.compile(r"^(?:please\s+)?(?:re-?join|join|sign me up|add me)\b", re.IGNORECASE)


def says_leave(new_text: str) -> bool:
    """Does the first line that is not a greeting ask to leave ("leave", "Stop please")?"""
    return bool(_LEAVE_LINE.match(_first_line(new_text)))


def says_join(new_text: str) -> bool:
    """Does the first line that is not a greeting ask to join ("join", "rejoin please")?"""
    return bool(_JOIN_LINE.match(_first_line(new_text)))


def _first_line(new_text: str) -> str:
    for line in new_text.splitlines():
        line = line.strip()
        if line and not is_greeting_line(line):
            return line
    return ""


@dataclass(frozen=True)
class Letter:
    """One email of this flow to one person, as the mail gate takes it."""

    template: str
    to: str
    to_name: str
    context: Mapping[str, Any]
    thread: tuple[str, Any]
    ics: bytes | None = None
    method: str = ""  # the ics's iTIP METHOD


class OfficeHoursDesk(WholeSeries):
    """Runs the office-hours series: join, leave, answers, one occurrence, busy times, feed.

    The coordinator's commands are ``commands`` (``flows.office_hours_admin``); ``admin``
    is their entry for the CLI. ``links`` makes signed links (``ClaimDesk.link``), taken
    for the one-click links the office-hours emails may carry later, like the other desks.
    """

    def __init__(self, config: Config, store: Store, postman: Postman, links: Links) -> None:
        self.config = config
        self.store = store
        self.postman = postman
        self.links = links
        self.commands = OfficeHoursAdmin(config, store, self)

    def admin(self, command: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """Apply one coordinator command (``OfficeHoursAdmin.admin``) and say what happened."""
        return self.commands.admin(command, now)

    # People by email ---------------------------------------------------------------------

    def answer(self, msg: ParsedMessage, now: datetime, *, leave: bool = False) -> None:
        """Someone wrote "office hours": join them, or take them off ("leave", subject or body).

        In a series' thread both mean that series; in a fresh email, every series.
        """
        with self.store.transaction():
            thread = self.store.thread([*msg.references, *msg.in_reply_to])
            kind = str(thread["kind"]) if thread else ""
            series = self._series_of(thread)
            if leave or says_leave(msg.new_text):
                self._leave(msg, series, now)
            elif kind not in (THREAD, LEFT_THREAD) or (
                kind == LEFT_THREAD and says_join(msg.new_text)
            ):
                self._join(msg, series if kind == LEFT_THREAD else None, now)
            else:
                # "Thanks!" or a question in answer to one of our office-hours emails:
                # sending the invitation again would not answer it; a person will.
                self.store.audit("office hours reply", now=now, sender=msg.sender)
                self._tell_coordinator(msg, now, "a reply about office hours")

    def _join(self, msg: ParsedMessage, only: dict[str, Any] | None, now: datetime) -> None:
        """Put the sender on ``only`` (a rejoin) if it runs, else on every series that runs."""
        email = msg.sender
        running = [s for s in self.store.all_series() if self._running(s, now)]
        if only is not None and self._running(only, now):
            running = [only]
        if not running:
            self.store.audit("office hours asked, none scheduled", now=now, sender=email)
            self._reply(msg, [self._none_letter(msg, "none")], now)
            self._tell_coordinator(msg, now, "someone asked for office hours; none are scheduled")
            return
        letters: list[Letter] = []
        for series in running:
            if email in series["mentors"]:
                letters.append(self._invitation(series, email, now, host=True, already=True))
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
            letters.append(self._invitation(series, email, now, host=False, already=already))
        self._reply(msg, letters, now)

    def _leave(self, msg: ParsedMessage, only: dict[str, Any] | None, now: datetime) -> None:
        """Take the sender off ``only`` (said in its thread), or off every series they joined."""
        email = msg.sender
        candidates = [only] if only is not None else self.store.all_series()
        left = [s for s in candidates if email in s["attendees"]]
        for series in left:
            series["attendees"].remove(email)
            self._forget(series, email, now)
            self.store.audit("office hours left", now=now, series=series["id"], person=email)
        if left:
            self._reply(msg, [self._removal(s, email, msg.sender_name, now) for s in left], now)
        elif any(email in s["mentors"] for s in candidates):
            self._reply(msg, [self._none_letter(msg, "host")], now)
            self._tell_coordinator(msg, now, "a staffing mentor asked to leave office hours")
        else:
            self._reply(msg, [self._none_letter(msg, "not_joined")], now)

    def _series_of(self, thread: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The series whose thread ``thread`` is (its invitation, a change, a confirmation)."""
        if thread is None or thread["kind"] not in (THREAD, LEFT_THREAD) or thread["ref"] is None:
            return None
        return self.store.series(int(thread["ref"]))

    # Mentors leaving (SPEC §3a) ---------------------------------------------------------------

    def remove_mentor(self, email: str, now: datetime) -> list[int]:
        """Take a mentor who resigned or whose term ended off every series they staff.

        Each running series they staff drops them, and they get its CANCEL for their own
        calendar, as a leaving attendee does; everyone else's copy stays as it is (see the
        module docstring). A series that has ended keeps its history. Returns the ids of the
        series left with no mentor at all; the coordinator gets one email naming them.
        """
        email = email.strip().lower()
        with self.store.transaction():
            staffed = [
                s
                for s in self.store.all_series()
                if email in s["mentors"] and self._running(s, now, staffed=False)
            ]
            for series in staffed:
                name = self._name(series, email)
                series["mentors"].remove(email)
                self._forget(series, email, now)
                self.store.audit(
                    "office hours mentor removed", now=now, series=series["id"], mentor=email
                )
                self._send(self._removal(series, email, name, now), now)
            unstaffed = [s for s in staffed if not s["mentors"]]
            if unstaffed:
                names = "; ".join(
                    f"office hours {s['id']} ({s['title']}, "
                    f"{pattern(WeeklyRule.of(s), short=True)})"
                    for s in unstaffed
                )
                self._tell_coordinator(
                    None, now, f"no mentor staffs {names} now that {email} has left"
                )
            return [int(s["id"]) for s in unstaffed]

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
            event = self.event_of(series)
            day = None
            if reply.recurrence_id is not None:
                day = reply.recurrence_id.astimezone(event.rule.zone).date()
                if not is_rule_date(event.rule, day):
                    self.store.audit("office hours answer for no occurrence", now=now, **detail)
                    return True
            key = day.isoformat() if day else None
            if reply.sequence < event.sequence_of(day):
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
            for o in occurrences(WeeklyRule.of(series), start_utc, end_utc)
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
        since = now - FEED_HISTORY
        series = [
            self.event_of(s)
            for s in self.store.all_series()
            if email in self._members(s) and next_occurrence(WeeklyRule.of(s), since)
        ]
        return person_feed(self.config, self.store, email, series, now)

    # What the coordinator's commands announce (``office_hours_admin.Announcer``) -------------

    def event_of(self, series: Mapping[str, Any]) -> SeriesEvent:
        """What every calendar copy of ``series`` shares."""
        program = Attendee(self.config.program.address, self.config.program.name)
        description = drop_in_description(program, self._hosts(series))
        return SeriesEvent.of(series, description=description, organizer=program)

    def invite_staff(self, series: Mapping[str, Any], now: datetime) -> None:
        """Send a new series' invitation to the mentors who staff it."""
        for email in series["mentors"]:
            self._send(self._invitation(series, email, now, host=True), now)

    def announce_cancelled(self, series: Mapping[str, Any], was: Occurrence, now: datetime) -> None:
        """Tell everyone on the series that the occurrence ``was`` is cancelled."""
        event = self.event_of(series)
        for email in self._members(series):
            ics = occurrence_cancellation(event, was.original, self._attendees(series, email), now)
            self._send(self._change(series, email, ics, "CANCEL", was, None, now), now)

    def announce_moved(
        self, series: Mapping[str, Any], was: Occurrence, moved: Occurrence, now: datetime
    ) -> None:
        """Tell everyone on the series that the occurrence ``was`` happens at ``moved``."""
        event = self.event_of(series)
        for email in self._members(series):
            ics = occurrence_override(event, was.original, self._attendees(series, email), now)
            self._send(self._change(series, email, ics, "REQUEST", was, moved, now), now)

    # The letters -------------------------------------------------------------------------------

    def _invitation(
        self,
        series: Mapping[str, Any],
        email: str,
        now: datetime,
        *,
        host: bool,
        already: bool = False,
    ) -> Letter:
        name = self._name(series, email)
        context = {
            "person": {"email": email, "name": name},
            "series": self._view(series, email, now),
            "host": host,
            "already": already,
            "feed_url": self.feed_url(email, now),
        }
        ics = series_invitation(self.event_of(series), self._attendees(series, email), now)
        return Letter(
            "office_hours_invite", email, name, context, (THREAD, series["id"]), ics, "REQUEST"
        )

    def _removal(self, series: Mapping[str, Any], email: str, name: str, now: datetime) -> Letter:
        """The CANCEL that takes ``email`` off ``series``, naming them alone (RFC 5546 §3.2.5)."""
        ics = series_removal(self.event_of(series), [Attendee(email, name)], now)
        context = {
            "person": {"email": email, "name": name},
            "series": self._view(series, email, now),
        }
        return Letter(
            "office_hours_left", email, name, context, (LEFT_THREAD, series["id"]), ics, "CANCEL"
        )

    def _change(
        self,
        series: Mapping[str, Any],
        email: str,
        ics: bytes,
        method: str,
        was: Occurrence,
        moved: Occurrence | None,
        now: datetime,
    ) -> Letter:
        zone = self._zone_for(series, email)
        name = self._name(series, email)
        context = {
            "person": {"email": email, "name": name},
            "series": self._view(series, email, now),
            "host": email in series["mentors"],
            "was": when(was.start, was.end, zone),
            "was_day": f"{was.start.astimezone(zone):%A %-d %B}",
            "moved_to": when(moved.start, moved.end, zone) if moved else "",
            "moved_to_short": f"{moved.start.astimezone(zone):%A %-d %B at %H:%M} ({zone.key})"
            if moved
            else "",
            "feed_url": self.feed_url(email, now),
        }
        return Letter(
            "office_hours_change", email, name, context, (THREAD, series["id"]), ics, method
        )

    def _none_letter(self, msg: ParsedMessage, situation: str) -> Letter:
        """No invitation to send: none scheduled, a staffing mentor, or nothing to leave."""
        person = {"email": msg.sender, "name": msg.sender_name}
        context = {"person": person, "situation": situation}
        return Letter("office_hours_none", msg.sender, msg.sender_name, context, (THREAD, None))

    def _view(self, series: Mapping[str, Any], email: str, now: datetime) -> dict[str, Any]:
        """The series in the reader's own words: their zone where we know it."""
        rule = WeeklyRule.of(series)
        zone = self._zone_for(series, email)
        coming = next_occurrence(rule, now)
        your_time = ""
        if zone.key != series["zone"] and coming is not None:
            start, end = coming.start.astimezone(zone), coming.end.astimezone(zone)
            your_time = f"{start:%A}s, {start:%H:%M}–{end:%H:%M} ({zone.key})"
        title = str(series["title"])
        return {
            "id": series["id"],
            "title": title,
            # Subjects always say "office hours", so answers find their way back here.
            "heading": title if "office hours" in title.lower() else f"Office hours – {title}",
            "pattern": pattern(rule),
            "pattern_short": pattern(rule, short=True),
            "your_time": your_time,
            "next": when(coming.start, coming.end, zone) if coming else "",
            "location": series["location"],
            "mentors": self._hosts(series),
            "until": f"{rule.until:%A %-d %B %Y}" if rule.until else "",
            "length_minutes": series["length_minutes"],
        }

    # Helpers ---------------------------------------------------------------------------------

    def _running(self, series: Mapping[str, Any], now: datetime, *, staffed: bool = True) -> bool:
        """Is ``series`` still to come (and, with ``staffed``, has a mentor to host it)?"""
        has_staff = bool(series["mentors"]) or not staffed
        return has_staff and next_occurrence(WeeklyRule.of(series), now) is not None

    def _forget(self, series: dict[str, Any], email: str, now: datetime) -> None:
        """Drop what ``series`` kept about ``email`` (answers, name) and store it."""
        series["answers"].pop(email, None)
        series["names"].pop(email, None)
        for answers in series["occurrence_answers"].values():
            answers.pop(email, None)
        series["updated"] = iso(now)
        self.store.save_series(series)

    def _hosts(self, series: Mapping[str, Any]) -> str:
        """The staffing mentors by name: 'Ada Lovelace and Linus Park'."""
        return _and([self._name(series, m) or m for m in series["mentors"]])

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
            return ZoneInfo(known) if known else ZoneInfo(series["zone"])
        except (KeyError, ValueError):
            return ZoneInfo(series["zone"])

    # Every email of this flow leaves through the mail gate (``Postman``) ------------------

    def _reply(self, msg: ParsedMessage, letters: Sequence[Letter], now: datetime) -> None:
        """Answer ``msg`` with ``letters``: one answer, within the per-sender limit (SPEC §5)."""
        if self.postman.may_answer(msg, now):
            for letter in letters:
                self._send(letter, now, answering=msg)

    def _send(
        self, letter: Letter, now: datetime, *, answering: ParsedMessage | None = None
    ) -> None:
        parts = calendar_mime_parts(letter.ics, letter.method) if letter.ics else None
        self.postman.send(
            letter.template,
            to=letter.to,
            to_name=letter.to_name,
            now=now,
            context=letter.context,
            answering=answering,
            thread=letter.thread,
            alternatives=[parts[0]] if parts else [],
            attachments=[parts[1]] if parts else [],
        )

    def _tell_coordinator(self, msg: ParsedMessage | None, now: datetime, reason: str) -> None:
        self.postman.tell_coordinator(reason, now, msg=msg)


def _and(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"
