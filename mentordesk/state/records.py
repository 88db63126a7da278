"""What the store holds, typed: the status of every request, session and mentor.

Statuses are ``StrEnum``s, so a stored document keeps its plain JSON string and a
comparison with the enum is a comparison with that string. Nothing outside this module
spells a status word; flows ask the sets and predicates below instead (SPEC §3a).

    Request   incomplete → open → claimed → booked → met → closed
              side exits: withdrawn, expired; released → open again
    Session   proposed → accepted / declined → held | no-show; cancelled from any live one
    Mentor    pending → active ⇄ paused; resigned; term-ended (renewing brings them back)
    Pairing   orienting → active → ended | cancelled (a request met over a term, not once)

The records are the typed views the lifecycle decides over (``RequestRecord.of(doc)``);
the store keeps documents, so old state files and tools that read them stay readable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

__all__ = [
    "CAPACITY_COUNTED",
    "HELD",
    "LIVE",
    "NOT_FINISHED",
    "WAITING",
    "MentorRecord",
    "MentorStatus",
    "PairingStatus",
    "RequestRecord",
    "RequestStatus",
    "SessionRecord",
    "SessionStatus",
    "counted_claim",
    "mentor_capacity",
    "parse_time",
    "term_over",
]


class RequestStatus(StrEnum):
    """Where a mentee's request is in its life (SPEC §3a)."""

    INCOMPLETE = "incomplete"  # we asked the mentee for what is missing
    OPEN = "open"  # claim emails are out; nobody holds it
    CLAIMED = "claimed"  # a mentor holds it; no live session (yet)
    BOOKED = "booked"  # a mentor holds it and a session is live
    MET = "met"  # the session was held; the after-session mail is due
    CLOSED = "closed"  # finished; nothing more happens
    WITHDRAWN = "withdrawn"  # the mentee called it off
    EXPIRED = "expired"  # waited longer than [timers] request_max_age

    @property
    def held(self) -> bool:
        """A mentor holds the request (claimed or booked)."""
        return self in HELD

    @property
    def finished(self) -> bool:
        """Nothing about this request happens any more (mail about it stops)."""
        return self not in NOT_FINISHED

    @property
    def waiting(self) -> bool:
        """Counts against the mentee's open-request limit: not yet met or ended."""
        return self in WAITING


class SessionStatus(StrEnum):
    """A 30-minute session's life (SPEC §3a)."""

    PROPOSED = "proposed"  # invitation out, answers pending
    ACCEPTED = "accepted"  # both (or the last one who answered) accepted
    DECLINED = "declined"  # declined and no other time found: the mentor picks one
    HELD = "held"  # its end has passed and nobody said it did not happen
    NO_SHOW = "no-show"  # the mentor said it did not take place
    CANCELLED = "cancelled"  # METHOD:CANCEL went to every calendar that had it

    @property
    def live(self) -> bool:
        """In people's calendars: reminders, moves and cancels apply."""
        return self in LIVE


class MentorStatus(StrEnum):
    """A mentor's standing (SPEC §3a)."""

    PENDING = "pending"  # enrolled, waiting for the coordinator's approval
    ACTIVE = "active"
    PAUSED = "paused"
    RESIGNED = "resigned"
    TERM_ENDED = "term-ended"

    @property
    def left(self) -> bool:
        """Gone from the program: their requests and office hours were handed back."""
        return self in (MentorStatus.RESIGNED, MentorStatus.TERM_ENDED)


class PairingStatus(StrEnum):
    """A pairing's life: a mentor and a mentee meeting every few weeks for a term.

    Its request stays ``claimed`` (held by the mentor) while the pairing is live; the
    pairing's own recurring series stands in for the one-off session.
    """

    ORIENTING = "orienting"  # series on; the mentor has not closed the orientation yet
    ACTIVE = "active"  # orientation done
    ENDED = "ended"  # both chose to end, or the term ran out: the request is closed
    CANCELLED = "cancelled"  # the request left its holder (released, withdrawn, mentor left)

    @property
    def live(self) -> bool:
        """The series is in both calendars; check-ins and the term's end apply."""
        return self in (PairingStatus.ORIENTING, PairingStatus.ACTIVE)


