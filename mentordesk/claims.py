"""Matching, claim links and claims (SPEC §3 flows 3 and 4).

``ClaimDesk`` runs on the store's writer thread, like the coordinator: every claim is a
read-check-write on one thread, so it is a compare-and-set by construction and exactly
one of any number of simultaneous clicks wins. Each public method applies all its
effects (state, emails, audit) in one transaction.

The rules it enforces, each a fix for what the claim button it replaces got wrong:
- only invited, active, in-term mentors under their monthly capacity are invited;
- nobody matching → the coordinator is told at once;
- the first claim wins; later ones see who took it;
- only the winner (or the coordinator) can release, and the releaser is not invited
  again for that request;
- the mentee's address goes to the winner only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .config import Config
from .mailer.outbox import Answered, Postman
from .matching import MatchInput, rank_mentors
from .state.store import Store, iso
from .tokens import sign
from .views import mentor_view, request_view

log = logging.getLogger(__name__)

RECENT = timedelta(days=90)


def month_start(now: datetime, zone: str) -> datetime:
    """Midnight on the 1st of ``now``'s month in ``zone`` (capacity is per calendar month)."""
    local = now.astimezone(ZoneInfo(zone))
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class ClaimResult:
    """What a claim, release or pause attempt came to; the web page and emails show it."""

    outcome: str  # claimed | yours | taken | withdrawn | closed | full | not_invited |
    # released | not_yours | paused | unknown
    number: int | None = None
    request: Mapping[str, Any] = field(default_factory=dict)
    mentor: Mapping[str, Any] = field(default_factory=dict)
    holder_name: str = ""  # who has it, for "already taken by …"
    load: Mapping[str, int] = field(default_factory=dict)  # taken / capacity this month
    pick_url: str = ""  # set when the mentor must pick the session time


