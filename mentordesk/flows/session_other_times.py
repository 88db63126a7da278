"""Other times, one click: the invitation offers a few other times that suit both people,
each a signed link; the page behind it moves the session there (``SessionDesk`` joins
this part). And a new session's own video-call room, made once from ``[sessions]
call_link`` and kept through every move (``calendar/conference.py`` says which link wins).

A link names the session, the SEQUENCE of the invitation it came in, and the time
(``session-time`` links, object ``"<uid> <sequence> <start>"``). It works only while that
invitation is still the session's latest, the request is still booked, and the time
still suits both by the proposal's own rules (``SessionDesk.candidates``): a time taken
since, a session moved, cancelled or held since, says so and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..calendar.conference import fill_call_link, random_room
from ..state.records import LIVE, RequestStatus, request_status
from ..state.store import from_iso, iso
from ..views import request_view
from .session_parts import SessionParts
from .session_times import CHOICES_APART, spread_choices, when_text

OTHER_TIMES = 3  # offered in each invitation
TIME_PURPOSE = "session-time"
_SPREAD_FROM = 200  # common times looked at to find a few hours apart
# How far down the list of common times an offered one may have slipped and still be
# taken: every slot in the horizon, at half-hour steps, with room to spare.
_ALL_SLOTS = 4000


@dataclass(frozen=True)
class TimeOffer:
    """What a ``session-time`` link says: move session ``uid`` (as of ``sequence``) to
    ``start``."""

    uid: str
    sequence: int
    start: datetime

    @property
    def obj(self) -> str:
        return f"{self.uid} {self.sequence} {iso(self.start)}"

    @classmethod
    def parse(cls, obj: str) -> TimeOffer | None:
        """The offer a verified link's object names (None: not one of ours)."""
        parts = obj.split(" ")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        try:
            start = from_iso(parts[2])
        except ValueError:
            return None
        return cls(parts[0], int(parts[1]), start)


def session_room(template: str, program: str, number: int) -> str:
    """A new session's own room from ``[sessions] call_link`` ("" when none is set)."""
    if not template:
        return ""
    return fill_call_link(template, program=program, request=number, random=random_room())


class OtherTimes(SessionParts):
    """The other-times links of an invitation, and the move they ask for."""

    def other_times(self, session: Mapping[str, Any], now: datetime) -> list[datetime]:
        """Up to ``OTHER_TIMES`` other times that suit both, earliest first, hours apart
        from the session's and from each other (so that they are real alternatives)."""
        request = self.store.request(int(session["request"])) or {}
        if self.unknown_week(request):
            return []  # times in the mentor's week only would not be "suit both"
        current = from_iso(session["start"])
        found = self.candidates(
            int(session["request"]),
            now,
            avoid=[session["start"], *session.get("declined_starts", [])],
            except_uid=session["uid"],
            limit=_SPREAD_FROM,
        )
        apart = [slot for slot in found if abs(slot - current) >= CHOICES_APART]
        zone = self._zone((self.store.mentor(session["mentor"]) or {}).get("timezone"))
        return spread_choices(apart, zone, lambda slot: True)[:OTHER_TIMES]

    def other_time_links(
        self,
        session: Mapping[str, Any],
        email: str,
        zone: str,
        starts: list[datetime],
        now: datetime,
    ) -> list[dict[str, str]]:
        """``starts`` as ``email`` reads them (in ``zone``), each with its signed link."""
        length = self.config.sessions.length
        return [
            {
                "when": when_text(start, start + length, zone),
                "url": self.links(
                    TIME_PURPOSE,
                    email,
                    TimeOffer(session["uid"], int(session["sequence"]), start).obj,
                    now,
                ),
            }
            for start in starts
        ]

    def time_offer_view(self, obj: str, person: str, now: datetime) -> dict[str, Any]:
        """What the page of a ``session-time`` link shows ``person``: the time in her zone,
        and whether it can still be had (``outcome``: free | taken | gone | not_yours)."""
        offer = TimeOffer.parse(obj)
        session = self.store.session(offer.uid) if offer else None
        if offer is None or session is None:
            return {"outcome": "gone"}
        mentor, mentee = self._people(session)
        if person not in (mentor["email"], mentee["email"]):
            return {"outcome": "not_yours"}
        me, other = (mentor, mentee) if person == mentor["email"] else (mentee, mentor)
        length = self.config.sessions.length
        return {
            "outcome": self._offer_outcome(offer, session, now),
            "when": when_text(offer.start, offer.start + length, me["zone"]),
            "now_when": when_text(from_iso(session["start"]), from_iso(session["end"]), me["zone"]),
            "other": other,
            "request": request_view(
                self.store.request(int(session["request"])) or {"number": session["request"]}
            ),
        }

    def _offer_outcome(self, offer: TimeOffer, session: Mapping[str, Any], now: datetime) -> str:
        """free, or why not: gone (the session changed since the link was sent: moved,
        cancelled, held; or its request is no longer booked) or taken (the time is no
        longer free in both weeks)."""
        number = int(session["request"])
        request = self.store.request(number) or {}
        if (
            session["status"] not in LIVE
            or int(session["sequence"]) != offer.sequence
            or not request
            or request_status(request) is not RequestStatus.BOOKED
            or self.session_of(number) is None
        ):
            return "gone"
        if self.unknown_week(request):
            return "taken"
        free = self.candidates(number, now, except_uid=session["uid"], limit=_ALL_SLOTS)
        return "free" if offer.start in free else "taken"

    def move_to_offer(self, obj: str, person: str, now: datetime) -> str:
        """Move the session to the offered time, if it can still be had: the same UID with
        SEQUENCE + 1 to both. Returns moved | taken | gone | not_yours."""
        with self.store.transaction():
            offer = TimeOffer.parse(obj)
            session = self.store.session(offer.uid) if offer else None
            if offer is None or session is None:
                return "gone"
            if person not in (session["mentor"], session["mentee"]):
                return "not_yours"
            outcome = self._offer_outcome(offer, session, now)
            if outcome != "free":
                self.store.audit(
                    "other time refused", now=now, request=session["request"], why=outcome
                )
                return outcome
            self.propose(int(session["request"]), offer.start, now, basis="other", chosen_by=person)
            return "moved"