HELD = frozenset({RequestStatus.CLAIMED, RequestStatus.BOOKED})
WAITING = frozenset(
    {RequestStatus.INCOMPLETE, RequestStatus.OPEN, RequestStatus.CLAIMED, RequestStatus.BOOKED}
)
NOT_FINISHED = WAITING | {RequestStatus.MET}
# A claim counts against the mentor's monthly capacity while held or once met.
CAPACITY_COUNTED = HELD | {RequestStatus.MET, RequestStatus.CLOSED}
LIVE = frozenset({SessionStatus.PROPOSED, SessionStatus.ACCEPTED, SessionStatus.DECLINED})


def parse_time(value: Any) -> datetime | None:
    """A stored ISO time as an aware UTC datetime; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    return _parse_text(value)


@lru_cache(maxsize=1 << 14)
def _parse_text(value: str) -> datetime | None:
    # Cached: ranking asks for every candidate mentor's term end on every request.
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:  # the store writes UTC; a bare time can only mean that
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def term_over(mentor: Mapping[str, Any], now: datetime) -> bool:
    """Has the mentor's term ended at ``now``? The one place this is decided.

    No ``term_end`` means an open-ended term; an unreadable one counts as ended (a
    person should look), as does the status ``term-ended`` itself.
    """
    if mentor.get("status") == MentorStatus.TERM_ENDED:
        return True
    raw = mentor.get("term_end")
    if raw is None or raw == "":
        return False
    end = parse_time(raw)
    return end is None or end <= now


def counted_claim(request: Mapping[str, Any]) -> tuple[str, str] | None:
    """(mentor, claimed_at) when the request's claim counts against the mentor's monthly
    capacity (held, or met since); None otherwise. The one place this is decided."""
    holder = request.get("claimed_by")
    if holder and request_status(request) in CAPACITY_COUNTED:
        return str(holder), str(request.get("claimed_at") or "")
    return None


def mentor_capacity(mentor: Mapping[str, Any], default: int) -> int:
    """Sessions a month the mentor takes: their own number, else the program's default."""
    return int(mentor.get("capacity") or default)


def request_status(doc: Mapping[str, Any]) -> RequestStatus:
    """The status of a stored request; documents from before the lifecycle are mapped."""
    raw = str(doc.get("status") or RequestStatus.INCOMPLETE)
    return RequestStatus(_OLD_REQUEST.get(raw, raw))


def session_status(doc: Mapping[str, Any]) -> SessionStatus:
    raw = str(doc.get("status") or SessionStatus.PROPOSED)
    return SessionStatus(_OLD_SESSION.get(raw, raw))


def mentor_status(doc: Mapping[str, Any]) -> MentorStatus:
    return MentorStatus(str(doc.get("status") or MentorStatus.ACTIVE))


# Status words written by versions before the lifecycle (state schema 1).
_OLD_REQUEST = {"done": RequestStatus.MET.value}
_OLD_SESSION = {"confirmed": SessionStatus.ACCEPTED.value, "done": SessionStatus.HELD.value}


@dataclass(frozen=True)
class RequestRecord:
    """The facts about a request that its lifecycle decides on."""

    number: int
    status: RequestStatus
    mentee: str
    holder: str | None  # the mentor holding it (claimed/booked), else None
    released_by: frozenset[str]
    created: datetime | None

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> RequestRecord:
        status = request_status(doc)
        return cls(
            number=int(doc["number"]),
            status=status,
            mentee=str(doc.get("mentee") or ""),
            holder=(doc.get("claimed_by") or None) if status.held else None,
            released_by=frozenset(doc.get("released_by") or ()),
            created=parse_time(doc.get("created")),
        )


@dataclass(frozen=True)
class SessionRecord:
    """The facts about a session that its lifecycle decides on."""

    uid: str
    request: int | None
    status: SessionStatus
    mentor: str
    mentee: str
    start: datetime | None
    end: datetime | None
    sequence: int

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> SessionRecord:
        return cls(
            uid=str(doc["uid"]),
            request=None if doc.get("request") is None else int(doc["request"]),
            status=session_status(doc),
            mentor=str(doc.get("mentor") or ""),
            mentee=str(doc.get("mentee") or ""),
            start=parse_time(doc.get("start")),
            end=parse_time(doc.get("end")),
            sequence=int(doc.get("sequence") or 0),
        )


@dataclass(frozen=True)
class MentorRecord:
    """The facts about a mentor that matching and the lifecycle decide on."""

    email: str
    status: MentorStatus
    term_end: datetime | None
    capacity: int

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> MentorRecord:
        return cls(
            email=str(doc["email"]),
            status=mentor_status(doc),
            term_end=parse_time(doc.get("term_end")),
            capacity=int(doc.get("capacity") or 0),
        )
