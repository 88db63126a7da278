"""The ladder for unclaimed requests (SPEC §3 flow 7; Operation Code process steps 5–8).

An open request nobody has taken climbs four rungs, each after a delay from
``[timers]``, measured from when the request opened (``request["opened"]``, or
``request["reopened"]`` when a mentor gave it back: the wait starts again then):

    bump           bump_after           remind the invited mentors, with their claim link
    mentee_update  mentee_update_after  tell the mentee it is still being worked on
    widen          widen_after          invite ``[matching] widen_count`` more mentors
    escalate       escalate_after       the escalation contacts get the request, its
                                        history and a one-click "assign to mentor X"

Rungs with the same delay form one **step** (by default the bump and the word to the
mentee, on day 3). Each rung happens at most once per request, and only while the
request is ``open``: when it is done its time goes into ``request["ladder"][rung]`` in
the same transaction as its emails, so a restart neither loses nor repeats one.

Late steps (SPEC §3a, Time). A request never gets several steps at once: when the
daemon comes back after an outage, only the most recent step that came due is done —
and only if its moment is at most ``[timers] ladder_grace`` ago. Every older rung still
pending is skipped, and so is the most recent one when it is later than that; a skipped
rung goes into ``request["ladder_skipped"]`` and the audit (``skipped: late``), so the
next digest says so. An outage over days 2–12 gives the escalation alone on day 12.

``plan_climb`` is the pure decision and costs a dictionary lookup or two for a request
with nothing due, which is nearly every request on nearly every sweep. ``ladder_step``
is the sweep step that applies it. The escalation's candidates, history and assign
links live in ``flows/escalation.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ..config import Config, TimersConfig
from ..inbox.subjects import reply_subject
from ..state.records import RequestStatus, parse_time, request_status
from ..state.store import iso
from ..timers import skip_late
from ..views import request_view, tag
from .escalation import assign_obj, escalation_candidates, moment_text, request_history
from .matching import month_start
from .ranking import eligible
from .words import plural, span

if TYPE_CHECKING:
    from ..core import Coordinator

__all__ = [
    "RUNGS",
    "Climb",
    "Ladder",
    "has_pending_rung",
    "ladder_start",
    "ladder_step",
    "plan_climb",
]

log = logging.getLogger(__name__)

RUNGS = ("bump", "mentee_update", "widen", "escalate")


@dataclass(frozen=True)
class Ladder:
    """The rungs and their delays, in the order they come due, and how late a step may be."""

    rungs: tuple[tuple[str, timedelta], ...]
    grace: timedelta = timedelta(days=2)

    @classmethod
    def from_config(cls, timers: TimersConfig) -> Ladder:
        delays = {
            "bump": timers.bump_after,
            "mentee_update": timers.mentee_update_after,
            "widen": timers.widen_after,
            "escalate": timers.escalate_after,
        }
        # sorted() is stable: equal delays keep RUNGS' order (bump before telling).
        return cls(tuple(sorted(delays.items(), key=lambda item: item[1])), timers.ladder_grace)

    def delay(self, rung: str) -> timedelta:
        return dict(self.rungs)[rung]


@dataclass(frozen=True)
class Climb:
    """What the ladder does for one request at one sweep.

    ``do``: the rungs of the most recent step that came due (one step: rungs with the
    same delay), when it is within the grace; ``skip``: the rungs passed over, with the
    moment each was due. Both empty: nothing to do (nearly always).
    """

    do: tuple[str, ...] = ()
    skip: tuple[tuple[str, datetime], ...] = ()
    due: datetime | None = None  # the moment of ``do``

    def __bool__(self) -> bool:
        return bool(self.do or self.skip)


@dataclass(frozen=True)
class _Earlier:
    """An earlier message to thread on (satisfies mailer.outbox.Answered)."""

    message_id: str
    references: tuple[str, ...] = ()


# --- the decision (pure) ----------------------------------------------------------------

_NOTHING = Climb()


def ladder_start(request: Mapping[str, Any]) -> datetime | None:
    """When the request's wait began: re-opened after a release, or opened; None if never."""
    return parse_time(request.get("reopened") or request.get("opened"))


def settled(request: Mapping[str, Any]) -> set[str]:
    """The rungs that happened or were skipped: none of them comes again."""
    return {*(request.get("ladder") or {}), *(request.get("ladder_skipped") or {})}


