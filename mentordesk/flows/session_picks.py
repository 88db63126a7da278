"""Picking a time by hand: the mentee's page (never book blind), the mentor's page, and
what the session pages show."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ..calendar.slots import candidate_slots
from ..state.records import (
    request_status,
    session_status,
)
from ..state.store import from_iso, iso
from ..views import mentor_view, request_view
from .session_parts import SessionParts
from .session_times import DAYTIME, slot_fits, spread_choices
from .session_times import when_short as when_short
from .session_times import when_text as when_text

log = logging.getLogger(__name__)


class Picking(SessionParts):
    """The pick-a-time pages' decisions."""

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
        page, labelled in ``zone`` (hers: stored, or the browser's): a few a day, hours
        apart, over as many days as there are, each marked ``fits`` when it lies in the
        hours she gave us."""
        request = self.store.request(number) or {}
        mentor = self.store.mentor(request.get("claimed_by") or "") or {}
        if not mentor:
            return []
        shown = zone or self._zone(request.get("timezone"))
        sessions = self.config.sessions
        current = (self.session_of(number) or {}).get("uid", "")
        found = candidate_slots(
            [tuple(w) for w in mentor.get("availability") or []],
            self._zone(mentor.get("timezone")),
            [],
            None,
            self._busy(mentor["email"], now, except_uid=current),
            now,
            notice=sessions.notice,
            length=sessions.length,
            horizon=sessions.horizon,
            limit=2000,
        )
        windows = request.get("availability") or []
        mentee_zone = request.get("timezone") or zone

        def fits(slot: datetime) -> bool:
            return bool(
                windows and mentee_zone and slot_fits(slot, sessions.length, windows, mentee_zone)
            )

        def daytime(slot: datetime) -> bool:  # her "any time" (09:00-21:00) when unknown
            return slot_fits(slot, sessions.length, DAYTIME, shown)

        # Times in her week first (or in her daytime), then the rest if too few.
        preferred = fits if windows and mentee_zone else daytime
        chosen = spread_choices(found, shown, preferred)
        return [
            {
                "value": iso(slot),
                "label": when_text(slot, slot + sessions.length, shown),
                "fits": fits(slot),
            }
            for slot in chosen
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
        with self.store.transaction():
            return self._mentee_pick(number, mentee, unsafe_start, now, zone)

    def _mentee_pick(
        self, number: int, mentee: str, unsafe_start: str, now: datetime, zone: str | None
    ) -> str:
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
