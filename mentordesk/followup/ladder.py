"""The ladder for unclaimed requests (SPEC §3 flow 7; Operation Code process steps 5–8).

An open request nobody has taken climbs four rungs, each after a delay from
``[timers]``, measured from when the request opened (``request["opened"]``, or
``request["reopened"]`` when a mentor gave it back: the wait starts again then):

    bump           bump_after           remind the invited mentors, with their claim link
    mentee_update  mentee_update_after  tell the mentee it is still being worked on
    widen          widen_after          invite ``[matching] widen_count`` more mentors
    escalate       escalate_after       the escalation contacts get the request, its
                                        history and a one-click "assign to mentor X"

Each rung happens once per request: when it is done, its time goes into
``request["ladder"][rung]`` in the same transaction as its emails, so a restart neither
loses nor repeats one. Rungs due together (after a long downtime, say) run in the order
of their delays. The ladder stops the moment the request is no longer open (claimed,
withdrawn, closed); a release re-opens it and the rungs not done yet count from then.

``due_rungs`` is the pure decision and costs a dictionary lookup or two for a request
with nothing due, which is nearly every request on nearly every sweep. ``ladder_step``
is the sweep step that applies it. ``assign_view`` and ``assign`` serve the escalation
email's links (``/assign/<token>``: purpose "assign", person the escalation contact,
object ``"<number>:<mentor email>"``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..config import Config, TimersConfig
from ..core import Coordinator
from ..flows.claims import ClaimDesk, ClaimResult
from ..flows.matching import MatchInput, eligible, month_start, rank_mentors
from ..inbox.subjects import reply_subject
from ..state.store import Store, iso
from ..timers import register_sweep_step
from ..views import request_view, tag

__all__ = [
    "RUNGS",
    "Ladder",
    "assign",
    "assign_obj",
    "assign_view",
    "due_rungs",
    "ladder_start",
    "ladder_step",
    "parse_assign_obj",
    "request_history",
]

log = logging.getLogger(__name__)

RUNGS = ("bump", "mentee_update", "widen", "escalate")
RECENT = timedelta(days=90)


@dataclass(frozen=True)
class Ladder:
    """The rungs and their delays, in the order they come due."""

    rungs: tuple[tuple[str, timedelta], ...]

    @classmethod
    def from_config(cls, timers: TimersConfig) -> Ladder:
        delays = {
            "bump": timers.bump_after,
            "mentee_update": timers.mentee_update_after,
            "widen": timers.widen_after,
            "escalate": timers.escalate_after,
        }
        # sorted() is stable: equal delays keep RUNGS' order (bump before telling).
        return cls(tuple(sorted(delays.items(), key=lambda item: item[1])))

    def delay(self, rung: str) -> timedelta:
        return dict(self.rungs)[rung]


@dataclass(frozen=True)
class _Earlier:
    """An earlier message to thread on (satisfies mailer.outbox.Answered)."""

    message_id: str
    references: tuple[str, ...] = ()


# --- the decision (pure) ----------------------------------------------------------------


def ladder_start(request: Mapping[str, Any]) -> datetime | None:
    """When the request's wait began: re-opened after a release, or opened; None if never."""
    text = request.get("reopened") or request.get("opened")
    if not isinstance(text, str):
        return None
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        return None
    return start if start.tzinfo is not None else None


def due_rungs(request: Mapping[str, Any], ladder: Ladder, now: datetime) -> tuple[str, ...]:
    """The rungs due for ``request`` at ``now`` and not done yet, in order; () mostly."""
    if request.get("status") != "open":
        return ()
    start = ladder_start(request)
    if start is None:
        return ()
    waited = now - start
    if waited < ladder.rungs[0][1]:
        return ()  # the common case: too early for anything
    done = request.get("ladder") or {}
    return tuple(rung for rung, after in ladder.rungs if waited >= after and rung not in done)


# --- the sweep step ---------------------------------------------------------------------


def ladder_step(coordinator: Coordinator, now: datetime) -> int:
    """Climb every open request whose next rung is due; returns the emails sent.

    Each request climbs in a transaction of its own inside the step's: one that fails
    (a template bug, a damaged document) is logged and retried next sweep without
    holding up the others.
    """
    ladder = Ladder.from_config(coordinator.config.timers)
    store = coordinator.store
    due = store.requests_where(lambda doc: due_rungs(doc, ladder, now))
    sent = 0
    for request in due:
        number = int(request["number"])
        try:
            with store.transaction():
                sent += climb(coordinator, number, ladder, now)
        except Exception:
            log.exception("ladder: %s failed; the next sweep tries again", tag(number))
    return sent


