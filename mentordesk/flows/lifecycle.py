"""One life per request, session and mentor (SPEC §3a): the transitions and what follows.

Every flow that takes a request from its holder, ends it, or takes a mentor out of the
program comes here, so the consequences are the same whoever asked:

- **withdraw** (the mentee, in any words): the live session is cancelled in both
  calendars, the holder is told; nothing more is sent about the request.
- **release** (the holder, the coordinator, or the holder leaving): the live session is
  cancelled, the mentee is told, the request is open again without that mentor and
  matching starts again by itself.
- **mentor left** (resigned, or their term ended): every request they hold is released
  (the mentee and the coordinator are told), they leave every office-hours series (the
  coordinator is told of a series with no mentor left), and they get no new matches.
- **hand over** (a coordinator reassigns): as release, but the holder is told and the
  mentee is not (the new holder's introduction tells them); no matching follows.
- **expire**: an unclaimed request older than ``[timers] request_max_age`` is closed;
  the mentee is told and may write again.

Runs on the store's writer thread; callers hold the transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from ..mailer.outbox import Postman
from ..state.lifecycle import RequestEvent, advance, leaves_holder, next_request_status
from ..state.records import MentorStatus, RequestStatus, request_status
from ..state.store import Store, iso
from ..views import request_view

log = logging.getLogger(__name__)

Rematch = Callable[[int, datetime], object]


class SessionCanceller(Protocol):
    def cancel_live(self, number: int, by: str, now: datetime, *, why: str) -> bool: ...


class SeriesLeaver(Protocol):
    def remove_mentor(self, email: str, now: datetime) -> list[int]: ...


class Lifecycle:
    """Carries out the transitions that end or move a request, with their consequences."""

    def __init__(
        self,
        store: Store,
        postman: Postman,
        sessions: SessionCanceller,
        rematch: Rematch,
        office_hours: SeriesLeaver | None = None,
    ) -> None:
        self.store = store
        self.postman = postman
        self.sessions = sessions
        self.rematch = rematch
        self.office_hours = office_hours

    def _move(
        self, request: dict[str, Any], event: RequestEvent, now: datetime, *, by: str, why: str
    ) -> bool:
        """Apply ``event``; cancel the live session when the holder loses the request."""
        before = request_status(request)
        after = next_request_status(before, event)
        if after is None:
            return False
        number = int(request["number"])
        cancelled = False
        if leaves_holder(before, after):
            cancelled = self.sessions.cancel_live(number, by, now, why=why)
        request["status"] = after.value
        request["updated"] = iso(now)
        request.pop("schedule", None)
        self.store.save_request(request)
        request["session_cancelled"] = cancelled
        return True

    # The mentee calls it off -------------------------------------------------------------

    def withdraw(self, number: int, by: str, now: datetime) -> bool:
        """Withdraw the request; True when it changed (False: it had already ended)."""
        request = self.store.request(number)
        if request is None:
            return False
        holder = request.get("claimed_by") if request_status(request).held else None
        if not self._move(request, RequestEvent.WITHDRAWN, now, by=by, why="withdrawn"):
            return False
        self.store.audit("request withdrawn", now=now, request=number, by=by)
        if holder:
            mentor = self.store.mentor(holder) or {"name": ""}
            self.postman.send(
                "withdrawn_mentor",
                to=holder,
                to_name=mentor.get("name", ""),
                now=now,
                context={"mentor": mentor, "request": request_view(request)},
                request=number,
            )
        return True

    # The holder gives it back ----------------------------------------------------------------

    def release(self, number: int, by: str, now: datetime, *, why: str = "released") -> bool:
        """Take the request from its holder and match it again without them.

        ``why``: released (by the holder or the coordinator), resigned, term-ended.
        """
        taken = self._take_back(number, by, now, why=why)
        if taken is None:
            return False
        request, holder, session_cancelled = taken
        self.postman.send(
            "request_released",
            to=request["mentee"],
            to_name=request.get("name", ""),
            now=now,
            context={"request": request_view(request)},
            thread=("request", number),
            request=number,
        )
        if why != "released":
            mentor = self.store.mentor(holder) or {}
            self.postman.tell_coordinator(
                f"{holder} left while holding {request_view(request)['tag']}",
                now,
                template="coordinator_holder_left",
                context={
                    "request": request_view(request),
                    "holder_name": mentor.get("name") or holder,
                    "why": why,
                    "session_cancelled": session_cancelled,
                },
                request=number,
            )
        self.rematch(number, now)
        return True

    def hand_over(self, number: int, by: str, now: datetime) -> bool:
        """A coordinator gives a held request to another mentor: the holder loses it (their
        live session is cancelled in both calendars) and is told; the mentee hears from
        the new holder's introduction, so neither the mentee nor matching is involved.
        The caller assigns it to the new holder in the same transaction."""
        taken = self._take_back(number, by, now, why="reassigned")
        if taken is None:
            return False
        request, holder, _ = taken
        mentor = self.store.mentor(holder) or {"email": holder, "name": ""}
        self.postman.send(
            "reassigned_mentor",
            to=holder,
            to_name=mentor.get("name", ""),
            now=now,
            context={"mentor": mentor, "request": request_view(request)},
            request=number,
        )
        return True

    def _take_back(
        self, number: int, by: str, now: datetime, *, why: str
    ) -> tuple[dict[str, Any], str, bool] | None:
        """Move a held request to open without its holder (cancelling the live session);
        (the request, the holder, whether a session was cancelled), or None."""
        request = self.store.request(number)
        if request is None or not request_status(request).held:
            return None
        holder = str(request.get("claimed_by") or "")
        if not self._move(request, RequestEvent.RELEASED, now, by=holder, why=why):
            return None
        released = list(request.get("released_by", []))
        if holder and holder not in released:
            released.append(holder)
        session_cancelled = bool(request.pop("session_cancelled", False))
        request.update(
            {
                "claimed_by": None,
                "claimed_at": None,
                "released_by": released,
                "reopened": iso(now),  # the ladder for unclaimed requests restarts
            }
        )
        self.store.save_request(request)
        self.store.audit("released", now=now, request=number, mentor=holder, by=by, why=why)
        return request, holder, session_cancelled

    # A mentor leaves the program ----------------------------------------------------------

    def mentor_left(
        self, email: str, status: MentorStatus, now: datetime, *, by: str = ""
    ) -> list[int]:
        """Record that ``email`` resigned or reached the end of the term, and hand back
        what they held (``by``: a coordinator acting for them). Returns the requests
        released."""
        mentor = self.store.mentor(email)
        if mentor is None:
            return []
        mentor["status"] = status.value
        mentor["updated"] = iso(now)
        self.store.save_mentor(mentor)
        held = self.store.requests_where(
            lambda d: d.get("claimed_by") == email and request_status(d).held
        )
        released = []
        for request in held:
            number = int(request["number"])
            if self.release(number, email, now, why=status.value):
                released.append(number)
        if self.office_hours is not None:
            self.office_hours.remove_mentor(email, now)
        who = {"by": by} if by else {}
        self.store.audit(f"mentor {status.value}", now=now, mentor=email, released=released, **who)
        return released

    # Nobody took it in time -------------------------------------------------------------------

    def expire(self, number: int, now: datetime, max_age: timedelta) -> bool:
        """Close an unclaimed request that waited longer than ``max_age``; tell the mentee."""
        request = self.store.request(number)
        if request is None:
            return False
        was_incomplete = request_status(request) is RequestStatus.INCOMPLETE
        if not self._move(request, RequestEvent.EXPIRED, now, by="", why="expired"):
            return False
        request.pop("session_cancelled", None)
        self.store.audit("request expired", now=now, request=number)
        self.postman.send(
            "request_expired",
            to=request["mentee"],
            to_name=request.get("name", ""),
            now=now,
            context={
                "request": request_view(request),
                "age": _age(max_age),
                "incomplete": was_incomplete,
            },
            thread=("request", number),
            request=number,
        )
        return True

    # Sessions move the request along ------------------------------------------------------------

    def advance(self, number: int, event: RequestEvent, now: datetime) -> bool:
        """A step that has no consequence beyond the status (booked, unbooked, met, closed)."""
        request = self.store.request(number)
        if request is None:
            return False
        before = request_status(request)
        after = advance(request, event, now)
        if after is None or after == before:
            return False
        self.store.save_request(request)
        return True


def _age(delta: timedelta) -> str:
    days = delta.days
    if days >= 60 and days % 30 in (0, 1, 29):
        months = round(days / 30)
        return f"{months} months"
    return f"{days} day{'s' if days != 1 else ''}"


# Re-exported for the flows: statuses they compare against.
__all__ = ["Lifecycle", "MentorStatus", "RequestStatus"]
