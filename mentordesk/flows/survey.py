"""The yearly feedback round (SPEC §3 flow 9).

Once a year on ``[timers] survey_date`` (a yearly timer job; at most ``survey_grace``
late, else skipped — a round missed by months does not go out on the next start) every
mentor in the program and every mentee of the past year gets one question with one-click
ratings; ``survey_reminder_after`` later, one reminder to those who have not answered
(also at most ``survey_grace`` late). A second run in the same year sends nothing.
The answers are recorded by the feedback desk's rating page (``flows/feedback.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ..mailer.outbox import Postman
from ..state.records import (
    MentorStatus,
    RequestStatus,
    mentor_status,
    request_status,
    term_over,
)
from ..state.store import Store, from_iso, iso
from ..timers import skip_late, too_late
from .feedback import FeedbackDesk, survey_question
from .feedback_results import survey_obj
from .words import span

if TYPE_CHECKING:
    from ..core import Coordinator

__all__ = [
    "remind_round",
    "start_round",
    "survey_recipients",
    "survey_reminder_step",
    "survey_round_job",
]

log = logging.getLogger(__name__)

# Mentors asked in the feedback round (if their term is not over).
IN_PROGRAM = frozenset({MentorStatus.ACTIVE, MentorStatus.PAUSED})


def survey_round_job(coordinator: Coordinator, now: datetime) -> int:
    """Yearly job on ``survey_date``: the feedback round (once per year)."""
    return start_round(FeedbackDesk(coordinator.claims), now)


def survey_reminder_step(coordinator: Coordinator, now: datetime) -> int:
    """Sweep step: the one reminder of a feedback round."""
    return remind_round(FeedbackDesk(coordinator.claims), now)


def survey_recipients(store: Store, postman: Postman, now: datetime) -> dict[str, dict[str, str]]:
    """email → {"role", "name"}: every mentor in the program (active or paused, term
    not over) and every mentee with a complete request in the past year. Someone who is
    both is asked as a mentor. Addresses the mail gate refuses are left out."""
    cutoff = iso(now - timedelta(days=365))
    people: dict[str, dict[str, str]] = {}
    for request in sorted(store.requests(), key=lambda r: r.get("created") or ""):
        if request_status(request) is RequestStatus.INCOMPLETE:
            continue
        if (request.get("created") or "") < cutoff:
            continue
        people[request["mentee"]] = {"role": "mentee", "name": request.get("name") or ""}
    for mentor in store.mentors():
        if mentor_status(mentor) in IN_PROGRAM and not term_over(mentor, now):
            people[mentor["email"]] = {"role": "mentor", "name": mentor.get("name") or ""}
    return {email: who for email, who in sorted(people.items()) if postman.may_mail(email)}


def start_round(desk: FeedbackDesk, now: datetime) -> int:
    """Send this year's survey to everyone it is for; nothing if it went out already."""
    store = desk.store
    year = now.astimezone(ZoneInfo(desk.config.program.timezone)).year
    if store.survey(year) is not None:
        return 0
    people = survey_recipients(store, desk.postman, now)
    recipients: dict[str, dict[str, Any]] = {}
    for email, who in people.items():
        if _send_survey(desk, "survey_invite", email, who, year, now):
            recipients[email] = {**who, "sent": iso(now)}
    store.save_survey(
        {"year": year, "started": iso(now), "reminded": None, "recipients": recipients}
    )
    store.audit("feedback round started", now=now, year=year, asked=len(recipients))
    log.info("feedback round %s: asked %d people", year, len(recipients))
    return len(recipients)


def remind_round(desk: FeedbackDesk, now: datetime) -> int:
    """One reminder, ``survey_reminder_after`` after a round started, to those who have
    not answered. Found more than ``survey_grace`` late (the daemon was down), it is
    skipped and written down."""
    store, timers = desk.store, desk.config.timers
    reminded = 0
    for survey in store.surveys():
        if survey.get("reminded"):
            continue
        moment = from_iso(survey["started"]) + timers.survey_reminder_after
        if now < moment:
            continue
        year = int(survey["year"])
        obj = survey_obj(year)
        survey["reminded"] = iso(now)
        count = 0
        if too_late(moment, now, timers.survey_grace):
            skip_late(
                store,
                now,
                step="feedback round reminder",
                what=str(year),
                due=moment,
                rule=f"done late only within {span(timers.survey_grace)}",
            )
        else:
            for email, who in survey["recipients"].items():
                if store.feedback(obj, email) is not None:
                    continue
                if _send_survey(desk, "survey_reminder", email, who, year, now):
                    who["reminded"] = iso(now)
                    count += 1
        store.save_survey(survey)
        store.audit("feedback round reminded", now=now, year=year, reminded=count)
        reminded += count
    return reminded


def _send_survey(
    desk: FeedbackDesk,
    template: str,
    email: str,
    who: Mapping[str, str],
    year: int,
    now: datetime,
) -> str | None:
    obj = survey_obj(year)
    return desk.postman.send(
        template,
        to=email,
        to_name=who.get("name", ""),
        now=now,
        context={
            "name": who.get("name", ""),
            "role": who["role"],
            "year": year,
            "question": survey_question(who["role"], desk.config.program.name),
            "ratings": desk.rating_links(email, obj, now),
            "comment_url": desk.link("rate", email, obj, now),
            "lifetime_days": desk.config.web.link_lifetime.days,
        },
    )
