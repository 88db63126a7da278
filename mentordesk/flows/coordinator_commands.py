"""The coordinator's commands as the CLI sends them: JSON in, JSON out.

``run_command(desk, command, now)`` runs on the store's writer thread, in the daemon
(the admin route, ``admin.py``) or, with no daemon, on the store the CLI opened. A
command is ``{"desk": "coordinator", "action": …, "by": "cli:alice", …}``:

    request.show|assign|reassign|withdraw|close|resend   {"ref", "mentor"}
    mentor.show|pause|resume|renew|resign|approve         {"email", "until"}
    digest.now {"to"}     feedback-round.now

The answer is ``{"done", "message", "unknown", "lines"}``: done or refused (the message
says why), ``unknown`` when the reference or address names nothing, ``lines`` what a
``show`` prints. A malformed command raises CommandError (the CLI's bad usage).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from ..errors import CommandError
from ..inbox.hours import format_windows
from ..state.records import HELD, request_status
from ..views import tag, windows_from_doc
from .coordinator import CoordinatorDesk, DeskOutcome, parse_ref
from .digest_mail import send_digest_now
from .escalation import moment_text
from .feedback import FeedbackDesk
from .survey import start_round

__all__ = ["ACTIONS", "DESK", "run_command"]

DESK = "coordinator"
MAX_BY = 100
_ADDRESS = re.compile(r"[^@\s<>\"']{1,64}@[^@\s<>\"']{1,255}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

Action = Callable[[CoordinatorDesk, Mapping[str, Any], str, datetime], DeskOutcome | dict[str, Any]]


def run_command(desk: CoordinatorDesk, command: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Apply one coordinator command; its answer (JSON-able)."""
    action = command.get("action")
    run = ACTIONS.get(action) if isinstance(action, str) else None
    if run is None:
        raise CommandError(f"unknown action {action!r}; known: {', '.join(sorted(ACTIONS))}")
    by = command.get("by")
    if not isinstance(by, str) or not by.strip() or len(by) > MAX_BY or not by.isprintable():
        raise CommandError("by must name who acts, e.g. cli:alice")
    answer = run(desk, command, by.strip(), now)
    if isinstance(answer, DeskOutcome):
        return {"done": answer.done, "message": answer.message, "unknown": answer.unknown}
    return answer


def _text(command: Mapping[str, Any], key: str) -> str:
    value = command.get(key)
    if value is not None and not isinstance(value, str):
        raise CommandError(f"{key} must be text, got {type(value).__name__}")
    if not value or not value.strip():
        raise CommandError(f"{key} is missing")
    return value.strip()


def _ref(command: Mapping[str, Any]) -> str:
    ref = _text(command, "ref")
    if parse_ref(ref) is None:
        raise CommandError(f"{ref!r} is not a request reference (like MD-0042)")
    return ref


def _address(command: Mapping[str, Any], key: str) -> str:
    address = _text(command, key).lower()
    if not _ADDRESS.fullmatch(address):
        raise CommandError(f"{key}: {address!r} is not an email address")
    return address


