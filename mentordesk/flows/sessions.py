"""One-to-one sessions (SPEC §3 flow 5): propose, invite, answer, move, cancel, remind.

After a claim, ``SessionDesk.book`` proposes the earliest 30-minute slot that suits both
people — but never blind: when the mentee's zone or hours are unknown it invents no slot
and sends the mentee a link to pick one of the mentor's free times, shown in her own zone
(``mentee_choices``, ``mentee_pick``). Every invitation is an iMIP REQUEST (RFC 5546
§3.2.2) whose UID is stored and reused:
every later change is the same UID with SEQUENCE + 1 (RFC 5545 §3.8.7.4), a cancellation
is METHOD:CANCEL. Answers from any calendar client come back through the mailbox
(``handle_calendar``): ACCEPTED/TENTATIVE/DECLINED are recorded; a decline or a COUNTER
leads to a new proposal, or to DECLINECOUNTER when the mentor cannot make the time
asked for. Like the rest of the core it runs on the store's writer thread.

Times shown to a person are in their own zone; where it is unknown, in the program's
(``[program] timezone``), named.

A session doc: uid, request, mentor, mentee, start/end (ISO UTC), sequence, status
(``SessionStatus``: proposed | accepted | declined | held | no-show | cancelled),
answers {email: PARTSTAT}, declined_starts (times not to propose again), reminded,
basis (how its time was chosen: common | mentee | mentor | asked) and chosen_by,
created, updated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..calendar.invite import (
    Attendee,
    EventHead,
    calendar_mime_parts,
    new_uid,
    session_cancel,
    session_declinecounter,
    session_request,
)
from ..calendar.reply import CalendarReply, parse_calendar
from ..calendar.slots import Busy, candidate_slots
from ..config import Config
from ..feed import feed_url
from ..inbox.intents import ProposedTime
from ..inbox.parse import ParsedMessage
from ..mailer.outbox import Postman
from ..state.lifecycle import RequestEvent, next_request_status
from ..state.records import (
    LIVE,
    RequestStatus,
    SessionStatus,
    request_status,
    session_status,
)
from ..state.store import Store, from_iso, iso
from ..tokens import Links
from ..views import mentor_view, request_view

log = logging.getLogger(__name__)


BusyElsewhere = Callable[[str, datetime, datetime], list[Busy]]  # office hours
OtherReplies = Callable[[CalendarReply, str, datetime], bool]  # office hours


def when_text(start: datetime, end: datetime, zone: str) -> str:
    """'Tuesday 24 November, 18:00–18:30 (Europe/Berlin)' in the reader's zone (callers
    pass the program's zone for a reader whose own is unknown)."""
    tz = ZoneInfo(zone)
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    return (
        f"{local_start.strftime('%A %-d %B')}, {local_start.strftime('%H:%M')}–"
        f"{local_end.strftime('%H:%M')} ({zone})"
    )


def when_short(start: datetime, zone: str) -> str:
    """'Tue 24 Nov 18:00 (Europe/Berlin)': plain ASCII, for subject lines."""
    local = start.astimezone(ZoneInfo(zone))
    return f"{local.strftime('%a %-d %b %H:%M')} ({zone})"


def proposed_start(
    proposed: ProposedTime, zone: str, current: datetime | None, now: datetime, notice: timedelta
) -> datetime | None:
    """The moment a time said in words means on the writer's clock in ``zone``
    ("Thursday at 6pm", "7:30am instead", "tomorrow at 8"), at least ``notice`` after
    ``now``. A time with no day keeps the day of ``current`` (the session it would move)
    if that is still far enough ahead, else the first day it is; a day with no time keeps
    ``current``'s time. None when no definite moment was said, or it is too soon."""
    tz = ZoneInfo(zone)
    earliest = now + notice
    today = now.astimezone(tz).date()
    local_current = current.astimezone(tz) if current is not None else None
    minute = proposed.minute
    if minute is None:
        if local_current is None:
            return None
        minute = local_current.hour * 60 + local_current.minute

    def at(day: date) -> datetime:
        return (datetime.combine(day, time(), tzinfo=tz) + timedelta(minutes=minute)).astimezone(
            UTC
        )

    if proposed.days_ahead is not None:
        moment = at(today + timedelta(days=proposed.days_ahead))
        return moment if moment >= earliest else None
    days = [today + timedelta(days=offset) for offset in range(15)]
    if proposed.weekday is not None:
        days = [day for day in days if day.weekday() == proposed.weekday]
    elif local_current is not None and at(local_current.date()) >= earliest:
        return at(local_current.date())
    return next((at(day) for day in days if at(day) >= earliest), None)