def plan_climb(request: Mapping[str, Any], ladder: Ladder, now: datetime) -> Climb:
    """What to do for ``request`` at ``now``: at most one step, and what is passed over."""
    # A plain comparison with the enum (a str): this runs for every stored request on
    # every sweep, and "open" has no older spelling for request_status() to map.
    if request.get("status") != RequestStatus.OPEN:
        return _NOTHING
    start = ladder_start(request)
    if start is None:
        return _NOTHING
    waited = now - start
    if waited < ladder.rungs[0][1]:
        return _NOTHING  # the common case: too early for anything
    done = request.get("ladder") or {}
    skipped = request.get("ladder_skipped") or {}
    pending = [
        (rung, after)
        for rung, after in ladder.rungs
        if waited >= after and rung not in done and rung not in skipped
    ]
    if not pending:
        return _NOTHING
    latest = pending[-1][1]
    moment = start + latest
    if now - moment > ladder.grace:
        return Climb(skip=tuple((rung, start + after) for rung, after in pending), due=moment)
    return Climb(
        do=tuple(rung for rung, after in pending if after == latest),
        skip=tuple((rung, start + after) for rung, after in pending if after < latest),
        due=moment,
    )


# --- the sweep step ---------------------------------------------------------------------


def ladder_step(coordinator: Coordinator, now: datetime) -> int:
    """Climb every open request whose next step is due; returns the emails sent.

    Each request climbs in a transaction of its own inside the step's: one that fails
    (a template bug, a damaged document) is logged and retried next sweep without
    holding up the others.
    """
    ladder = Ladder.from_config(coordinator.config.timers)
    store = coordinator.store
    due_requests = store.requests_due(
        "ladder",
        next_rung_moment(ladder),
        version=ladder.rungs,
        upto=now,
        test=has_pending_rung(ladder, now),
    )
    sent = 0
    for request in due_requests:
        number = int(request["number"])
        try:
            with store.transaction():
                sent += climb(coordinator, number, ladder, now)
        except Exception:
            log.exception("ladder: %s failed; the next sweep tries again", tag(number))
    return sent


def next_rung_moment(ladder: Ladder) -> Callable[[Mapping[str, Any]], str | None]:
    """When the request's next rung comes (ISO, UTC), None if never: the store keeps the
    open requests in this order, so a sweep reads only those whose moment came."""

    def moment(request: Mapping[str, Any]) -> str | None:
        if request.get("status") != RequestStatus.OPEN:
            return None
        start = ladder_start(request)
        if start is None:
            return None
        done = settled(request)
        pending = [after for rung, after in ladder.rungs if rung not in done]
        return iso(start + min(pending)) if pending else None

    return moment


def has_pending_rung(ladder: Ladder, now: datetime) -> Callable[[Mapping[str, Any]], bool]:
    """``bool(plan_climb(doc, ladder, now))``, fast enough for every request on every sweep.

    The store writes every time as an ISO string in UTC, so "the rung's moment has come"
    is a string comparison with ``now`` minus its delay, worked out once per sweep.
    """
    cutoffs = tuple((rung, iso(now - after)) for rung, after in ladder.rungs)
    first = cutoffs[0][1]

    def test(doc: Mapping[str, Any]) -> bool:
        if doc.get("status") != RequestStatus.OPEN:
            return False
        began = doc.get("reopened") or doc.get("opened")
        if not isinstance(began, str) or began > first:
            return False  # the common case: too early for anything
        done = doc.get("ladder") or {}
        skipped = doc.get("ladder_skipped") or {}
        return any(
            began <= cutoff and rung not in done and rung not in skipped for rung, cutoff in cutoffs
        )

    return test


def climb(coordinator: Coordinator, number: int, ladder: Ladder, now: datetime) -> int:
    """Apply the plan for request ``number``: record what is skipped, do the step."""
    store = coordinator.store
    request = store.request(number) or {}
    plan = plan_climb(request, ladder, now)
    if plan.skip:
        skipped = dict(request.get("ladder_skipped") or {})
        for rung, due in plan.skip:
            skipped[rung] = iso(now)
            overtaken = bool(plan.do)
            skip_late(
                store,
                now,
                step=f"ladder {rung}",
                what=tag(number),
                due=due,
                rule=f"overtaken: {' and '.join(plan.do)} went out instead; never two steps at once"
                if overtaken
                else f"a ladder step is done late only within {span(ladder.grace)}",
                request=number,
            )
        request["ladder_skipped"] = skipped
        store.save_request(request)
    sent = 0
    for rung in plan.do:
        request = store.request(number) or {}
        if request_status(request) is not RequestStatus.OPEN:
            break
        count, detail = _RUNG_ACTIONS[rung](coordinator, request, now)
        request = store.request(number) or request  # widening saved it meanwhile
        request["ladder"] = {**(request.get("ladder") or {}), rung: iso(now)}
        store.save_request(request)
        store.audit(f"ladder {rung}", now=now, request=number, **detail)
        sent += count
    return sent


# --- the rungs ----------------------------------------------------------------------------

RungAction = Callable[["Coordinator", Mapping[str, Any], datetime], tuple[int, dict[str, Any]]]


