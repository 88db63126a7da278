"""Escalations (SPEC §3 flow 7, the ladder's last rung): who could take the request,
what happened to it so far, and the one-click "assign to mentor X" links.

``escalation_candidates`` ranks the mentors an escalation contact may assign;
``request_history`` turns the audit log into sentences; ``assign_view`` and ``assign``
serve the escalation email's links (``/assign/<token>``: purpose "assign", person the
escalation contact, object ``"<number>:<mentor email>"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..state.records import (
    RequestStatus,
    mentor_status,
    parse_time,
    request_status,
    term_over,
)
from ..state.store import Store, iso
from ..timers import SKIPPED_LATE
from ..views import request_view
from .claims import ClaimDesk, ClaimResult
from .words import local_time

if TYPE_CHECKING:
    from ..core import Coordinator

__all__ = [
    "assign",
    "assign_obj",
    "assign_view",
    "escalation_candidates",
    "may_assign",
    "moment_text",
    "parse_assign_obj",
    "request_history",
]


def moment_text(value: Any, zone: str) -> str:
    """A stored ISO time as 'Mon 17 Mar 10:00' in ``zone``; "" when absent."""
    moment = parse_time(value)
    if moment is None:
        return value if isinstance(value, str) else ""
    return local_time(moment, zone)


# --- candidates -------------------------------------------------------------------------


def escalation_candidates(
    coordinator: Coordinator, request: Mapping[str, Any], now: datetime
) -> list[dict[str, Any]]:
    """The mentors an escalation contact may assign, best first.

    The ranking of matching, counting those invited already (they fit best): everyone
    eligible who shares a skill, except those who gave it back and addresses the mail
    gate refuses; at most invite_count + widen_count of them.
    """
    store, config = coordinator.store, coordinator.config
    # Matching's own ranking (and exclusions), counting those invited already.
    ranked_all, data = coordinator.matching.ranking(request, now)
    limit = config.matching.invite_count + config.matching.widen_count
    ranked = ranked_all[:limit]
    mentors = [m for m in (store.mentor(c.email) for c in ranked) if m is not None]
    by_email = {m["email"]: m for m in mentors}
    invited = {i["email"]: i["at"] for i in request.get("invited") or ()}
    zone = config.program.timezone
    return [
        {
            "email": c.email,
            "name": by_email[c.email].get("name") or c.email,
            "skills": ", ".join(by_email[c.email].get("skills") or ()),
            "timezone": by_email[c.email].get("timezone") or "",
            "load": coordinator.matching.load_of(c.email, now, data.sessions_this_month),
            "invited": moment_text(invited.get(c.email), zone),
        }
        for c in ranked
    ]


# --- history ------------------------------------------------------------------------------


def request_history(store: Store, number: int, zone: str) -> list[dict[str, str]]:
    """What happened to request ``number``, oldest first: [{"at", "text"}] from the audit
    log, times in ``zone``, mentors named."""
    return [
        {"at": moment_text(event.get("at"), zone), "text": text}
        for event, text in describe_events(store, store.audit_log(number))
    ]


def describe_events(
    store: Store, events: Sequence[Mapping[str, Any]]
) -> list[tuple[Mapping[str, Any], str]]:
    """Audit events, oldest first, each with its sentence (mentors named)."""
    names: dict[str, str] = {}

    def who(email: Any) -> str:
        if not isinstance(email, str) or not email:
            return "someone"
        if email not in names:
            mentor = store.mentor(email)
            name = (mentor or {}).get("name")
            names[email] = f"{name} <{email}>" if name else email
        return names[email]

    def many(emails: Any) -> str:
        return ", ".join(who(e) for e in emails or ()) or "nobody new"

    described = []
    # Events of one moment are logged in the order the code meets them; a person reads
    # "received" before what came of it.
    ordered = sorted(
        events, key=lambda e: (str(e.get("at") or ""), e.get("event") != "request received")
    )
    for event in ordered:
        kind = event.get("event", "")
        text = _HISTORY.get(kind)
        described.append((event, text(event, who, many) if text else kind[:1].upper() + kind[1:]))
    return described


# event → its sentence, given the event, who(email) → "Name <email>" and many(emails).
_Describe = Callable[[Mapping[str, Any], Callable[[Any], str], Callable[[Any], str]], str]
_HISTORY: dict[str, _Describe] = {
    "request received": lambda e, who, many: f"Received from {e.get('mentee', 'the mentee')}",
    "request incomplete": lambda e, who, many: (
        f"Asked the mentee for: {', '.join(e.get('missing') or ()) or 'more detail'}"
    ),
    "request opened": lambda e, who, many: "Complete: matching started",
    "mentors invited": lambda e, who, many: f"Invited {many(e.get('mentors'))}",
    "no mentor matches": lambda e, who, many: "Nobody matched; the coordinator was told",
    "claimed": lambda e, who, many: f"Taken by {who(e.get('mentor'))} (via {e.get('via')})",
    "claim refused": lambda e, who, many: (
        f"{who(e.get('mentor'))} tried to take it ({e.get('outcome')})"
    ),
    "released": lambda e, who, many: (
        f"Taken from {who(e.get('mentor'))} by {e.get('by')} to give to another mentor"
        if e.get("why") == "reassigned"
        else f"Given back by {who(e.get('mentor'))}"
    ),
    "reassigned": lambda e, who, many: (
        f"Reassigned from {who(e.get('was'))} to {who(e.get('mentor'))} by {e.get('by')}"
    ),
    "withdrawn for the mentee": lambda e, who, many: f"Withdrawn for the mentee by {e.get('by')}",
    "request closed": lambda e, who, many: f"Closed by {e.get('by')}",
    "session invitation resent": lambda e, who, many: (
        f"Session invitation sent again by {e.get('by')}"
    ),
    "coordinator refused": lambda e, who, many: f"{e.get('by')} was refused: {e.get('why')}",
    "request note": lambda e, who, many: "The mentee added a note",
    "request withdrawn": lambda e, who, many: "Withdrawn by the mentee",
    "request expired": lambda e, who, many: "Expired: waited too long; the mentee was told",
    "ladder bump": lambda e, who, many: f"Reminded {many(e.get('mentors'))}",
    "ladder mentee_update": lambda e, who, many: "Told the mentee we are still on it",
    "ladder widen": lambda e, who, many: (
        "Widened the search" if e.get("mentors") else "Widened the search: nobody new to ask"
    ),
    "ladder escalate": lambda e, who, many: (
        f"Escalated to {', '.join(e.get('contacts') or ()) or 'nobody'}"
    ),
    SKIPPED_LATE: lambda e, who, many: (
        f"Skipped {e.get('step')}, {e.get('late')} late ({e.get('rule')})"
    ),
    "assigned": lambda e, who, many: f"Assigned to {who(e.get('mentor'))} by {e.get('by')}",
    "assign refused": lambda e, who, many: (
        f"{e.get('by')} tried to assign it to {who(e.get('mentor'))} ({e.get('outcome')})"
    ),
}


# --- assign links -----------------------------------------------------------------------------


def assign_obj(number: int, mentor: str) -> str:
    """The object an assign token is bound to: one request and one mentor."""
    return f"{number}:{mentor}"


def parse_assign_obj(obj: str) -> tuple[int, str] | None:
    number, _, mentor = obj.partition(":")
    if not number.isdigit() or "@" not in mentor:
        return None
    return int(number), mentor


def may_assign(config: Config, person: str) -> bool:
    """Escalation contacts (and the coordinator) may assign requests."""
    return person in config.program.escalation or person == config.program.coordinator


def assign_view(desk: ClaimDesk, number: int, mentor_email: str, now: datetime) -> ClaimResult:
    """What the assign page shows before the button; changes nothing."""
    request = desk.store.request(number)
    mentor = desk.store.mentor(mentor_email)
    if request is None or mentor is None:
        return ClaimResult("unknown", number)
    view = request_view(request)
    holder = request.get("claimed_by")
    holder_name = ""
    if holder:
        holder_name = str((desk.store.mentor(holder) or {}).get("name") or holder)
    status = request_status(request)
    if status is RequestStatus.WITHDRAWN:
        outcome = "withdrawn"
    elif holder and (status.held or status.finished):
        outcome = "yours" if holder == mentor_email else "taken"
    elif status is not RequestStatus.OPEN:
        outcome = "closed"
    elif (
        mentor_status(mentor).left
        or term_over(mentor, now)
        or mentor_email in (request.get("released_by") or ())
    ):
        outcome = "not_invited"
    else:
        outcome = "open"
    return ClaimResult(
        outcome, number, view, mentor, holder_name, desk.matching.load_of(mentor_email, now)
    )


class _Refused(Exception):
    def __init__(self, result: ClaimResult) -> None:
        super().__init__(result.outcome)
        self.result = result


def assign(desk: ClaimDesk, number: int, mentor_email: str, by: str, now: datetime) -> ClaimResult:
    """Claim request ``number`` on ``mentor_email``'s behalf, for escalation contact ``by``.

    Exactly a claim (ClaimDesk.claim, via "assign": first claim wins, capacity counts,
    both people are introduced), except that the mentor need not have been invited. A
    refusal changes nothing but the audit log.
    """
    store = desk.store
    try:
        with store.transaction():
            request = store.request(number)
            is_open = request is not None and request_status(request) is RequestStatus.OPEN
            if request is not None and is_open and store.mentor(mentor_email):
                invited = list(request.get("invited") or ())
                if mentor_email not in {i["email"] for i in invited}:
                    invited.append({"email": mentor_email, "at": iso(now), "via": "assign"})
                    store.save_request({**request, "invited": invited})
            result = desk.claim(number, mentor_email, now, via="assign")
            if result.outcome != "claimed":
                raise _Refused(result)
            store.audit("assigned", now=now, request=number, mentor=mentor_email, by=by)
            return result
    except _Refused as refused:
        store.audit(
            "assign refused",
            now=now,
            request=number,
            mentor=mentor_email,
            by=by,
            outcome=refused.result.outcome,
        )
        return refused.result