def climb(coordinator: Coordinator, number: int, ladder: Ladder, now: datetime) -> int:
    """Apply the rungs due for request ``number``; returns the emails sent."""
    store = coordinator.store
    sent = 0
    request = store.request(number) or {}
    for rung in due_rungs(request, ladder, now):
        request = store.request(number) or {}
        if request.get("status") != "open":
            break
        count, detail = _RUNG_ACTIONS[rung](coordinator, request, now)
        request = store.request(number) or request  # widening saved it meanwhile
        request["ladder"] = {**(request.get("ladder") or {}), rung: iso(now)}
        store.save_request(request)
        store.audit(f"ladder {rung}", now=now, request=number, **detail)
        sent += count
    return sent


def _bump(
    coordinator: Coordinator, request: Mapping[str, Any], now: datetime
) -> tuple[int, dict[str, Any]]:
    """Remind the invited mentors who could still take it, threaded on their invitation."""
    store, desk = coordinator.store, coordinator.claims
    number = int(request["number"])
    released = set(request.get("released_by") or ())
    taken = store.claims_since(month_start(now, coordinator.config.program.timezone))
    view = request_view(request)
    waited = _days(now - (ladder_start(request) or now))
    bumped: list[str] = []
    # One reminder per mentor, threaded on their latest invitation (a release re-invites).
    latest = {invite["email"]: invite for invite in request.get("invited") or ()}
    for email, invite in latest.items():
        if email in released or store.is_bounced(email):
            continue
        mentor = store.mentor(email)
        if mentor is None or not eligible(mentor, now, taken.get(email, 0)):
            continue  # paused, resigned, out of term or full since: a reminder is noise
        earlier = invite.get("message_id")
        coordinator.postman.send(
            "request_bump",
            to=email,
            to_name=mentor.get("name", ""),
            now=now,
            context={
                "mentor": mentor,
                "request": view,
                "waited": waited,
                "load": desk.matching.load_of(email, now),
                # The same link as in the invitation, signed afresh so it lasts.
                "claim_url": desk.links("claim", email, str(number), now),
                "pause_url": desk.links("pause", email, "mentor", now),
                "lifetime_days": coordinator.config.web.link_lifetime.days,
            },
            follows=_Earlier(earlier) if earlier else None,
            thread=("claim", {"number": number, "mentor": email}),
            request=number,
        )
        bumped.append(email)
    return len(bumped), {"mentors": bumped}


def _mentee_update(
    coordinator: Coordinator, request: Mapping[str, Any], now: datetime
) -> tuple[int, dict[str, Any]]:
    """Tell the mentee we are still on it, in the thread of their request."""
    store, config = coordinator.store, coordinator.config
    number = int(request["number"])
    mentee = request["mentee"]
    if store.is_bounced(mentee):
        return 0, {"skipped": "address bounced"}
    ladder = Ladder.from_config(config.timers)
    start = ladder_start(request) or now
    done = request.get("ladder") or {}
    escalate_at = start + ladder.delay("escalate")
    released = set(request.get("released_by") or ())
    asked = {i["email"] for i in request.get("invited") or ()} - released
    source = request.get("source")
    coordinator.postman.send(
        "request_update",
        to=mentee,
        to_name=request.get("name", ""),
        now=now,
        context={
            "subject": reply_subject(request.get("subject") or "Mentor request", number),
            "request": request_view(request),
            "asked": len(asked),
            "reminded": "bump" in done,
            "widening": "widen" not in done and start + ladder.delay("widen") > now,
            "escalate_on": _local_date(escalate_at, request.get("timezone"), config)
            if "escalate" not in done and escalate_at > now
            else "",
        },
        follows=_Earlier(source) if isinstance(source, str) and source else None,
        thread=("request", number),
        request=number,
    )
    return 1, {}


def _widen(
    coordinator: Coordinator, request: Mapping[str, Any], now: datetime
) -> tuple[int, dict[str, Any]]:
    """Invite the next best mentors (ClaimDesk.match skips everyone asked before)."""
    number = int(request["number"])
    invited = coordinator.matching.match(
        number, now, reason="widen", count=coordinator.config.matching.widen_count
    )
    return len(invited), {"mentors": invited}


def _escalate(
    coordinator: Coordinator, request: Mapping[str, Any], now: datetime
) -> tuple[int, dict[str, Any]]:
    """The request, its history and one-click assign links, to each escalation contact."""
    store, config, desk = coordinator.store, coordinator.config, coordinator.claims
    number = int(request["number"])
    contacts = list(config.program.escalation) or [config.program.coordinator]
    zone = config.program.timezone
    candidates = escalation_candidates(coordinator, request, now)
    history = request_history(store, number, zone)
    waited = _days(now - (ladder_start(request) or now))
    sent: list[str] = []
    for contact in contacts:
        if store.is_bounced(contact):
            continue
        offers = [
            {
                **candidate,
                "assign_url": desk.links(
                    "assign", contact, assign_obj(number, candidate["email"]), now
                ),
            }
            for candidate in candidates
        ]
        coordinator.postman.send(
            "request_escalated",
            to=contact,
            now=now,
            context={
                "request": request_view(request),
                "mentee": request["mentee"],
                "received": _local_time(request.get("created"), zone),
                "waited": waited,
                "candidates": offers,
                "history": history,
                "lifetime_days": config.web.link_lifetime.days,
            },
            request=number,
        )
        sent.append(contact)
    return len(sent), {"contacts": sent, "candidates": [c["email"] for c in candidates]}


