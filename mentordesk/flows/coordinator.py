"""The coordinator's desk (SPEC §10, "Acting as the coordinator"): the moves a person
makes by hand — assign, reassign, withdraw, close, resend an invitation; pause, resume,
renew, resign or approve a mentor — from the CLI or the web desk.

Nothing here is a second copy of a rule: the transitions are ``state/lifecycle.py``'s,
the consequences ``flows/lifecycle.py``'s (a reassign is the holder's hand-over and a
claim made for the new mentor), the ranking ``flows/ranking.py``'s and a mentor's change
of standing ``flows/enrollment.py``'s. Each method runs on the store's writer thread in
one transaction, records who did it (``by``, e.g. "cli:alice") in the audit, and answers
a ``DeskOutcome``: done or refused, in a sentence a person reads. A refusal changes
nothing but the audit log.

The read-only questions of the desk (``candidates``, ``request_history``,
``needs_a_person``) and its plain types live in ``coordinator_views.py``; the moves on a
mentor's standing in ``coordinator_mentors.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..config import Config
from ..mailer.outbox import Postman
from ..state.lifecycle import RequestEvent, next_request_status
from ..state.records import MentorStatus, RequestStatus, mentor_status, request_status, term_over
from ..state.store import Store
from ..views import request_view, tag
from .claims import ClaimDesk
from .coordinator_mentors import CoordinatorMentors
from .coordinator_views import CoordinatorViews, DeskOutcome, parse_ref
from .enrollment import EnrollmentDesk
from .escalation import assign as assign_claim
from .escalation import moment_text
from .lifecycle import Lifecycle
from .sessions import SessionDesk

__all__ = ["CoordinatorDesk", "DeskOutcome", "parse_ref"]


class _Refused(Exception):
    """Undoes a move half made (the transaction rolls back) and says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# What a refused claim made for the coordinator means, in words (ClaimResult.outcome).
_CLAIM_REFUSALS = {
    "withdrawn": "{tag} was withdrawn",
    "taken": "{tag} is already with {holder}",
    "yours": "{tag} is already with {holder}",
    "closed": "{tag} is {status}: only an open request can be given to a mentor",
    "not_invited": "{mentor} cannot take {tag}",
    "full": "{mentor} has taken {taken} of {capacity} requests this month",
    "unknown": "{tag} or {mentor} is not known",
}