def _bump(
    coordinator: Coordinator, request: Mapping[str, Any], now: datetime
) -> tuple[int, dict[str, Any]]:
    """Remind the invited mentors who could still take it, threaded on their invitation."""
    store, links, matching = coordinator.store, coordinator.links, coordinator.matching
    number = int(request["number"])
    released = set(request.get("released_by") or ())
    taken = store.claims_since(month_start(now, coordinator.config.program.timezone))
    view = request_view(request)
    waited = span(now - (ladder_start(request) or now))
    bumped: list[str] = []
    # One reminder per mentor, threaded on their latest invitation (a release re-invites).
    latest = {invite["email"]: invite for invite in request.get("invited") or ()}
    for email, invite in latest.items():
        if email in released:
            continue
        mentor = store.mentor(email)
        if mentor is None or not eligible(mentor, now, taken.get(email, 0)):
            continue  # paused, left, out of term or full since: a reminder is noise
        load = matching.load_of(email, now, taken)
        earlier = invite.get("message_id")
        sent = coordinator.postman.send(
            "request_bump",
            to=email,
            to_name=mentor.get("name", ""),
            now=now,
            context={
                "mentor": mentor,
                "request": view,
                "waited": waited,
                "load": load,
                "capacity_text": plural(load["capacity"], "session"),
                # The same link as in the invitation, signed afresh so it lasts.
                "claim_url": links("claim", email, str(number), now),
                "pause_url": links("pause", email, "mentor", now),
                "lifetime_days": coordinator.config.web.link_lifetime.days,
            },
            follows=_Earlier(earlier) if earlier else None,
            thread=("claim", {"number": number, "mentor": email}),
            request=number,
        )
        if sent is not None:  # None: the address bounced (the mail gate said no)
            bumped.append(email)
    return len(bumped), {"mentors": bumped}


def _mentee_update(
    coordinator: Coordinator, request: Mapping[str, Any], now: datetime
) -> tuple[int, dict[str, Any]]:
    """Tell the mentee we are still on it, in the thread of their request."""
    config = coordinator.config
    number = int(request["number"])
    ladder = Ladder.from_config(config.timers)
    start = ladder_start(request) or now
    done = request.get("ladder") or {}
    passed = settled(request)
    escalate_at = start + ladder.delay("escalate")
    released = set(request.get("released_by") or ())
    asked = {i["email"] for i in request.get("invited") or ()} - released
    source = request.get("source")
    sent = coordinator.postman.send(
        "request_update",
        to=request["mentee"],
        to_name=request.get("name", ""),
        now=now,
        context={
            "subject": reply_subject(request.get("subject") or "Mentor request", number),
            "request": request_view(request),
            "asked": len(asked),
            "reminded": "bump" in done,
            "widening": "widen" not in passed and start + ladder.delay("widen") > now,
            "escalate_on": _local_date(escalate_at, request.get("timezone"), config)
            if "escalate" not in passed and escalate_at > now
            else "",
        },
        follows=_Earlier(source) if isinstance(source, str) and source else None,
        thread=("request", number),
        request=number,
    )
    if sent is None:
        return 0, {"skipped": "address bounced"}
    return 1, {}


def _widen(
    coordinator: Coordinator, request: Mapping[str, Any], now: datetime
) -> tuple[int, dict[str, Any]]:
    """Invite the next best mentors (matching skips everyone asked before)."""
    number = int(request["number"])
    invited = coordinator.matching.match(
        number, now, reason="widen", count=coordinator.config.matching.widen_count
    )
    return len(invited), {"mentors": invited}


def _escalate(
    coordinator: Coordinator, request: Mapping[str, Any], now: datetime
) -> tuple[int, dict[str, Any]]:
    """The request, its history and one-click assign links, to each escalation contact."""
    store, config, links = coordinator.store, coordinator.config, coordinator.links
    number = int(request["number"])
    contacts = list(config.program.escalation) or [config.program.coordinator]
    zone = config.program.timezone
    candidates = escalation_candidates(coordinator, request, now)
    history = request_history(store, number, zone)
    waited = span(now - (ladder_start(request) or now))
    sent: list[str] = []
    for contact in contacts:
        offers = [
            {
                **candidate,
                "assign_url": links("assign", contact, assign_obj(number, candidate["email"]), now),
            }
            for candidate in candidates
        ]
        message_id = coordinator.postman.send(
            "request_escalated",
            to=contact,
            now=now,
            context={
                "request": request_view(request),
                "mentee": request["mentee"],
                "received": moment_text(request.get("created"), zone),
                "waited": waited,
                "candidates": offers,
                "history": history,
                "lifetime_days": config.web.link_lifetime.days,
            },
            request=number,
        )
        if message_id is not None:
            sent.append(contact)
    return len(sent), {"contacts": sent, "candidates": [c["email"] for c in candidates]}


_RUNG_ACTIONS: dict[str, RungAction] = {
    "bump": _bump,
    "mentee_update": _mentee_update,
    "widen": _widen,
    "escalate": _escalate,
}


def _local_date(moment: datetime, zone: str | None, config: Config) -> str:
    try:
        tz = ZoneInfo(zone or config.program.timezone)
    except (KeyError, ValueError):
        tz = ZoneInfo(config.program.timezone)
    return moment.astimezone(tz).strftime("%A %-d %B")
