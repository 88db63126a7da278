"""What the session desk sends: invitations, cancellations, pick-a-time requests and
reminders (iMIP, RFC 6047), each to the person in their own zone."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ..calendar.conference import call_url_of
from ..calendar.invite import (
    Attendee,
    EventHead,
    calendar_mime_parts,
    session_cancel,
    session_request,
)
from ..feed import feed_url
from ..state.records import (
    RequestStatus,
    SessionStatus,
    request_status,
    session_status,
)
from ..state.store import from_iso, iso
from ..views import mentor_view, request_view
from .session_parts import SessionParts
from .session_times import when_short as when_short
from .session_times import when_text as when_text

log = logging.getLogger(__name__)


class SessionMail(SessionParts):
    """The emails of a session."""

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
        call_url = call_url_of(session, mentor)
        location = call_url or self.config.sessions.location
        ics = session_request(
            self._head(session, self._attendees(session), now),
            start,
            end - start,
            description=self._description(request, mentor, location),
            location=location,
            call_url=call_url,
        )
        others = self.other_times(session, now)
        # The same parts for both: MIMEParts are only read when an email is written.
        inline, attachment = calendar_mime_parts(ics, "REQUEST")
        for person, other in ((mentor, mentee), (mentee, mentor)):
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
                    "call_url": call_url,
                    "other_times": self.other_time_links(
                        session, email, person["zone"], others, now
                    ),
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

    def _description(
        self, request: Mapping[str, Any], mentor: Mapping[str, Any], location: str
    ) -> str:
        view = request_view(request)
        return (
            f"{view['tag']}: {view['skills']}\n\n{view['details']}\n\n"
            f"Mentor: {mentor.get('name') or mentor['email']}\n"
            f"{location}\n"
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
        inline, attachment = calendar_mime_parts(ics, "CANCEL")
        for person, other in ((mentor, mentee), (mentee, mentor)):
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
                        "location": call_url_of(session, mentor) or self.config.sessions.location,
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