def slot_fits(
    start: datetime, length: timedelta, windows: Sequence[Sequence[int]], zone: str
) -> bool:
    """Does ``[start, start+length)`` lie inside one of the weekly ``windows`` in ``zone``?"""
    tz = ZoneInfo(zone)
    local = start.astimezone(tz)
    end_local = (start + length).astimezone(tz)
    if end_local.date() != local.date() and not (end_local.hour == 0 and end_local.minute == 0):
        return False
    first = local.hour * 60 + local.minute
    last = first + int(length.total_seconds() // 60)
    return any(w[0] == local.weekday() and w[1] <= first and last <= w[2] for w in windows)


class SessionDesk:
    """Books and keeps the 30-minute sessions between a mentor and a mentee."""

    def __init__(
        self,
        config: Config,
        store: Store,
        postman: Postman,
        links: Links,
        busy_elsewhere: BusyElsewhere | None = None,
        other_replies: OtherReplies | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.postman = postman
        self.links = links
        self.busy_elsewhere = busy_elsewhere or (lambda mentor, start, end: [])
        self.other_replies = other_replies or (lambda reply, sender, now: False)

    def _zone(self, zone: str | None) -> str:
        """A person's zone for showing times: their own, else the program's (README)."""
        return zone or self.config.program.timezone

    @staticmethod
    def unknown_week(request: Mapping[str, Any]) -> list[str]:
        """What we do not know about the mentee's week: "timezone", "availability"."""
        return [key for key in ("timezone", "availability") if not request.get(key)]

    # Finding a time ----------------------------------------------------------------------

    def _busy(self, mentor: str, now: datetime, except_uid: str = "") -> list[Busy]:
        busy = [
            Busy(from_iso(s["start"]), from_iso(s["end"]))
            for s in self.store.live_sessions()
            if s["mentor"] == mentor and s["uid"] != except_uid
        ]
        horizon = now + self.config.sessions.horizon + timedelta(days=1)
        return busy + self.busy_elsewhere(mentor, now, horizon)

    def candidates(
        self,
        number: int,
        now: datetime,
        *,
        avoid: Sequence[str] = (),
        except_uid: str = "",
        limit: int = 10,
    ) -> list[datetime]:
        """The next slots that suit both people (UTC), earliest first, minus ``avoid``."""
        request = self.store.request(number) or {}
        mentor = self.store.mentor(request.get("claimed_by") or "") or {}
        if not request or not mentor:
            return []
        sessions = self.config.sessions
        found = candidate_slots(
            [tuple(w) for w in mentor.get("availability") or []],
            mentor.get("timezone") or self.config.program.timezone,
            [tuple(w) for w in request.get("availability") or []],
            request.get("timezone"),
            self._busy(mentor["email"], now, except_uid),
            now,
            notice=sessions.notice,
            length=sessions.length,
            horizon=sessions.horizon,
            limit=limit + len(avoid),
        )
        skipped = set(avoid)
        return [slot for slot in found if iso(slot) not in skipped][:limit]

    # Booking -----------------------------------------------------------------------------

    def book(self, number: int, now: datetime) -> dict[str, Any] | None:
        """Propose the earliest common slot for a claimed request; never blind: without the
        mentee's zone and hours she picks one of the mentor's times; with them but no
        common time, the mentor picks."""
        request = self.store.request(number)
        if request is None or request_status(request) is not RequestStatus.CLAIMED:
            return None
        existing = self.session_of(number)
        if existing is not None:
            return existing
        if self.unknown_week(request):
            self._ask_mentee_to_pick(request, now)
            return None
        slots = self.candidates(number, now, limit=1)
        if not slots:
            self._ask_mentor_to_pick(request, now, reason="no common time")
            return None
        return self.propose(number, slots[0], now)

    def propose(
        self,
        number: int,
        start: datetime,
        now: datetime,
        *,
        basis: str = "common",
        chosen_by: str = "",
    ) -> dict[str, Any]:
        """Create (or move) the request's session to ``start`` and invite both people.

        ``basis`` says how the time was chosen, for the invitation's words: "common" (the
        earliest in both weeks), "mentee" or "mentor" (picked on a page), "asked" (a
        time ``chosen_by`` asked for)."""
        request = self.store.request(number) or {}
        session = self.session_of(number)
        end = start + self.config.sessions.length
        if session is None:
            session = {
                "uid": new_uid(self.config.program.domain),
                "request": number,
                "mentor": request["claimed_by"],
                "mentee": request["mentee"],
                "sequence": 0,
                "created": iso(now),
                "declined_starts": [],
                "reminded": None,
            }
            change = "new"
        else:
            session["sequence"] = int(session["sequence"]) + 1
            change = "moved"
        session.update(
            {
                "start": iso(start),
                "end": iso(end),
                "status": "proposed",
                "updated": iso(now),
                "answers": {session["mentor"]: "NEEDS-ACTION", session["mentee"]: "NEEDS-ACTION"},
                "reminded": None,
                "basis": basis,
                "chosen_by": chosen_by,
            }
        )
        self.store.save_session(session)
        request["schedule"] = "proposed"
        _advance(request, RequestEvent.BOOKED, now)
        self.store.save_request(request)
        self.store.audit(
            "session proposed",
            now=now,
            request=number,
            uid=session["uid"],
            start=iso(start),
            sequence=session["sequence"],
            change=change,
        )
        self._send_request(session, request, now, change)
        return session

    def session_of(self, number: int) -> dict[str, Any] | None:
        """The request's live session with its current holder (a session with an earlier
        holder is cancelled when they lose the request, so it is never returned)."""
        session = self.store.live_session_of(number)
        request = self.store.request(number) or {}
        if session is None or session["mentor"] != request.get("claimed_by"):
            return None
        return session

    # Emails --------------------------------------------------------------------------------

    def _people(self, session: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        request = self.store.request(int(session["request"])) or {}
        mentor = self.store.mentor(session["mentor"]) or {"email": session["mentor"], "name": ""}
        mentee = {
            "email": session["mentee"],
            "name": request.get("name") or "",
            "timezone": request.get("timezone"),
        }
        for person in (mentor, mentee):
            person["zone"] = self._zone(person.get("timezone"))  # where times are shown
        return mentor, mentee

    def _attendees(self, session: Mapping[str, Any]) -> list[Attendee]:
        mentor, mentee = self._people(session)
        return [
            Attendee(mentor["email"], mentor.get("name") or ""),
            Attendee(mentee["email"], mentee.get("name") or ""),
        ]

    def _head(
        self, session: Mapping[str, Any], attendees: Sequence[Attendee], now: datetime
    ) -> EventHead:
        organizer = Attendee(self.config.program.address, self.config.program.name)
        return EventHead(
            session["uid"],
            int(session["sequence"]),
            self._summary(session),
            organizer,
            attendees,
            now,
        )

    def _summary(self, session: Mapping[str, Any]) -> str:
        mentor, mentee = self._people(session)
        return (
            f"Mentoring: {mentee['name'] or 'mentee'} and {mentor.get('name') or 'mentor'} "
            f"(MD-{int(session['request']):04d})"
        )

    def _send_request(
        self, session: Mapping[str, Any], request: Mapping[str, Any], now: datetime, change: str
    ) -> None:
        start, end = from_iso(session["start"]), from_iso(session["end"])
        mentor, mentee = self._people(session)
        location = self.config.sessions.location
        ics = session_request(
            self._head(session, self._attendees(session), now),
            start,
            end - start,
            description=self._description(request, mentor),
            location=location,
        )
        for person, other in ((mentor, mentee), (mentee, mentor)):
            inline, attachment = calendar_mime_parts(ics, "REQUEST")
            email = person["email"]
            self.postman.send(
                "session_invite",
                to=email,
                to_name=person.get("name") or "",
                now=now,
                context={
                    "person": person,
                    "other": other,
                    "change": change,
                    "is_mentor": email == session["mentor"],
                    "when": when_text(start, end, person["zone"]),
                    "when_short": when_short(start, person["zone"]),
                    "basis": session.get("basis") or "common",
                    "by_you": session.get("chosen_by") == email,
                    "location": location,
                    "request": request_view(request),
                    "cancel_url": self.links("session-cancel", email, session["uid"], now),
                    "move_url": self.links("session-move", email, session["uid"], now),
                    "feed_url": feed_url(self.config, email, now),
                },
                alternatives=[inline],
                attachments=[attachment],
                thread=("session", session["uid"]),
                request=int(session["request"]),
            )

    def _description(self, request: Mapping[str, Any], mentor: Mapping[str, Any]) -> str:
        view = request_view(request)
        return (
            f"{view['tag']}: {view['skills']}\n\n{view['details']}\n\n"
            f"Mentor: {mentor.get('name') or mentor['email']}\n"
            f"{self.config.sessions.location}\n"
            f"To cancel or move it, reply to the invitation email or use its links."
        )

    def _send_cancel(
        self, session: Mapping[str, Any], now: datetime, by: str, why: str = ""
    ) -> None:
        start, end = from_iso(session["start"]), from_iso(session["end"])
        mentor, mentee = self._people(session)
        ics = session_cancel(self._head(session, self._attendees(session), now), start, end - start)
        request = self.store.request(int(session["request"])) or {"number": session["request"]}
        # Cancelled by one of the two, the request stays the mentor's (SPEC §3a): they
        # pick the next time, as when no common time was found.
        pick_url = (
            "" if why else self.links("schedule", mentor["email"], str(request["number"]), now)
        )
        for person, other in ((mentor, mentee), (mentee, mentor)):
            inline, attachment = calendar_mime_parts(ics, "CANCEL")
            self.postman.send(
                "session_cancelled",
                to=person["email"],
                to_name=person.get("name") or "",
                now=now,
                context={
                    "person": person,
                    "other": other,
                    "by_you": by == person["email"],
                    "why": why,
                    "by_name": (mentor if by == mentor["email"] else mentee).get("name")
                    or "the other person",
                    "when": when_text(start, end, person["zone"]),
                    "request": request_view(request),
                    "pick_url": pick_url if person is mentor else "",
                },
                alternatives=[inline],
                attachments=[attachment],
                thread=("session", session["uid"]),
                request=int(session["request"]),
            )

    def _ask_mentor_to_pick(self, request: Mapping[str, Any], now: datetime, reason: str) -> None:
        mentor = self.store.mentor(request["claimed_by"]) or {"email": request["claimed_by"]}
        number = int(request["number"])
        doc = dict(request)
        doc["schedule"] = "mentor picks"
        self.store.save_request(doc)
        self.store.audit("session needs a time", now=now, request=number, reason=reason)
        self.postman.send(
            "session_pick",
            to=mentor["email"],
            to_name=mentor.get("name") or "",
            now=now,
            context={
                "mentor": mentor,
                "request": request_view(request),
                "reason": reason,
                "pick_url": self.links("schedule", mentor["email"], str(number), now),
            },
            thread=("request-mentor", {"number": number, "mentor": mentor["email"]}),
            request=number,
        )

    # Answers from calendar clients (RFC 5546 §3.2.3, §3.2.7) --------------------------------

    def handle_calendar(self, msg: ParsedMessage, now: datetime) -> bool:
        """Apply the iTIP answers in ``msg``; True when it carried one we know."""
        handled = False
        for part in msg.calendar_parts:
            for reply in parse_calendar(part):
                if reply.method not in ("REPLY", "COUNTER"):
                    continue
                session = self.store.session(reply.uid)
                if session is None:
                    handled = self.other_replies(reply, msg.sender, now) or handled
                    continue
                handled = self._answer(session, reply, msg.sender, now) or handled
        return handled

    def _answer(
        self, session: dict[str, Any], reply: CalendarReply, sender: str, now: datetime
    ) -> bool:
        attendee = reply.attendee
        if attendee not in (session["mentor"], session["mentee"]):
            return False  # an answer for someone who was not invited
        if sender != attendee:
            # Only the attendee speaks for themself (a forwarded invitation answered by
            # someone else must not decline for them).
            self.store.audit(
                "calendar answer refused",
                now=now,
                uid=session["uid"],
                attendee=attendee,
                sender=sender,
            )
            return True
        if reply.sequence < int(session["sequence"]) or session["status"] not in LIVE:
            self.store.audit(
                "calendar answer stale",
                now=now,
                uid=session["uid"],
                attendee=attendee,
                sequence=reply.sequence,
            )
            return True
        number = int(session["request"])
        if reply.method == "COUNTER":
            return self._counter(session, reply, now)
        partstat = (reply.partstat or "NEEDS-ACTION").upper()
        session["answers"][attendee] = partstat
        session["updated"] = iso(now)
        self.store.audit(
            "calendar answer",
            now=now,
            request=number,
            uid=session["uid"],
            attendee=attendee,
            partstat=partstat,
        )
        if partstat == "DECLINED":
            session["declined_starts"] = [*session.get("declined_starts", []), session["start"]]
            self.store.save_session(session)
            self._propose_another(session, now, reason=f"{attendee} declined")
            return True
        if all(v == "ACCEPTED" for v in session["answers"].values()):
            session["status"] = SessionStatus.ACCEPTED.value
        self.store.save_session(session)
        return True

    def _propose_another(self, session: Mapping[str, Any], now: datetime, reason: str) -> None:
        number = int(session["request"])
        request = self.store.request(number) or {}
        if self.unknown_week(request):
            declined = {**session, "status": SessionStatus.DECLINED.value, "updated": iso(now)}
            self.store.save_session(declined)
            self._ask_mentee_to_pick(request, now)
            return
        slots = self.candidates(
            number,
            now,
            avoid=session.get("declined_starts", []),
            except_uid=session["uid"],
            limit=1,
        )
        if slots:
            self.propose(number, slots[0], now)
        else:
            declined = {**session, "status": SessionStatus.DECLINED.value, "updated": iso(now)}
            self.store.save_session(declined)
            request = self.store.request(number) or {}
            self._ask_mentor_to_pick(request, now, reason=reason)

    def _counter(self, session: dict[str, Any], reply: CalendarReply, now: datetime) -> bool:
        """Accept a proposed time the mentor can make; otherwise DECLINECOUNTER it."""
        number = int(session["request"])
        start = reply.proposed_start
        mentor = self.store.mentor(session["mentor"]) or {}
        length = self.config.sessions.length
        fits = (
            start is not None
            and start >= now + self.config.sessions.notice
            and slot_fits(
                start, length, mentor.get("availability") or [], self._zone(mentor.get("timezone"))
            )
            and not any(
                b.start < start + length and start < b.end
                for b in self._busy(session["mentor"], now, except_uid=session["uid"])
            )
        )
        self.store.audit(
            "calendar counter",
            now=now,
            request=number,
            uid=session["uid"],
            attendee=reply.attendee,
            proposed=iso(start) if start else None,
            accepted=fits,
        )
        if fits and start is not None:
            self.propose(number, start, now, basis="asked", chosen_by=reply.attendee)
            return True
        person = {"email": reply.attendee}
        requester = self.store.request(number) or {}
        name = (
            requester.get("name") if reply.attendee == session["mentee"] else (mentor.get("name"))
        )
        start_now, end_now = from_iso(session["start"]), from_iso(session["end"])
        ics = session_declinecounter(
            self._head(session, [Attendee(reply.attendee, name or "")], now),
            start_now,
            end_now - start_now,
            comment="That time does not suit the mentor; the original time stands.",
        )
        inline, attachment = calendar_mime_parts(ics, "DECLINECOUNTER")
        zone = self._zone(
            requester.get("timezone")
            if reply.attendee == session["mentee"]
            else (mentor.get("timezone"))
        )
        self.postman.send(
            "session_counter_declined",
            to=reply.attendee,
            to_name=name or "",
            now=now,
            context={
                "person": {**person, "name": name or ""},
                "asked": when_text(start, start + length, zone) if start else "",
                "when": when_text(start_now, end_now, zone),
                "move_url": self.links("session-move", reply.attendee, session["uid"], now),
                "request": request_view(requester or {"number": number}),
            },
            alternatives=[inline],
            attachments=[attachment],
            thread=("session", session["uid"]),
            request=number,
        )
        return True

    # Cancel and move (by email or by link) --------------------------------------------------

    def cancel(self, uid: str, by: str, now: datetime) -> str:
        """One of the two cancels the session. Returns cancelled | not_yours | gone.

        The mentor keeps the request (it is claimed again, with no session)."""
        session = self.store.session(uid)
        if session is None or session["status"] not in LIVE:
            return "gone"
        if by not in (session["mentor"], session["mentee"]):
            return "not_yours"
        self._end(session, by, now, why="")
        request = self.store.request(int(session["request"]))
        if request is not None and _advance(request, RequestEvent.UNBOOKED, now):
            request["schedule"] = "mentor picks"  # the cancellation gave them the pick link
            self.store.save_request(request)
        return "cancelled"

    def cancel_live(self, number: int, by: str, now: datetime, *, why: str) -> bool:
        """Cancel the request's live session, whoever holds it, because the request is
        leaving its holder (``why``: withdrawn, released, resigned, term-ended). METHOD:
        CANCEL with the same UID and a higher SEQUENCE goes to both calendars."""
        session = self.store.live_session_of(number)
        if session is None:
            return False
        self._end(session, by, now, why=why)
        return True

    def _end(self, session: dict[str, Any], by: str, now: datetime, *, why: str) -> None:
        session["sequence"] = int(session["sequence"]) + 1
        session.update(
            {
                "status": SessionStatus.CANCELLED.value,
                "updated": iso(now),
                "cancelled_by": by,
                "cancelled_why": why or "asked",
            }
        )
        self.store.save_session(session)
        self.store.audit(
            "session cancelled",
            now=now,
            request=session["request"],
            uid=session["uid"],
            by=by,
            why=why or "asked",
        )
        self._send_cancel(session, now, by, why)

    def move(self, uid: str, by: str, now: datetime, proposed: ProposedTime | None = None) -> str:
        """Move the session at ``by``'s asking: to the time they named (``proposed``, e.g.
        "7:30am instead") if the other one's week has room for it, else to the next time
        that suits both; where we know no such time, the one who must choose gets a link.
        Returns moved | picking (the mentor) | mentee picks | not_yours | gone."""
        session = self.store.session(uid)
        if session is None or session["status"] not in LIVE:
            return "gone"
        if by not in (session["mentor"], session["mentee"]):
            return "not_yours"
        session["declined_starts"] = [*session.get("declined_starts", []), session["start"]]
        self.store.save_session(session)
        self.store.audit("session move asked", now=now, request=session["request"], uid=uid, by=by)
        number = int(session["request"])
        request = self.store.request(number) or {}
        if proposed is not None:
            return self._move_to_asked(session, request, by, proposed, now)
        if self.unknown_week(request):
            self._ask_mentee_to_pick(request, now)
            return "mentee picks"
        slots = self.candidates(
            number, now, avoid=session["declined_starts"], except_uid=uid, limit=1
        )
        if slots:
            self.propose(number, slots[0], now)
            return "moved"
        self._ask_mentor_to_pick(
            self.store.request(number) or {}, now, reason="asked to move, and no other common time"
        )
        return "picking"

    def _move_to_asked(
        self,
        session: Mapping[str, Any],
        request: Mapping[str, Any],
        by: str,
        proposed: ProposedTime,
        now: datetime,
    ) -> str:
        """Move to the time ``by`` named, if it is free in the mentor's week (and, asked by
        the mentor, in the mentee's when we know it); else the mentor chooses, told why."""
        mentor = self.store.mentor(session["mentor"]) or {"email": session["mentor"]}
        by_mentor = by == session["mentor"]
        asker_zone = self._zone(mentor.get("timezone") if by_mentor else request.get("timezone"))
        notice, length = self.config.sessions.notice, self.config.sessions.length
        start = proposed_start(proposed, asker_zone, from_iso(session["start"]), now, notice)
        if start is not None:
            other_windows, other_zone = (
                (request.get("availability"), request.get("timezone"))
                if by_mentor
                else (mentor.get("availability"), mentor.get("timezone"))
            )
            free = not any(
                b.start < start + length and start < b.end
                for b in self._busy(session["mentor"], now, except_uid=session["uid"])
            )
            fits = not other_windows or slot_fits(
                start, length, other_windows, self._zone(other_zone)
            )
            if free and fits:
                self.propose(int(session["request"]), start, now, basis="asked", chosen_by=by)
                return "moved"
        asked = when_text(start, start + length, asker_zone) if start else proposed.said
        who = (request.get("name") or "Your mentee") if not by_mentor else "You"
        self._ask_mentor_to_pick(
            request, now, reason=f"{who} asked for {asked}, which does not fit your week"
        )
        return "picking"

    def pick(self, number: int, mentor: str, start: datetime, now: datetime) -> str:
        """The mentor chose a time on the pick page. Returns booked | not_yours | gone | past."""
        request = self.store.request(number)
        if request is None or not request_status(request).held:
            return "gone"
        if request.get("claimed_by") != mentor:
            return "not_yours"
        if start < now:
            return "past"
        self.propose(number, start, now, basis="mentor", chosen_by=mentor)
        return "booked"

    # The mentee picks (never book blind) --------------------------------------------------

    def _ask_mentee_to_pick(self, request: Mapping[str, Any], now: datetime) -> None:
        """Send the mentee a link to pick one of the mentor's free times, shown in her own
        zone, instead of inventing one; say what we did not know."""
        number = int(request["number"])
        mentor = self.store.mentor(request["claimed_by"]) or {"email": request["claimed_by"]}
        doc = dict(request)
        doc["schedule"] = "mentee picks"
        self.store.save_request(doc)
        unknown = self.unknown_week(request)
        self.store.audit("session needs a time", now=now, request=number, reason="mentee picks")
        self.postman.send(
            "session_pick_mentee",
            to=request["mentee"],
            to_name=request.get("name") or "",
            now=now,
            context={
                "request": request_view(request),
                "mentor": mentor_view(mentor),
                "unknown": unknown,
                "pick_url": self.links("pick", request["mentee"], str(number), now),
                "lifetime_days": self.links.lifetime.days,
            },
            thread=("request", number),
            request=number,
        )

    def mentee_choices(
        self, number: int, now: datetime, zone: str | None = None
    ) -> list[dict[str, Any]]:
        """The mentor's free 30-minute times in the coming weeks for the mentee's pick
        page, labelled in ``zone`` (hers: stored, or the browser's), each marked ``fits``
        when it lies in the hours she gave us."""
        request = self.store.request(number) or {}
        mentor = self.store.mentor(request.get("claimed_by") or "") or {}
        if not mentor:
            return []
        shown = zone or self._zone(request.get("timezone"))
        sessions = self.config.sessions
        found = candidate_slots(
            [tuple(w) for w in mentor.get("availability") or []],
            self._zone(mentor.get("timezone")),
            [],
            None,
            self._busy(
                mentor["email"], now, except_uid=(self.session_of(number) or {}).get("uid", "")
            ),
            now,
            notice=sessions.notice,
            length=sessions.length,
            horizon=sessions.horizon,
            limit=16,
        )
        windows = request.get("availability") or []
        mentee_zone = request.get("timezone") or zone
        return [
            {
                "value": iso(slot),
                "label": when_text(slot, slot + sessions.length, shown),
                "fits": bool(
                    windows
                    and mentee_zone
                    and slot_fits(slot, sessions.length, windows, mentee_zone)
                ),
            }
            for slot in found
        ]

    def pick_view(self, number: int, mentee: str, zone: str | None) -> dict[str, Any]:
        """What the mentee's pick page shows (empty when the link is not hers): the zone
        times are shown in, whether it still has to be asked of the browser, and the
        session already booked, if any."""
        request = self.store.request(number)
        if request is None or request.get("mentee") != mentee:
            return {}
        mentor = self.store.mentor(request.get("claimed_by") or "") or {}
        shown = request.get("timezone") or zone or self.config.program.timezone
        session = self.session_of(number)
        booked = ""
        if session is not None:
            booked = when_text(from_iso(session["start"]), from_iso(session["end"]), shown)
        return {
            "request": request_view(request),
            "mentor": mentor_view(mentor) if mentor else {},
            "held": request_status(request).held,
            "zone": shown,
            "zone_known": bool(request.get("timezone") or zone),
            "detect": not request.get("timezone") and not zone,
            "booked": booked,
        }

    def mentee_pick(
        self, number: int, mentee: str, unsafe_start: str, now: datetime, zone: str | None
    ) -> str:
        """The mentee chose a time on her pick page. ``unsafe_start`` must be one of the
        mentor's free times right now; ``zone`` (from her browser) becomes her zone if we
        had none. Returns booked | not_yours | gone | taken."""
        request = self.store.request(number)
        if request is None or not request_status(request).held:
            return "gone"
        if request.get("mentee") != mentee:
            return "not_yours"
        if unsafe_start not in {c["value"] for c in self.mentee_choices(number, now, zone)}:
            return "taken"  # no longer free, or never offered
        start = from_iso(unsafe_start)
        if zone and not request.get("timezone"):
            request["timezone"] = zone
            request["timezone_text"] = "your web browser"
            request["updated"] = iso(now)
            self.store.save_request(request)
        self.propose(number, start, now, basis="mentee", chosen_by=mentee)
        return "booked"

    def pick_choices(self, number: int, now: datetime) -> list[dict[str, str]]:
        """Times to offer on the pick page: the mentee's windows in the coming weeks, shown
        in the mentor's zone (ignoring the mentor's own windows, which did not fit)."""
        request = self.store.request(number) or {}
        mentor = self.store.mentor(request.get("claimed_by") or "") or {}
        zone = mentor.get("timezone") or self.config.program.timezone
        sessions = self.config.sessions
        mentee_windows = [tuple(w) for w in request.get("availability") or []]
        everyday = [(day, 0, 1440) for day in range(7)]
        found = candidate_slots(
            mentee_windows or everyday,
            request.get("timezone") or zone,
            [],
            None,
            self._busy(mentor.get("email", ""), now),
            now,
            notice=sessions.notice,
            length=sessions.length,
            horizon=sessions.horizon,
            limit=12,
        )
        end = sessions.length
        return [{"value": iso(s), "label": when_text(s, s + end, zone)} for s in found]

    def describe(self, uid: str, person: str) -> dict[str, Any]:
        """What the cancel/move pages show one of the two people (empty when not theirs)."""
        session = self.store.session(uid)
        if session is None or person not in (session["mentor"], session["mentee"]):
            return {}
        mentor, mentee = self._people(session)
        me, other = (mentor, mentee) if person == mentor["email"] else (mentee, mentor)
        start, end = from_iso(session["start"]), from_iso(session["end"])
        return {
            "uid": uid,
            "status": session["status"],
            "live": session_status(session).live,
            "other": other,
            "when": when_text(start, end, me["zone"]),
            "request": request_view(
                self.store.request(int(session["request"])) or {"number": session["request"]}
            ),
        }

    def custom_start(self, number: int, local_text: str) -> datetime | None:
        """'2026-12-01T18:30' typed on the pick page, in the mentor's zone → UTC."""
        request = self.store.request(number) or {}
        mentor = self.store.mentor(request.get("claimed_by") or "") or {}
        try:
            local = datetime.fromisoformat(local_text)
        except ValueError:
            return None
        if local.tzinfo is not None:
            return local
        zone = ZoneInfo(mentor.get("timezone") or self.config.program.timezone)
        return local.replace(tzinfo=zone).astimezone(UTC)

    # Reminders (a sweep step) --------------------------------------------------------------

    def remind(self, now: datetime) -> int:
        """Remind both people ``reminder_before`` a session, once."""
        sent = 0
        before = self.config.sessions.reminder_before
        for session in self.store.live_sessions():
            start = from_iso(session["start"])
            if session.get("reminded") or not (start - before <= now < start):
                continue
            if session_status(session) is SessionStatus.DECLINED:
                continue  # its time was turned down; the mentor is picking another
            request = self.store.request(int(session["request"])) or {}
            if request_status(request) is not RequestStatus.BOOKED:
                continue  # only a booked request's session is still to happen
            session["reminded"] = iso(now)
            self.store.save_session(session)
            mentor, mentee = self._people(session)
            for person, other in ((mentor, mentee), (mentee, mentor)):
                self.postman.send(
                    "session_reminder",
                    to=person["email"],
                    to_name=person.get("name") or "",
                    now=now,
                    context={
                        "person": person,
                        "other": mentor_view(other),
                        "when": when_text(start, from_iso(session["end"]), person["zone"]),
                        "location": self.config.sessions.location,
                        "request": request_view(request),
                        "cancel_url": self.links(
                            "session-cancel", person["email"], session["uid"], now
                        ),
                    },
                    thread=("session", session["uid"]),
                    request=int(session["request"]),
                )
            sent += 1
        return sent

    def finish(self, now: datetime) -> int:
        """Sessions whose end has passed are held, and their request is met (the
        after-session step reads that). A declined one waits for the mentor's pick."""
        done = 0
        for session in self.store.live_sessions():
            if session["status"] == SessionStatus.DECLINED or from_iso(session["end"]) > now:
                continue
            session.update({"status": SessionStatus.HELD.value, "updated": iso(now)})
            self.store.save_session(session)
            request = self.store.request(int(session["request"]))
            if request is not None and _advance(request, RequestEvent.MET, now):
                self.store.save_request(request)
            done += 1
        return done


def _advance(request: dict[str, Any], event: RequestEvent, now: datetime) -> bool:
    """Move ``request`` (in memory) by a step without consequences; False if it cannot."""
    after = next_request_status(request_status(request), event)
    if after is None:
        return False
    request["status"] = after.value
    request["updated"] = iso(now)
    return True
