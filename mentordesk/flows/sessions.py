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
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ..calendar.invite import (
    new_uid,
)
from ..calendar.slots import Busy, candidate_slots
from ..config import Config
from ..inbox.intents import ProposedTime
from ..mailer.outbox import Postman
from ..state.lifecycle import RequestEvent, advance
from ..state.records import (
    LIVE,
    RequestStatus,
    SessionStatus,
    request_status,
)
from ..state.store import Store, from_iso, iso
from ..tokens import Links
from .session_answers import CalendarAnswers
from .session_mail import SessionMail
from .session_parts import BusyElsewhere, OtherReplies
from .session_picks import Picking
from .session_times import proposed_start, slot_fits
from .session_times import when_short as when_short
from .session_times import when_text as when_text

log = logging.getLogger(__name__)


class SessionDesk(SessionMail, CalendarAnswers, Picking):
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

    def _busy(
        self, mentor: str, now: datetime, except_uid: str = "", mentee: str = ""
    ) -> list[Busy]:
        """Times taken already: the mentor's live sessions and office hours, and (given
        ``mentee``) the mentee's other live sessions, so nobody is booked twice at once."""
        busy = [
            Busy(from_iso(s["start"]), from_iso(s["end"]))
            for s in self.store.live_sessions()
            if (s["mentor"] == mentor or (mentee and s["mentee"] == mentee))
            and s["uid"] != except_uid
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
            self._busy(mentor["email"], now, except_uid, mentee=request.get("mentee") or ""),
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
        advance(request, RequestEvent.BOOKED, now)
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

    def resend(self, number: int, by: str, now: datetime) -> dict[str, Any] | None:
        """The live session's invitation again to both, as it stands (same UID and
        SEQUENCE: a calendar that has it keeps one event); None when there is none."""
        session = self.session_of(number)
        request = self.store.request(number)
        if session is None or request is None:
            return None
        self._send_request(session, request, now, "new")
        self.store.audit(
            "session invitation resent", now=now, request=number, uid=session["uid"], by=by
        )
        return session

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
        if request is not None and advance(request, RequestEvent.UNBOOKED, now):
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
            if request is not None and advance(request, RequestEvent.MET, now):
                self.store.save_request(request)
            done += 1
        return done