class CoordinatorDesk(CoordinatorViews, CoordinatorMentors):
    """Carries out a coordinator's moves with the lifecycle's consequences."""

    def __init__(
        self,
        config: Config,
        store: Store,
        postman: Postman,
        lifecycle: Lifecycle,
        claims: ClaimDesk,
        sessions: SessionDesk,
        enrollment: EnrollmentDesk,
    ) -> None:
        self.config = config
        self.store = store
        self.postman = postman
        self.lifecycle = lifecycle
        self.claims = claims
        self.matching = claims.matching
        self.sessions = sessions
        self.enrollment = enrollment

    # Requests ------------------------------------------------------------------------------

    def assign(
        self, ref: str | int, mentor_email: str, *, by: str, now: datetime | None = None
    ) -> DeskOutcome:
        """Give an open request to ``mentor_email``: both are introduced, and a session is
        proposed as when a mentor claims it."""
        now = now or datetime.now(UTC)
        mentor_email = mentor_email.strip().lower()
        with self.store.transaction():
            found = self._request(ref)
            if isinstance(found, DeskOutcome):
                return found
            status = request_status(found)
            if status.held:
                return self._refuse(
                    found,
                    by,
                    now,
                    f"{tag(found['number'])} is already with {self.name_of(found['claimed_by'])}; "
                    "to give it to someone else, reassign it.",
                )
            if status is not RequestStatus.OPEN:
                return self._refuse(found, by, now, _not_open(found))
            problem = self._cannot_take(found, mentor_email, now)
            if problem is not None:
                return problem if problem.unknown else self._refuse(found, by, now, problem.message)
            number = int(found["number"])
            result = assign_claim(self.claims, number, mentor_email, by, now)
            if result.outcome != "claimed":
                return self._refuse(
                    found, by, now, self._claim_refusal(found, mentor_email, result)
                )
            name = self.name_of(mentor_email)
            return DeskOutcome(
                True,
                f"{tag(number)} is now with {name}; {name} and the mentee were introduced"
                f"{self._session_words(number, name)}.",
            )

    def reassign(
        self, ref: str | int, mentor_email: str, *, by: str, now: datetime | None = None
    ) -> DeskOutcome:
        """Take a held request from its holder and give it to ``mentor_email``: the holder
        is told and their session cancelled (METHOD:CANCEL, same UID, SEQUENCE + 1); the
        new pair are introduced and invited to a new session."""
        now = now or datetime.now(UTC)
        mentor_email = mentor_email.strip().lower()
        try:
            with self.store.transaction():
                found = self._request(ref)
                if isinstance(found, DeskOutcome):
                    return found
                number = int(found["number"])
                if not request_status(found).held:
                    raise _Refused(
                        f"{tag(number)} is {found.get('status')}, with nobody to take it from"
                        + ("; assign it instead." if _is_open(found) else ".")
                    )
                holder = str(found.get("claimed_by") or "")
                if holder == mentor_email:
                    raise _Refused(f"{tag(number)} is already with {self.name_of(holder)}.")
                problem = self._cannot_take(found, mentor_email, now)
                if problem is not None:
                    if problem.unknown:
                        return problem
                    raise _Refused(problem.message)
                had_session = self.sessions.session_of(number) is not None
                if not self.lifecycle.hand_over(number, by, now):
                    raise _Refused(f"{tag(number)} could not be taken from {self.name_of(holder)}.")
                result = assign_claim(self.claims, number, mentor_email, by, now)
                if result.outcome != "claimed":
                    raise _Refused(self._claim_refusal(found, mentor_email, result))
                self.store.audit(
                    "reassigned", now=now, request=number, mentor=mentor_email, was=holder, by=by
                )
        except _Refused as refused:
            return self._refuse({"number": parse_ref(ref)}, by, now, refused.message)
        new, old = self.name_of(mentor_email), self.name_of(holder)
        cancelled = " (their session was cancelled in both calendars)" if had_session else ""
        return DeskOutcome(
            True,
            f"{tag(number)} is now with {new}; {old} was told{cancelled}, and {new} and the "
            f"mentee were introduced{self._session_words(number, new)}.",
        )

    def withdraw(self, ref: str | int, *, by: str, now: datetime | None = None) -> DeskOutcome:
        """Withdraw a request on the mentee's behalf: as if they had written "withdraw"."""
        now = now or datetime.now(UTC)
        with self.store.transaction():
            found = self._request(ref)
            if isinstance(found, DeskOutcome):
                return found
            number = int(found["number"])
            if next_request_status(request_status(found), RequestEvent.WITHDRAWN) is None:
                return self._refuse(
                    found, by, now, f"{tag(number)} is {found.get('status')}: it has ended."
                )
            holder = found.get("claimed_by") if request_status(found).held else None
            had_session = self.sessions.session_of(number) is not None
            # The mentee's own withdrawal, made for them: the holder reads it as theirs.
            self.lifecycle.withdraw(number, str(found["mentee"]), now)
            self.store.audit("withdrawn for the mentee", now=now, request=number, by=by)
            self.postman.send(
                "request_withdrawn",
                to=found["mentee"],
                to_name=found.get("name", ""),
                now=now,
                context={
                    "subject": f"[{tag(number)}] Your request is withdrawn",
                    "request": request_view(found),
                },
                thread=("request", number),
                request=number,
            )
        told = "the mentee"
        if holder:
            told = f"the mentee and {self.name_of(holder)}"
        cancelled = "; the session was cancelled in both calendars" if had_session else ""
        return DeskOutcome(True, f"{tag(number)} is withdrawn; {told} were told{cancelled}.")

    def close(self, ref: str | int, *, by: str, now: datetime | None = None) -> DeskOutcome:
        """Close a request whose session was held, without the after-session questions."""
        now = now or datetime.now(UTC)
        with self.store.transaction():
            found = self._request(ref)
            if isinstance(found, DeskOutcome):
                return found
            number = int(found["number"])
            if not self.lifecycle.advance(number, RequestEvent.CLOSED, now):
                status = request_status(found)
                hint = (
                    " To call it off, withdraw it."
                    if next_request_status(status, RequestEvent.WITHDRAWN)
                    else ""
                )
                return self._refuse(
                    found,
                    by,
                    now,
                    f"{tag(number)} is {status.value}: only a request whose session was held "
                    f"can be closed.{hint}",
                )
            self.store.audit("request closed", now=now, request=number, by=by)
        return DeskOutcome(
            True, f"{tag(number)} is closed; no after-session questions will be sent."
        )

    def resend_invitation(
        self, ref: str | int, *, by: str, now: datetime | None = None
    ) -> DeskOutcome:
        """Send the live session's calendar invitation again to both people."""
        now = now or datetime.now(UTC)
        with self.store.transaction():
            found = self._request(ref)
            if isinstance(found, DeskOutcome):
                return found
            number = int(found["number"])
            session = self.sessions.resend(number, by, now)
            if session is None:
                waiting = ""
                if request_status(found).held:
                    waiting = f" {self.name_of(found['claimed_by'])} picks a time."
                return self._refuse(
                    found, by, now, f"{tag(number)} has no session in calendars.{waiting}"
                )
        when = moment_text(session["start"], self.config.program.timezone)
        return DeskOutcome(
            True,
            f"The invitation to {tag(number)}'s session on {when} went again to "
            f"{self.name_of(session['mentor'])} and the mentee.",
        )

    # Helpers --------------------------------------------------------------------------------

    def _request(self, ref: str | int) -> dict[str, Any] | DeskOutcome:
        number = parse_ref(ref)
        request = self.store.request(number) if number is not None else None
        if request is None:
            return DeskOutcome(False, f"No request {ref!s} (a reference looks like MD-0042).", True)
        return request

    def _cannot_take(
        self, request: Mapping[str, Any], email: str, now: datetime
    ) -> DeskOutcome | None:
        """Why ``email`` may not be given ``request`` now (None: they may)."""
        mentor = self.store.mentor(email)
        if mentor is None:
            return DeskOutcome(False, f"No mentor has the address {email}.", True)
        name = str(mentor.get("name") or email)
        status = mentor_status(mentor)
        label = tag(int(request["number"]))
        problem = ""
        if email == request.get("mentee"):
            problem = f"{name} is the mentee of {label}."
        elif status is MentorStatus.PENDING:
            problem = f"{name} is not approved yet (mentor approve {email})."
        elif status.left or term_over(mentor, now):
            problem = f"{name} is no longer in the program ({status.value}); renew them first."
        elif status is MentorStatus.PAUSED:
            problem = f"{name} is paused; resume them first if they agree."
        elif email in (request.get("released_by") or ()):
            problem = f"{name} gave {label} back earlier."
        elif email in (request.get("exclude_mentors") or ()):
            problem = f"{label} is a follow-up asking for another mentor than {name}."
        elif not self.postman.may_mail(email):
            problem = f"Mail to {email} bounces; {name} would not hear of it."
        else:
            load = self.matching.load_of(email, now)
            if load["taken"] >= load["capacity"]:
                problem = (
                    f"{name} has taken {load['taken']} of {load['capacity']} requests this month."
                )
        return DeskOutcome(False, problem) if problem else None

    def _claim_refusal(self, request: Mapping[str, Any], email: str, result: Any) -> str:
        text = _CLAIM_REFUSALS.get(result.outcome, "{tag} could not be given to {mentor}")
        load = result.load or {}
        return (
            text.format(
                tag=tag(int(request["number"])),
                holder=result.holder_name or "another mentor",
                mentor=self.name_of(email),
                status=request.get("status"),
                taken=load.get("taken", "?"),
                capacity=load.get("capacity", "?"),
            )
            + "."
        )

    def _refuse(
        self, request: Mapping[str, Any], by: str, now: datetime, message: str
    ) -> DeskOutcome:
        self.store.audit(
            "coordinator refused", now=now, request=request.get("number"), by=by, why=message
        )
        return DeskOutcome(False, message)

    def name_of(self, email: Any) -> str:
        mentor = self.store.mentor(str(email or "")) or {}
        return str(mentor.get("name") or email or "someone")

    def _session_words(self, number: int, name: str) -> str:
        request = self.store.request(number) or {}
        session = self.sessions.session_of(number)
        if session is not None:
            when = moment_text(session["start"], self.config.program.timezone)
            return f", and both were invited to a session on {when}"
        if request.get("schedule") == "mentor picks":
            return f"; no time suits both weeks, so {name} picks one"
        return ""


def _is_open(request: Mapping[str, Any]) -> bool:
    return request_status(request) is RequestStatus.OPEN


def _not_open(request: Mapping[str, Any]) -> str:
    status = request_status(request)
    label = tag(int(request["number"]))
    if status is RequestStatus.INCOMPLETE:
        return f"{label} still waits for the mentee's details."
    return f"{label} is {status.value}: only an open request can be given to a mentor."
