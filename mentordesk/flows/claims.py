"""Claims (SPEC §3 flow 4): the first press wins, the others see who took it.

``ClaimDesk`` runs on the store's writer thread, like the coordinator: every claim is a
read-check-write on one thread, so it is a compare-and-set by construction and exactly
one of any number of simultaneous clicks wins. Each public method applies all its
effects (state, emails, audit) in one transaction.

The rules it enforces, each a fix for what the claim button it replaces got wrong:
- the first claim wins; later ones see who took it;
- only the winner (or the coordinator) can release, and the releaser is not invited
  again for that request;
- the mentee's address goes to the winner only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..config import Config
from ..mailer.outbox import Answered, Postman
from ..state.committed import CommittedView
from ..state.lifecycle import RequestEvent, next_request_status
from ..state.records import (
    MentorStatus,
    RequestStatus,
    mentor_capacity,
    mentor_status,
    request_status,
    term_over,
)
from ..state.store import Store, iso
from ..views import mentor_view, request_view, tag
from .lifecycle import Lifecycle
from .matching import MatchingDesk, month_start

log = logging.getLogger(__name__)

# The request views the claim page keeps (``ClaimDesk._committed_view_of``): the open
# requests of a large program, each up to a few kB (views.py shortens what people wrote).
_VIEWS_KEPT = 1024


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
    """Settles mentors' claims and releases of the requests they were invited to."""

    def __init__(
        self,
        config: Config,
        store: Store,
        postman: Postman,
        matching: MatchingDesk,
        lifecycle: Lifecycle,
        book: Callable[[int, datetime], object],
        must_pick: Callable[[int, datetime], bool] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.postman = postman
        self.matching = matching
        self.links = matching.links
        self.lifecycle = lifecycle
        self.book = book  # what happens once a request is claimed: the session booking
        # Will the booking find no common time, so that the mentor picks one? (Told on
        # the page of a claim whose effects come after the answer.)
        self.must_pick = must_pick or (lambda number, now: False)
        # Claims this process answered whose effects its caller runs next (``settle``);
        # the sweep leaves these alone a while (``claim_effects.py``).
        self._settling: set[int] = set()
        # request number → (committed document, its request_view): see _committed_view_of.
        self._views: dict[int, tuple[Mapping[str, Any], Mapping[str, Any]]] = {}

    # Claims ------------------------------------------------------------------------------

    def view(self, number: int, mentor_email: str, now: datetime) -> ClaimResult:
        """What the claim page shows; changes nothing (a GET never does). On the writer."""
        return _shown(
            number,
            mentor_email,
            self.store.request(number),
            self.store.mentor,
            lambda mentor: self.matching.load_of(mentor_email, now),
        )

    def committed_view(
        self, committed: CommittedView, number: int, mentor_email: str, now: datetime
    ) -> ClaimResult:
        """``view`` from the committed state, by point reads: on any thread, without the
        writer (the GET page). What it shows is durable (``state/committed.py``)."""

        def load(mentor: Mapping[str, Any]) -> dict[str, int]:
            # As MatchingDesk.load_of counts: claims since the 1st of the program's month.
            since = month_start(now, self.config.program.timezone)
            return {
                "taken": committed.claims_since(mentor_email, iso(since)),
                "capacity": mentor_capacity(mentor, self.config.matching.default_capacity),
            }

        return _shown(
            number,
            mentor_email,
            committed.request(number),
            committed.mentor,
            load,
            self._committed_view_of,
        )

    def _committed_view_of(self, doc: Mapping[str, Any]) -> Mapping[str, Any]:
        """``request_view(doc)`` of a committed document, made once per document: every
        page of a request (ten invited mentors, opened again and again) shows the same
        one, and a committed document is never changed in place (``state/committed.py``)
        — a new version is a new object. The last ``_VIEWS_KEPT`` requests are kept."""
        number = int(doc["number"])
        kept = self._views.get(number)
        if kept is not None and kept[0] is doc:
            return kept[1]
        if len(self._views) >= _VIEWS_KEPT:
            self._views.pop(next(iter(self._views)), None)
        view = self._views[number] = (doc, request_view(doc))
        return view[1]

    def claim(
        self,
        number: int,
        mentor_email: str,
        now: datetime,
        *,
        via: str,
        answering: Answered | None = None,
        defer_effects: bool = False,
    ) -> ClaimResult:
        """Give the request to ``mentor_email`` if nobody has it yet (compare-and-set).

        With ``defer_effects`` (the web page, whose answer should not wait for them) the
        introductions, "taken" notices and the booking are left to ``settle``, which the
        caller runs right after; the request records that they are due
        (``effects_due``) in the claim's own transaction, so that after a crash in
        between the sweep does them (``claim_effects.py``): once, since ``settle`` clears
        the mark in the transaction that stores them.
        """
        with self.store.transaction():
            request = self.store.request(number)
            mentor = self.store.mentor(mentor_email)
            if request is None or mentor is None:
                return ClaimResult("unknown", number)
            state = claim_state(request, mentor_email)
            load = self.matching.load_of(mentor_email, now)
            if state != "open":
                result = ClaimResult(
                    state,
                    number,
                    request_view(request),
                    mentor,
                    holder_name(request, self.store.mentor),
                    load,
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
            if mentor_status(mentor).left or term_over(mentor, now):
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
            claimed = next_request_status(request_status(request), RequestEvent.CLAIMED)
            assert claimed is not None  # claim_state said "open"
            request.update(
                {
                    "status": claimed.value,
                    "claimed_by": mentor_email,
                    "claimed_at": iso(now),
                    "updated": iso(now),
                }
            )
            if defer_effects:
                request["effects_due"] = iso(now)
                self._settling.add(number)
            self.store.save_request(request)
            self.store.audit("claimed", now=now, request=number, mentor=mentor_email, via=via)
            log.info("claimed %s by %s (via %s)", tag(number), mentor_email, via)
            if defer_effects:
                must_pick = self.must_pick(number, now)
            else:
                self._introduce(request, mentor, now, answering=answering)
                self.book(number, now)
                booked = self.store.request(number) or {}
                must_pick = booked.get("schedule") == "mentor picks"
            pick_url = ""
            if must_pick:
                # No common slot: the result page leads straight to picking a time.
                pick_url = self.links("schedule", mentor_email, str(number), now)
            return ClaimResult(
                "claimed",
                number,
                request_view(request),
                mentor,
                mentor.get("name", ""),
                self.matching.load_of(mentor_email, now),
                pick_url,
            )

    def settle(self, number: int, now: datetime) -> bool:
        """Do what a claim that answered first left to do (``claim(defer_effects=True)``):
        introduce the two, tell the other invited mentors, book the session. Once: the
        mark goes in the same transaction. Nothing when the request has moved on since
        (withdrawn, released): no mail about a request that is not theirs any more."""
        self._settling.discard(number)
        with self.store.transaction():
            request = self.store.request(number)
            if request is None or not request.get("effects_due"):
                return False
            request["effects_due"] = None
            self.store.save_request(request)
            holder = request.get("claimed_by") or ""
            mentor = self.store.mentor(holder)
            if mentor is None or request_status(request) is not RequestStatus.CLAIMED:
                self.store.audit("claim effects dropped", now=now, request=number)
                return False
            self._introduce(request, mentor, now, answering=None)
            self.book(number, now)
            return True

    def settling_here(self, number: int) -> bool:
        """Did this process answer the claim of ``number`` and leave its effects to its
        caller's ``settle``, still to come? (Else whoever answered it has stopped.)"""
        return number in self._settling

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
                "release_url": self.links("release", mentor["email"], str(number), now),
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
        # Those who gave it back (a released or reassigned holder) need no "taken" news.
        gave_back = set(request.get("released_by") or ())
        for invite in request.get("invited", []):
            email = invite["email"]
            if email != mentor["email"] and email not in gave_back:
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
            status = request_status(request)
            if not status.held or not holder:
                outcome = "released" if status is RequestStatus.OPEN else "closed"
                return ClaimResult(outcome, number, request_view(request))
            if by != holder and by != self.config.program.coordinator:
                self.store.audit("release refused", now=now, request=number, by=by)
                return ClaimResult(
                    "not_yours",
                    number,
                    request_view(request),
                    {},
                    holder_name(request, self.store.mentor),
                )
            self.lifecycle.release(number, by, now)
            return ClaimResult(
                "released",
                number,
                request_view(self.store.request(number) or request),
                self.store.mentor(holder) or {},
            )

    # Pause ---------------------------------------------------------------------------------

    def pause(self, mentor_email: str, now: datetime) -> ClaimResult:
        with self.store.transaction():
            mentor = self.store.mentor(mentor_email)
            if mentor is None:
                return ClaimResult("unknown")
            if mentor["status"] == MentorStatus.ACTIVE:
                mentor.update({"status": MentorStatus.PAUSED.value, "updated": iso(now)})
                self.store.save_mentor(mentor)
                self.store.audit("mentor pause", now=now, mentor=mentor_email, via="link")
            return ClaimResult("paused", mentor=mentor)


# The page's decisions, over plain data --------------------------------------------------


def claim_state(request: Mapping[str, Any], mentor_email: str) -> str:
    """Where ``request`` stands for ``mentor_email``: open (theirs to claim), yours,
    taken, withdrawn, closed or not_invited."""
    status = request_status(request)
    if status is RequestStatus.WITHDRAWN:
        return "withdrawn"
    if request.get("claimed_by") and (status.held or status.finished):
        return "yours" if request.get("claimed_by") == mentor_email else "taken"
    if status is not RequestStatus.OPEN:
        return "closed"
    invited = {i["email"] for i in request.get("invited", [])}
    if mentor_email not in invited or mentor_email in request.get("released_by", []):
        return "not_invited"
    return "open"


def holder_name(
    request: Mapping[str, Any], mentor_of: Callable[[str], Mapping[str, Any] | None]
) -> str:
    """The name of whoever holds ``request`` ("" when nobody does)."""
    holder = request.get("claimed_by")
    if not holder:
        return ""
    mentor = mentor_of(holder) or {}
    return str(mentor.get("name") or "another mentor")


def _shown(
    number: int,
    mentor_email: str,
    request: Mapping[str, Any] | None,
    mentor_of: Callable[[str], Mapping[str, Any] | None],
    load: Callable[[Mapping[str, Any]], Mapping[str, int]],
    view_of: Callable[[Mapping[str, Any]], Mapping[str, Any]] = request_view,
) -> ClaimResult:
    """What the claim page shows ``mentor_email`` for request ``number``."""
    mentor = mentor_of(mentor_email)
    if request is None or mentor is None:
        return ClaimResult("unknown", number)
    return ClaimResult(
        claim_state(request, mentor_email),
        number,
        view_of(request),
        mentor,
        holder_name(request, mentor_of),
        load(mentor),
    )