_RUNG_ACTIONS = {
    "bump": _bump,
    "mentee_update": _mentee_update,
    "widen": _widen,
    "escalate": _escalate,
}


def escalation_candidates(
    coordinator: Coordinator, request: Mapping[str, Any], now: datetime
) -> list[dict[str, Any]]:
    """The mentors an escalation contact may assign, best first.

    The ranking of ClaimDesk.match, counting those invited already (they fit best):
    everyone eligible who shares a skill, except those who gave it back and bounced
    addresses; at most invite_count + widen_count of them.
    """
    store, config = coordinator.store, coordinator.config
    wanted = frozenset(request.get("skills") or ())
    mentors = store.mentors_where(lambda m: not wanted.isdisjoint(m.get("skills") or ()))
    excluded = set(request.get("released_by") or ()) | {request["mentee"]}
    excluded |= {m["email"] for m in mentors if store.is_bounced(m["email"])}
    # A follow-up request never goes back to the mentor(s) it follows up on.
    excluded |= set(request.get("exclude_mentors") or ())
    data = MatchInput(
        sessions_this_month=store.claims_since(month_start(now, config.program.timezone)),
        recent_sessions=store.claims_since(now - RECENT),
        excluded=frozenset(excluded),
    )
    limit = config.matching.invite_count + config.matching.widen_count
    ranked = rank_mentors(request, mentors, now, data)[:limit]
    by_email = {m["email"]: m for m in mentors}
    invited = {i["email"]: i["at"] for i in request.get("invited") or ()}
    zone = config.program.timezone
    return [
        {
            "email": c.email,
            "name": by_email[c.email].get("name") or c.email,
            "skills": ", ".join(by_email[c.email].get("skills") or ()),
            "timezone": by_email[c.email].get("timezone") or "",
            "load": coordinator.matching.load_of(c.email, now),
            "invited": _local_time(invited.get(c.email), zone),
        }
        for c in ranked
    ]


# --- history ------------------------------------------------------------------------------


def request_history(store: Store, number: int, zone: str) -> list[dict[str, str]]:
    """What happened to request ``number``, oldest first: [{"at", "text"}] from the audit
    log, times in ``zone``, mentors named."""
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

    lines = []
    # Events of one moment are logged in the order the code meets them; a person reads
    # "received" before what came of it.
    events = sorted(
        store.audit_log(number),
        key=lambda e: (str(e.get("at") or ""), e.get("event") != "request received"),
    )
    for event in events:
        kind = event.get("event", "")
        text = _HISTORY.get(kind)
        sentence = text(event, who, many) if text else kind[:1].upper() + kind[1:]
        lines.append({"at": _local_time(event.get("at"), zone), "text": sentence})
    return lines


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
    "released": lambda e, who, many: f"Given back by {who(e.get('mentor'))}",
    "request note": lambda e, who, many: "The mentee added a note",
    "request withdrawn": lambda e, who, many: "Withdrawn by the mentee",
    "ladder bump": lambda e, who, many: f"Reminded {many(e.get('mentors'))}",
    "ladder mentee_update": lambda e, who, many: "Told the mentee we are still on it",
    "ladder widen": lambda e, who, many: (
        "Widened the search" if e.get("mentors") else "Widened the search: nobody new to ask"
    ),
    "ladder escalate": lambda e, who, many: (
        f"Escalated to {', '.join(e.get('contacts') or ()) or 'nobody'}"
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
    status = request["status"]
    if status == "withdrawn":
        outcome = "withdrawn"
    elif status in ("claimed", "done"):
        outcome = "yours" if holder == mentor_email else "taken"
    elif status != "open":
        outcome = "closed"
    elif mentor.get("status") == "resigned" or mentor_email in (request.get("released_by") or ()):
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
            if request is not None and request["status"] == "open" and store.mentor(mentor_email):
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


# --- formatting ---------------------------------------------------------------------------


def _days(delta: timedelta) -> str:
    days = delta.days
    if days >= 1:
        return f"{days} day{'s' if days != 1 else ''}"
    hours = int(delta.total_seconds() // 3600)
    return f"{hours} hour{'s' if hours != 1 else ''}"


def _local_time(text: Any, zone: str) -> str:
    if not isinstance(text, str) or not text:
        return ""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    return moment.astimezone(ZoneInfo(zone)).strftime("%a %-d %b %H:%M")


def _local_date(moment: datetime, zone: str | None, config: Config) -> str:
    try:
        tz = ZoneInfo(zone or config.program.timezone)
    except (KeyError, ValueError):
        tz = ZoneInfo(config.program.timezone)
    return moment.astimezone(tz).strftime("%A %-d %B")


register_sweep_step("ladder", ladder_step)
