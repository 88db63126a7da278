"""The lifecycle's rules, as data (SPEC §3a): which event moves a request where.

Pure: ``next_request_status`` answers "may this happen, and to what?"; the flows ask it
before changing a request, and ``flows/lifecycle.py`` carries out the consequences
(cancelling the live session, telling people, matching again).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from .records import MentorStatus as M
from .records import RequestStatus as R
from .records import request_status
from .store import iso

__all__ = [
    "MentorEvent",
    "RequestEvent",
    "advance",
    "leaves_holder",
    "next_mentor_status",
    "next_request_status",
]


class RequestEvent(StrEnum):
    """Something that happens to a request."""

    COMPLETED = "completed"  # the mentee gave what was missing
    CLAIMED = "claimed"  # a mentor pressed the button (or was assigned)
    BOOKED = "booked"  # a session was proposed for the holder and the mentee
    UNBOOKED = "unbooked"  # that session was cancelled by one of them; the holder keeps it
    MET = "met"  # the session's end passed
    CLOSED = "closed"  # the after-session questions went out, or a no-show was reported
    RELEASED = "released"  # the holder gave it back, resigned, or their term ended
    WITHDRAWN = "withdrawn"  # the mentee called it off
    EXPIRED = "expired"  # nobody took it within [timers] request_max_age


_WITHDRAWABLE = (R.INCOMPLETE, R.OPEN, R.CLAIMED, R.BOOKED, R.MET)

TRANSITIONS: dict[tuple[R, RequestEvent], R] = {
    (R.INCOMPLETE, RequestEvent.COMPLETED): R.OPEN,
    (R.OPEN, RequestEvent.CLAIMED): R.CLAIMED,
    (R.CLAIMED, RequestEvent.BOOKED): R.BOOKED,
    (R.BOOKED, RequestEvent.BOOKED): R.BOOKED,  # a move: same session, new time
    (R.BOOKED, RequestEvent.UNBOOKED): R.CLAIMED,
    (R.BOOKED, RequestEvent.MET): R.MET,
    (R.MET, RequestEvent.CLOSED): R.CLOSED,
    (R.CLAIMED, RequestEvent.RELEASED): R.OPEN,
    (R.BOOKED, RequestEvent.RELEASED): R.OPEN,
    (R.INCOMPLETE, RequestEvent.EXPIRED): R.EXPIRED,
    (R.OPEN, RequestEvent.EXPIRED): R.EXPIRED,
    **{(status, RequestEvent.WITHDRAWN): R.WITHDRAWN for status in _WITHDRAWABLE},
}


def next_request_status(status: R, event: RequestEvent) -> R | None:
    """Where ``event`` takes a request in ``status``; None when it cannot happen there."""
    return TRANSITIONS.get((status, event))


def advance(request: MutableMapping[str, Any], event: RequestEvent, now: datetime) -> R | None:
    """Move a request document (in memory) by ``event``; its new status, or None (and the
    document untouched) when the event cannot happen there. The caller saves it."""
    after = next_request_status(request_status(request), event)
    if after is not None:
        request["status"] = after.value
        request["updated"] = iso(now)
    return after


def leaves_holder(before: R, after: R) -> bool:
    """True when the change takes the request from its holder: the live session, if
    any, must be cancelled in every calendar that got it."""
    return before.held and not after.held and after is not R.MET


class MentorEvent(StrEnum):
    """What a mentor (or the coordinator on their behalf) asks for."""

    ENROLL = "enroll"  # enrolling again updates them, and brings back one who left
    PAUSE = "pause"
    RESUME = "resume"
    RENEW = "renew"  # a new term from today
    RESIGN = "resign"
    APPROVE = "approve"  # a coordinator accepts a pending enrollment ([program] approve_mentors)


def next_mentor_status(status: M, event: MentorEvent, *, term_over: bool) -> M | None:
    """Where ``event`` takes a mentor in ``status``; None when it cannot happen there.

    Pausing or resuming is for mentors still in the program: one whose term ended comes
    back by renewing; one who resigned by resuming (within their term), renewing or
    enrolling again. Leaving (resign, term end) has consequences: see ``flows/lifecycle``.
    """
    if event is MentorEvent.APPROVE:
        return M.ACTIVE if status is M.PENDING else None
    if event is MentorEvent.RESIGN:
        return None if status is M.RESIGNED else M.RESIGNED
    if event is MentorEvent.PAUSE:
        return M.PAUSED if status in (M.ACTIVE, M.PAUSED) else None
    if event is MentorEvent.RESUME:
        if status in (M.ACTIVE, M.PAUSED) or (status is M.RESIGNED and not term_over):
            return M.ACTIVE
        return None
    # ENROLL and RENEW: whoever left comes back; the others keep their standing.
    return M.ACTIVE if status.left else status