class ClaimDesk:
    """Invites mentors to requests and settles their claims."""

    def __init__(self, config: Config, store: Store, postman: Postman) -> None:
        self.config = config
        self.store = store
        self.postman = postman
        # What happens once a request is claimed (the session booking plugs in here).
        self.on_claimed: Callable[[int, datetime], object] = lambda number, now: None

    # Links -------------------------------------------------------------------------------

    def link(self, purpose: str, person: str, obj: str, now: datetime) -> str:
        token = sign(
            self.config.secret,
            purpose=purpose,
            person=person,
            obj=obj,
            expires=now + self.config.web.link_lifetime,
        )
        return f"{self.config.program.base_url}/{purpose}/{token}"

    # Matching ----------------------------------------------------------------------------

    def load_of(
        self, email: str, now: datetime, taken: Mapping[str, int] | None = None
    ) -> dict[str, int]:
        """Sessions taken this month and the capacity; ``taken`` saves a scan of claims
        when the caller already counted them."""
        mentor = self.store.mentor(email) or {}
        if taken is None:
            taken = self.store.claims_since(month_start(now, self.config.program.timezone))
        capacity = int(mentor.get("capacity") or self.config.matching.default_capacity)
        return {"taken": taken.get(email, 0), "capacity": capacity}

    def match(
        self, number: int, now: datetime, *, reason: str = "new", count: int | None = None
    ) -> list[str]:
        """Invite the best ``count`` (default invite_count) mentors not yet invited; tell
        the coordinator if there are none (unless widening: the ladder escalates then).

        Returns the emails invited now.
        """
        request = self.store.request(number)
        if request is None or request["status"] != "open":
            return []
        released = set(request.get("released_by", []))
        already = {i["email"] for i in request.get("invited", [])}
        if reason == "released":
            already = set()  # after a release, everyone but the releaser may be asked again
        excluded = released | already | {request["mentee"]}
        # A follow-up (flow 7) is for "another mentor": the first one is never asked.
        excluded |= set(request.get("exclude_mentors", []))
        # Only mentors sharing a skill can rank at all: copy just those out of the store.
        wanted = frozenset(request.get("skills") or ())
        mentors = self.store.mentors_where(lambda m: not wanted.isdisjoint(m.get("skills") or ()))
        excluded |= {m["email"] for m in mentors if self.store.is_bounced(m["email"])}
        data = MatchInput(
            sessions_this_month=self.store.claims_since(
                month_start(now, self.config.program.timezone)
            ),
            recent_sessions=self.store.claims_since(now - RECENT),
            excluded=frozenset(excluded),
        )
        ranked = rank_mentors(request, mentors, now, data)
        chosen = [c.email for c in ranked[: count or self.config.matching.invite_count]]
        if not chosen:
            if not request.get("no_match_told") and reason != "widen":
                request["no_match_told"] = iso(now)
                self.store.save_request(request)
                self.store.audit("no mentor matches", now=now, request=number)
                self._tell_coordinator_no_match(request, now)
            return []
        invited = list(request.get("invited", []))
        for email in chosen:
            sent = self._invite(
                request, email, now, again=reason == "released", taken=data.sessions_this_month
            )
            # The Message-ID lets a reminder ("bump") thread on this invitation.
            invited.append({"email": email, "at": iso(now), "message_id": sent})
        request["invited"] = invited
        request.pop("no_match_told", None)
        self.store.save_request(request)
        self.store.audit("mentors invited", now=now, request=number, mentors=chosen)
        return chosen

    def _invite(
        self,
        request: Mapping[str, Any],
        email: str,
        now: datetime,
        *,
        again: bool,
        taken: Mapping[str, int] | None = None,
    ) -> str:
        mentor = self.store.mentor(email) or {"email": email, "name": ""}
        number = int(request["number"])
        return self.postman.send(
            "claim_invite",
            to=email,
            to_name=mentor.get("name", ""),
            now=now,
            context={
                "mentor": mentor,
                "request": request_view(request),
                "again": again,
                "load": self.load_of(email, now, taken),
                "claim_url": self.link("claim", email, str(number), now),
                "pause_url": self.link("pause", email, "mentor", now),
                "lifetime_days": self.config.web.link_lifetime.days,
            },
            thread=("claim", {"number": number, "mentor": email}),
            request=number,
        )

    def _tell_coordinator_no_match(self, request: Mapping[str, Any], now: datetime) -> None:
        self.postman.send(
            "coordinator_no_match",
            to=self.config.program.coordinator,
            now=now,
            context={"request": request_view(request), "mentee": request["mentee"]},
            request=int(request["number"]),
        )

    # Claims ------------------------------------------------------------------------------

    def view(self, number: int, mentor_email: str, now: datetime) -> ClaimResult:
        """What the claim page shows; changes nothing (a GET never does)."""
        request = self.store.request(number)
        mentor = self.store.mentor(mentor_email)
        if request is None or mentor is None:
            return ClaimResult("unknown", number)
        return ClaimResult(
            self._state_for(request, mentor_email),
            number,
            request_view(request),
            mentor,
            self._holder_name(request),
            self.load_of(mentor_email, now),
        )

    def claim(
        self,
        number: int,
        mentor_email: str,
        now: datetime,
        *,
        via: str,
        answering: Answered | None = None,
    ) -> ClaimResult:
        """Give the request to ``mentor_email`` if nobody has it yet (compare-and-set)."""
        with self.store.transaction():
            request = self.store.request(number)
            mentor = self.store.mentor(mentor_email)
            if request is None or mentor is None:
                return ClaimResult("unknown", number)
            state = self._state_for(request, mentor_email)
            load = self.load_of(mentor_email, now)
            if state != "open":
                result = ClaimResult(
                    state, number, request_view(request), mentor, self._holder_name(request), load
                )
                self.store.audit(
                    "claim refused",
                    now=now,
                    request=number,
                    mentor=mentor_email,
                    outcome=state,
                    via=via,
                )
                return result
            if mentor.get("status") == "resigned":
                return ClaimResult("not_invited", number, request_view(request), mentor)
            if load["taken"] >= load["capacity"]:
                self.store.audit(
                    "claim refused",
                    now=now,
                    request=number,
                    mentor=mentor_email,
                    outcome="full",
                    via=via,
                )
                return ClaimResult("full", number, request_view(request), mentor, "", load)
            request.update(
                {
                    "status": "claimed",
                    "claimed_by": mentor_email,
                    "claimed_at": iso(now),
                    "updated": iso(now),
                }
            )
            self.store.save_request(request)
            self.store.audit("claimed", now=now, request=number, mentor=mentor_email, via=via)
            self._introduce(request, mentor, now, answering=answering)
            self.on_claimed(number, now)
            booked = self.store.request(number) or {}
            pick_url = ""
            if booked.get("schedule") == "mentor picks":
                # No common slot: the result page leads straight to picking a time.
                pick_url = self.link("schedule", mentor_email, str(number), now)
            return ClaimResult(
                "claimed",
                number,
                request_view(request),
                mentor,
                mentor.get("name", ""),
                self.load_of(mentor_email, now),
                pick_url,
            )

    def _state_for(self, request: Mapping[str, Any], mentor_email: str) -> str:
        status = request["status"]
        if status == "withdrawn":
            return "withdrawn"
        if status in ("claimed", "done"):
            return "yours" if request.get("claimed_by") == mentor_email else "taken"
        if status != "open":
            return "closed"
        invited = {i["email"] for i in request.get("invited", [])}
        if mentor_email not in invited or mentor_email in request.get("released_by", []):
            return "not_invited"
        return "open"

    def _holder_name(self, request: Mapping[str, Any]) -> str:
        holder = request.get("claimed_by")
        if not holder:
            return ""
        mentor = self.store.mentor(holder) or {}
        return str(mentor.get("name") or "another mentor")

    def _introduce(
        self,
        request: Mapping[str, Any],
        mentor: Mapping[str, Any],
        now: datetime,
        answering: Answered | None,
    ) -> None:
        number = int(request["number"])
        view = request_view(request)
        self.postman.send(
            "intro_mentor",
            to=mentor["email"],
            to_name=mentor.get("name", ""),
            now=now,
            context={
                "mentor": mentor,
                "request": view,
                "mentee_email": request["mentee"],
                "release_url": self.link("release", mentor["email"], str(number), now),
            },
            answering=answering,
            thread=("request-mentor", {"number": number, "mentor": mentor["email"]}),
            request=number,
        )
        self.postman.send(
            "intro_mentee",
            to=request["mentee"],
            to_name=request.get("name", ""),
            now=now,
            context={"mentor": mentor_view(mentor), "request": view},
            thread=("request", number),
            request=number,
        )
        for invite in request.get("invited", []):
            email = invite["email"]
            if email != mentor["email"] and not self.store.is_bounced(email):
                other = self.store.mentor(email) or {"name": ""}
                self.postman.send(
                    "claim_taken",
                    to=email,
                    to_name=other.get("name", ""),
                    now=now,
                    context={
                        "mentor": other,
                        "request": view,
                        "holder_name": mentor.get("name", ""),
                    },
                    request=number,
                )

    # Release -------------------------------------------------------------------------------

    def release(self, number: int, by: str, now: datetime) -> ClaimResult:
        """The holder (or the coordinator) gives the request back; it goes back to matching."""
        with self.store.transaction():
            request = self.store.request(number)
            if request is None:
                return ClaimResult("unknown", number)
            holder = request.get("claimed_by")
            is_coordinator = by == self.config.program.coordinator
            if request["status"] != "claimed" or not holder:
                return ClaimResult(
                    "closed" if request["status"] != "open" else "released",
                    number,
                    request_view(request),
                )
            if by != holder and not is_coordinator:
                self.store.audit("release refused", now=now, request=number, by=by)
                return ClaimResult(
                    "not_yours", number, request_view(request), {}, self._holder_name(request)
                )
            released = list(request.get("released_by", []))
            if holder not in released:
                released.append(holder)
            request.update(
                {
                    "status": "open",
                    "claimed_by": None,
                    "claimed_at": None,
                    "released_by": released,
                    "reopened": iso(now),  # the ladder for unclaimed requests restarts
                    "updated": iso(now),
                }
            )
            self.store.save_request(request)
            self.store.audit("released", now=now, request=number, mentor=holder, by=by)
            self.postman.send(
                "request_released",
                to=request["mentee"],
                to_name=request.get("name", ""),
                now=now,
                context={"request": request_view(request)},
                thread=("request", number),
                request=number,
            )
            self.match(number, now, reason="released")
            return ClaimResult(
                "released", number, request_view(request), self.store.mentor(holder) or {}
            )

    # Pause ---------------------------------------------------------------------------------

    def pause(self, mentor_email: str, now: datetime) -> ClaimResult:
        with self.store.transaction():
            mentor = self.store.mentor(mentor_email)
            if mentor is None:
                return ClaimResult("unknown")
            if mentor["status"] == "active":
                mentor.update({"status": "paused", "updated": iso(now)})
                self.store.save_mentor(mentor)
                self.store.audit("mentor pause", now=now, mentor=mentor_email, via="link")
            return ClaimResult("paused", mentor=mentor)
