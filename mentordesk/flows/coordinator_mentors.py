"""The coordinator's moves on a mentor's standing (a mixin of ``CoordinatorDesk``):
pause, resume, renew, resign and approve, for them.

The change itself is enrollment's (``EnrollmentDesk.change_standing``: the one
lifecycle, and resigning hands back what they held); here the mentor is told that a
coordinator made it, and the coordinator reads what happened.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..state.lifecycle import MentorEvent
from ..state.records import MentorStatus, mentor_status
from ..state.store import Store, iso
from .coordinator_views import DeskOutcome

if TYPE_CHECKING:
    from ..config import Config
    from ..mailer.outbox import Postman
    from .enrollment import EnrollmentDesk

__all__ = ["CoordinatorMentors"]


class CoordinatorMentors:
    """Pause, resume, renew, resign and approve a mentor, for them."""

    config: Config
    store: Store
    postman: Postman
    enrollment: EnrollmentDesk

    def pause(self, mentor_email: str, *, by: str, now: datetime | None = None) -> DeskOutcome:
        return self._standing(mentor_email, MentorEvent.PAUSE, by, now)

    def resume(self, mentor_email: str, *, by: str, now: datetime | None = None) -> DeskOutcome:
        return self._standing(mentor_email, MentorEvent.RESUME, by, now)

    def renew(
        self,
        mentor_email: str,
        *,
        by: str,
        until: datetime | None = None,
        now: datetime | None = None,
    ) -> DeskOutcome:
        when = now or datetime.now(UTC)
        if until is not None and until <= when:
            return DeskOutcome(False, f"A renewed term cannot end in the past ({iso(until)[:10]}).")
        return self._standing(mentor_email, MentorEvent.RENEW, by, now, until=until)

    def resign(self, mentor_email: str, *, by: str, now: datetime | None = None) -> DeskOutcome:
        return self._standing(mentor_email, MentorEvent.RESIGN, by, now)

    def approve(self, mentor_email: str, *, by: str, now: datetime | None = None) -> DeskOutcome:
        return self._standing(mentor_email, MentorEvent.APPROVE, by, now)

    def _standing(
        self,
        mentor_email: str,
        event: MentorEvent,
        by: str,
        now: datetime | None,
        *,
        until: datetime | None = None,
    ) -> DeskOutcome:
        now = now or datetime.now(UTC)
        mentor_email = mentor_email.strip().lower()
        mentor_doc = self.store.mentor(mentor_email)
        if mentor_doc is not None and event in (MentorEvent.PAUSE, MentorEvent.RESUME):
            current = mentor_status(mentor_doc)
            if current is (
                MentorStatus.PAUSED if event is MentorEvent.PAUSE else MentorStatus.ACTIVE
            ):
                name = str(mentor_doc.get("name") or mentor_email)
                message = f"{name} is {current.value} already; nothing changed."
                with self.store.transaction():
                    self.store.audit(
                        "coordinator refused", now=now, mentor=mentor_email, by=by, why=message
                    )
                return DeskOutcome(False, message)
        with self.store.transaction():
            changed = self.enrollment.change_standing(mentor_email, event, now, by=by, until=until)
            if changed is None:
                return DeskOutcome(False, f"No mentor has the address {mentor_email}.", True)
            before, after, mentor = changed
            name = str(mentor.get("name") or mentor_email)
            if after is None:
                return DeskOutcome(False, f"{name} is {before.value}: {_REFUSED[event]}")
            view = self.enrollment.mentor_view(mentor, name)
            if event is MentorEvent.APPROVE:
                self.postman.send(
                    "mentor_approved",
                    to=mentor_email,
                    to_name=name,
                    now=now,
                    context={"mentor": view},
                    thread=("mentor", mentor_email),
                )
            else:
                self.postman.send(
                    "mentor_status",
                    to=mentor_email,
                    to_name=name,
                    now=now,
                    context={
                        "subject": f"[{self.config.program.name}] {_SUBJECTS[event]}",
                        "refused": False,
                        "was": before.value,
                        "command": event.value,
                        "mentor": view,
                        "by_coordinator": True,
                    },
                    thread=("mentor", mentor_email),
                )
        done = _DONE[event].format(name=name, term_end=view["term_end"])
        if event is MentorEvent.RESIGN and (released := _released_count(self.store, mentor_email)):
            done += f" {released} request{'s' if released != 1 else ''} went back to matching."
        return DeskOutcome(True, f"{done} {name} was told.")


def _released_count(store: Store, email: str) -> int:
    for event in reversed(store.audit_log()):
        if event.get("event") == "mentor resigned" and event.get("mentor") == email:
            return len(event.get("released") or ())
    return 0


_REFUSED = {
    MentorEvent.PAUSE: "only an active mentor can be paused.",
    MentorEvent.RESUME: "only a paused mentor (or one who resigned within their term) "
    "can be resumed; renew one whose term ended.",
    MentorEvent.RENEW: "this cannot be renewed.",
    MentorEvent.RESIGN: "they have already stepped down.",
    MentorEvent.APPROVE: "only a pending enrollment can be approved.",
}
_SUBJECTS = {
    MentorEvent.PAUSE: "You are paused",
    MentorEvent.RESUME: "Welcome back",
    MentorEvent.RENEW: "Your mentor term is renewed",
    MentorEvent.RESIGN: "You have stepped down",
}
_DONE = {
    MentorEvent.PAUSE: "{name} is paused: no new requests until resumed.",
    MentorEvent.RESUME: "{name} is active again and gets new requests.",
    MentorEvent.RENEW: "{name}'s term now runs until {term_end}.",
    MentorEvent.RESIGN: "{name} has stepped down.",
    MentorEvent.APPROVE: "{name} is approved and gets requests from now on.",
}
