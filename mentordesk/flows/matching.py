"""Inviting mentors to a request (SPEC §3, flow 3): the best few by ``ranking.py``'s
order, each with a personal claim link; the coordinator is told when there is nobody.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..config import Config
from ..inbox.hours import format_windows, hours_for_reader
from ..mailer.outbox import Postman
from ..state.records import RequestStatus, mentor_capacity, request_status
from ..state.store import Store, iso
from ..tokens import Links
from ..views import request_view, windows_from_doc
from .ranking import GROUPS, GROUPS_VERSION, Candidate, MatchInput, mentor_placement, rank_grouped

__all__ = ["RECENT", "MatchingDesk", "mentee_hours_for", "month_start"]


# --- the matching desk: who gets a claim email (effects) ------------------------------


def mentee_hours_for(request: Mapping[str, Any], reader_zone: str, now: datetime) -> str:
    """The mentee's weekly hours as a mentor in ``reader_zone`` reads them, her own in
    brackets ("Tue–Sat 01:00–05:00 your time (Mon–Fri 18:00–22:00 in America/Chicago)");
    "" when she gave none. Without her zone the hours cannot be placed, and we say so."""
    windows = windows_from_doc(request.get("availability") or [])
    if not windows:
        return ""
    zone = request.get("timezone")
    if not zone:
        return f"{format_windows(windows)} in their own time (their time zone is not known yet)"
    return hours_for_reader(windows, zone, reader_zone, now)


RECENT = timedelta(days=90)


def month_start(now: datetime, zone: str) -> datetime:
    """Midnight on the 1st of ``now``'s month in ``zone`` (capacity is per calendar month)."""
    local = now.astimezone(ZoneInfo(zone))
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class MatchingDesk:
    """Invites the best mentors to an open request, each with a personal claim link.

    Runs on the store's writer thread, inside the caller's transaction.
    """

    def __init__(self, config: Config, store: Store, postman: Postman, links: Links) -> None:
        self.config = config
        self.store = store
        self.postman = postman
        self.links = links

    def load_of(
        self, email: str, now: datetime, taken: Mapping[str, int] | None = None
    ) -> dict[str, int]:
        """Sessions taken this month and the capacity; ``taken`` saves a scan of claims
        when the caller already counted them."""
        mentor = self.store.stored_mentor(email) or {}
        if taken is None:
            taken = self.store.claims_since(month_start(now, self.config.program.timezone))
        capacity = mentor_capacity(mentor, self.config.matching.default_capacity)
        return {"taken": taken.get(email, 0), "capacity": capacity}

    def match(
        self, number: int, now: datetime, *, reason: str = "new", count: int | None = None
    ) -> list[str]:
        """Invite the best ``count`` (default invite_count) mentors not yet invited; tell
        the coordinator if there are none (unless widening: the ladder escalates then).

        ``reason``: new | released (everyone but the releasers may be asked again) |
        widen. Returns the emails invited now.
        """
        request = self.store.request(number)
        if request is None or request_status(request) is not RequestStatus.OPEN:
            return []
        already = {i["email"] for i in request.get("invited", [])}
        if reason == "released":
            already = set()
        ranked, data = self.ranking(
            request, now, excluded=already, limit=count or self.config.matching.invite_count
        )
        chosen = [c.email for c in ranked[: count or self.config.matching.invite_count]]
        if not chosen:
            if not request.get("no_match_told") and reason != "widen":
                request["no_match_told"] = iso(now)
                self.store.save_request(request)
                self.store.audit("no mentor matches", now=now, request=number)
                self.postman.send(
                    "coordinator_no_match",
                    to=self.config.program.coordinator,
                    now=now,
                    context={"request": request_view(request), "mentee": request["mentee"]},
                    request=number,
                )
            return []
        invited = list(request.get("invited", []))
        view = request_view(request)  # the same in every invitation
        for email in chosen:
            sent = self._invite(
                request,
                email,
                now,
                again=reason == "released",
                taken=data.sessions_this_month,
                view=view,
            )
            # The Message-ID lets a reminder ("bump") thread on this invitation.
            invited.append({"email": email, "at": iso(now), "message_id": sent})
        request["invited"] = invited
        request.pop("no_match_told", None)
        self.store.save_request(request)
        self.store.audit("mentors invited", now=now, request=number, mentors=chosen)
        return chosen

    def ranking(
        self,
        request: Mapping[str, Any],
        now: datetime,
        *,
        excluded: Iterable[str] = (),
        limit: int | None = None,
    ) -> tuple[list[Candidate], MatchInput]:
        """Everyone who could take ``request`` now, best first (``rank_mentors``; the first
        ``limit`` only, when given), and the counts they were ranked on. Never ranked: those
        who gave it back, the mentee, a follow-up's earlier mentors, addresses the mail
        gate refuses, and ``excluded``."""
        released = set(request.get("released_by", []))
        left_out = released | set(excluded) | {request["mentee"]}
        # A follow-up (flow 7) is for "another mentor": the first one is never asked.
        left_out |= set(request.get("exclude_mentors", []))
        data = MatchInput(
            sessions_this_month=self.store.claims_since(
                month_start(now, self.config.program.timezone)
            ),
            # To the minute: a 90-day window does not need the second, and the store
            # counts once a minute rather than once a request.
            recent_sessions=self.store.claims_since(
                (now - RECENT).replace(second=0, microsecond=0)
            ),
            excluded=frozenset(left_out),
        )
        # The store keeps the mentors grouped as ranking weighs them: the work is per
        # group and per mentor read, not per mentor enrolled (``rank_grouped``).
        groups = self.store.mentor_groups(GROUPS, mentor_placement, version=GROUPS_VERSION)
        ranked = rank_grouped(
            request,
            groups,
            self.store.stored_mentor,
            now,
            data,
            limit,
            mailable=self.postman.may_mail,
        )
        return ranked, data

    def rematch(self, number: int, now: datetime) -> object:
        """Match a request again after its holder gave it back or left."""
        return self.match(number, now, reason="released")

    def _invite(
        self,
        request: Mapping[str, Any],
        email: str,
        now: datetime,
        *,
        again: bool,
        taken: Mapping[str, int] | None = None,
        view: Mapping[str, Any] | None = None,
    ) -> str | None:
        # Read in place: the templates only read it.
        mentor = self.store.stored_mentor(email) or {"email": email, "name": ""}
        number = int(request["number"])
        return self.postman.send(
            "claim_invite",
            to=email,
            to_name=mentor.get("name", ""),
            now=now,
            context={
                "mentor": mentor,
                "request": view or request_view(request),
                "mentee_hours": mentee_hours_for(
                    request, mentor.get("timezone") or self.config.program.timezone, now
                ),
                "again": again,
                "load": self.load_of(email, now, taken),
                "claim_url": self.links("claim", email, str(number), now),
                "pause_url": self.links("pause", email, "mentor", now),
                "lifetime_days": self.config.web.link_lifetime.days,
            },
            thread=("claim", {"number": number, "mentor": email}),
            request=number,
        )
