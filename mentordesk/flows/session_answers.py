"""Answers from calendar clients (RFC 5546 §3.2.3, §3.2.7): accept, decline, counter."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..calendar.invite import (
    Attendee,
    calendar_mime_parts,
    session_declinecounter,
)
from ..calendar.reply import CalendarReply, parse_calendar
from ..inbox.parse import ParsedMessage
from ..state.records import (
    LIVE,
    SessionStatus,
)
from ..state.store import from_iso, iso
from ..views import request_view
from .session_parts import SessionParts
from .session_times import slot_fits
from .session_times import when_short as when_short
from .session_times import when_text as when_text

log = logging.getLogger(__name__)


class CalendarAnswers(SessionParts):
    """Reads iTIP REPLY and COUNTER and moves the session along."""

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