def _until(command: Mapping[str, Any]) -> datetime | None:
    raw = command.get("until")
    if raw in (None, ""):
        return None
    if not isinstance(raw, str) or not _DATE.fullmatch(raw.strip()):
        raise CommandError("until must be a date like 2027-06-30")
    try:
        day = datetime.strptime(raw.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise CommandError(f"until: {raw!r} is not a date") from None
    # Midday UTC: every place that shows a term's end (its date, in UTC) shows this day.
    return datetime.combine(day, time(12, 0), UTC)


# --- requests ------------------------------------------------------------------------------


def _show_request(
    desk: CoordinatorDesk, command: Mapping[str, Any], by: str, now: datetime
) -> dict[str, Any]:
    ref = _ref(command)
    number = parse_ref(ref)
    request = desk.store.request(number) if number is not None else None
    history = desk.request_history(ref)
    if request is None or history is None:
        return {"done": False, "message": f"No request {ref}.", "unknown": True}
    zone = desk.config.program.timezone
    skills = ", ".join(request.get("skills") or ()) or "?"
    lines = [
        f"{tag(int(request['number']))}  {request.get('status')}  "
        f"{request.get('name') or ''} <{request['mentee']}>",
        f"  skills: {skills}; created {moment_text(request.get('created'), zone)}",
    ]
    availability = format_windows(windows_from_doc(request.get("availability") or []))
    if availability:
        lines.append(f"  hours: {availability} ({request.get('timezone') or '?'})")
    invited = [desk.name_of(i["email"]) for i in request.get("invited") or ()]
    if invited:
        lines.append(f"  invited: {', '.join(invited)}")
    if request_status(request).held:
        lines.append(f"  with: {desk.name_of(request.get('claimed_by'))}")
    session = desk.sessions.session_of(int(request["number"]))
    if session is not None:
        lines.append(
            f"  session: {moment_text(session['start'], zone)} ({session['status']}, "
            f"SEQUENCE {session['sequence']})"
        )
    candidates = desk.candidates(ref, now)
    if candidates:
        lines.append("Candidates (best first):")
        for c in candidates:
            lines.append(
                f"  {c.rank}. {c.name} <{c.email}>  {c.status}, {c.taken}/{c.capacity} this "
                f"month, {c.overlap_minutes // 60}h in common" + (", invited" if c.invited else "")
            )
    lines.append("History:")
    lines += [f"  {line.local}  {line.kind:<9}  {line.text}" for line in history]
    return {"done": True, "message": "", "unknown": False, "lines": lines}


def _assign(
    desk: CoordinatorDesk, command: Mapping[str, Any], by: str, now: datetime
) -> DeskOutcome:
    return desk.assign(_ref(command), _address(command, "mentor"), by=by, now=now)


def _reassign(
    desk: CoordinatorDesk, command: Mapping[str, Any], by: str, now: datetime
) -> DeskOutcome:
    return desk.reassign(_ref(command), _address(command, "mentor"), by=by, now=now)


def _withdraw(
    desk: CoordinatorDesk, command: Mapping[str, Any], by: str, now: datetime
) -> DeskOutcome:
    return desk.withdraw(_ref(command), by=by, now=now)


def _close(
    desk: CoordinatorDesk, command: Mapping[str, Any], by: str, now: datetime
) -> DeskOutcome:
    return desk.close(_ref(command), by=by, now=now)


def _resend(
    desk: CoordinatorDesk, command: Mapping[str, Any], by: str, now: datetime
) -> DeskOutcome:
    return desk.resend_invitation(_ref(command), by=by, now=now)


# --- mentors ---------------------------------------------------------------------------------


def _show_mentor(
    desk: CoordinatorDesk, command: Mapping[str, Any], by: str, now: datetime
) -> dict[str, Any]:
    email = _address(command, "email")
    mentor = desk.store.mentor(email)
    if mentor is None:
        return {"done": False, "message": f"No mentor has the address {email}.", "unknown": True}
    zone = desk.config.program.timezone
    load = desk.matching.load_of(email, now)
    # By index: the held requests, and this mentor's live sessions, not every one.
    held = desk.store.requests_where(
        lambda d: d.get("claimed_by") == email, statuses=[s.value for s in HELD]
    )
    sessions = [s for s in desk.store.live_sessions_of(email) if s.get("mentor") == email]
    series = [s for s in desk.store.all_series() if email in s.get("mentors", ())]
    lines = [
        f"{mentor.get('name') or email} <{email}>  {mentor.get('status')}",
        f"  skills: {', '.join(mentor.get('skills') or ()) or '?'}",
        f"  hours: {format_windows(windows_from_doc(mentor.get('availability') or [])) or '?'} "
        f"({mentor.get('timezone') or '?'})",
        f"  this month: {load['taken']} of {load['capacity']}; "
        f"term ends {str(mentor.get('term_end') or 'never')[:10]}",
        "  holds: " + (", ".join(tag(int(r["number"])) for r in held) or "nothing"),
    ]
    for session in sorted(sessions, key=lambda s: str(s.get("start"))):
        lines.append(
            f"  session: {moment_text(session['start'], zone)} for "
            f"{tag(int(session['request']))} ({session['status']})"
        )
    for s in series:
        lines.append(f"  office hours {s['id']}: {s.get('title') or 'Office hours'}")
    return {"done": True, "message": "", "unknown": False, "lines": lines}


def _standing(method: str) -> Action:
    def run(
        desk: CoordinatorDesk, command: Mapping[str, Any], by: str, now: datetime
    ) -> DeskOutcome:
        email = _address(command, "email")
        if method == "renew":
            until = _until(command)
            return desk.renew(email, by=by, until=until, now=now)
        act: Callable[..., DeskOutcome] = getattr(desk, method)
        return act(email, by=by, now=now)

    return run


# --- on demand ------------------------------------------------------------------------------


def _digest(
    desk: CoordinatorDesk, command: Mapping[str, Any], by: str, now: datetime
) -> DeskOutcome:
    to = _address(command, "to") if command.get("to") else desk.config.program.coordinator
    with desk.store.transaction():
        sent = send_digest_now(desk.store, desk.config, desk.postman, now, to)
    if not sent:
        return DeskOutcome(False, f"Mail to {to} bounces; no digest was sent.")
    return DeskOutcome(True, f"The digest went to {to}; the daily one still goes out as usual.")


def _feedback_round(
    desk: CoordinatorDesk, command: Mapping[str, Any], by: str, now: datetime
) -> DeskOutcome:
    year = now.astimezone(ZoneInfo(desk.config.program.timezone)).year
    with desk.store.transaction():
        survey = desk.store.survey(year)
        if survey is not None:
            started = moment_text(survey.get("started"), desk.config.program.timezone)
            return DeskOutcome(
                False, f"The {year} feedback round went out on {started}; one a year."
            )
        asked = start_round(FeedbackDesk(desk.claims), now)
        desk.store.audit("feedback round on demand", now=now, year=year, asked=asked, by=by)
    people = f"{asked} {'person' if asked == 1 else 'people'}"
    return DeskOutcome(
        True, f"The {year} feedback round went out to {people}; the one reminder follows."
    )


ACTIONS: dict[str, Action] = {
    "request.show": _show_request,
    "request.assign": _assign,
    "request.reassign": _reassign,
    "request.withdraw": _withdraw,
    "request.close": _close,
    "request.resend": _resend,
    "mentor.show": _show_mentor,
    **{f"mentor.{m}": _standing(m) for m in ("pause", "resume", "renew", "resign", "approve")},
    "digest.now": _digest,
    "feedback-round.now": _feedback_round,
}
