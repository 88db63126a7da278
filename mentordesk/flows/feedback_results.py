"""What people answered (SPEC §3 flows 7 and 9), as numbers: pure, from the records.

The digest and ``mentordesk report feedback`` show these; the feedback desk
(``flows/feedback.py``) records the answers.

- ``survey_results``: a feedback round's ratings, mentors and mentees apart;
- ``session_results``: after-session ratings, whether sessions took place (the
  session's status: ``held`` or ``no-show``), and the follow-ups asked for;
- ``feedback_report``: both, as the plain-text report.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..config import Config
from ..state.records import SessionStatus, session_status
from ..state.store import Store, from_iso, iso
from ..status import table
from ..views import tag
from .words import plural

__all__ = [
    "RATINGS",
    "RatingSummary",
    "SessionResults",
    "SurveyResults",
    "feedback_report",
    "session_obj",
    "session_results",
    "summarise",
    "survey_obj",
    "survey_results",
]

#: The five answers to every rating question, worst first.
RATINGS: tuple[tuple[int, str], ...] = (
    (1, "Poor"),
    (2, "Fair"),
    (3, "Good"),
    (4, "Very good"),
    (5, "Excellent"),
)


def session_obj(uid: str) -> str:
    return f"session:{uid}"


def survey_obj(year: int) -> str:
    return f"survey:{year}"


# --- results (pure: the digest and `mentordesk report feedback` show them) ----------------


@dataclass(frozen=True)
class RatingSummary:
    """Ratings of one group: how many asked and answered, the average and the spread."""

    label: str
    asked: int
    answered: int
    average: float | None
    counts: tuple[int, ...]  # how many gave 1, 2, 3, 4, 5
    comments: tuple[tuple[int, str], ...]  # (score, comment), lowest score first

    @property
    def rate(self) -> float:
        return self.answered / self.asked if self.asked else 0.0


def summarise(label: str, asked: int, answers: Sequence[Mapping[str, Any]]) -> RatingSummary:
    scores = [int(a["score"]) for a in answers if a.get("score")]
    comments = sorted(
        ((int(a["score"]), str(a["comment"])) for a in answers if a.get("comment")),
        key=lambda pair: pair[0],
    )
    return RatingSummary(
        label=label,
        asked=asked,
        answered=len(answers),
        average=round(statistics.fmean(scores), 2) if scores else None,
        counts=tuple(scores.count(n) for n, _ in RATINGS),
        comments=tuple(comments),
    )


@dataclass(frozen=True)
class SurveyResults:
    year: int
    started: str
    reminded: str | None
    groups: tuple[RatingSummary, ...]  # mentors, mentees


def survey_results(store: Store, year: int) -> SurveyResults | None:
    survey = store.survey(year)
    if survey is None:
        return None
    answers = {a["person"]: a for a in store.feedback_all(survey_obj(year))}
    groups = []
    for role, label in (("mentor", "Mentors"), ("mentee", "Mentees")):
        asked = [e for e, who in survey["recipients"].items() if who["role"] == role]
        groups.append(summarise(label, len(asked), [answers[e] for e in asked if e in answers]))
    return SurveyResults(year, survey["started"], survey.get("reminded"), tuple(groups))


@dataclass(frozen=True)
class SessionResults:
    """After-session answers over a period: ratings, no-shows, follow-ups."""

    asked: int
    ratings: RatingSummary
    took_place: int
    no_shows: tuple[Mapping[str, Any], ...]  # tag, mentor, mentee, when (ISO), at
    followups: tuple[Mapping[str, Any], ...]  # tag, of (tag), mentee, at
    by_mentor: tuple[tuple[str, int, float], ...]  # (mentor, ratings, average), most first


def session_results(store: Store, since: datetime, until: datetime) -> SessionResults:
    """What came back about sessions between ``since`` and ``until`` (ISO bounds)."""
    low, high = iso(since), iso(until)

    def inside(value: str | None) -> bool:
        return bool(value) and low <= str(value) < high

    sessions = store.sessions_where(
        lambda s: (
            inside(s.get("followup_asked"))
            or inside((s.get("attendance") or {}).get("at"))
            or bool(s.get("followup_request"))
        )
    )
    asked = sum(1 for s in sessions if inside(s.get("followup_asked")))
    answers = [a for a in store.feedback_all("session:") if inside(a.get("updated"))]
    # The mentor's answer sets the session's status; the status is what counts.
    attendance = [s for s in sessions if inside((s.get("attendance") or {}).get("at"))]
    took_place = sum(1 for s in attendance if session_status(s) is SessionStatus.HELD)
    no_shows = tuple(
        {
            "tag": tag(int(s["request"])),
            "request": int(s["request"]),
            "mentor": s["mentor"],
            "mentee": s["mentee"],
            "start": s["start"],
            "at": s["attendance"]["at"],
        }
        for s in attendance
        if session_status(s) is SessionStatus.NO_SHOW
    )
    followups = tuple(
        {
            "tag": tag(int(s["followup_request"])),
            "of": tag(int(s["request"])),
            "mentee": s["mentee"],
        }
        for s in sessions
        if s.get("followup_request") and inside(_request_created(store, s["followup_request"]))
    )
    per_mentor: dict[str, list[int]] = {}
    for answer in answers:
        per_mentor.setdefault(str(answer.get("mentor") or "?"), []).append(int(answer["score"]))
    by_mentor = tuple(
        sorted(
            ((m, len(s), round(statistics.fmean(s), 2)) for m, s in per_mentor.items()),
            key=lambda row: (-row[1], row[0]),
        )
    )
    return SessionResults(
        asked=asked,
        ratings=summarise("Sessions", asked, answers),
        took_place=took_place,
        no_shows=no_shows,
        followups=followups,
        by_mentor=by_mentor,
    )


def _request_created(store: Store, number: Any) -> str | None:
    request = store.request(int(number))
    return None if request is None else request.get("created")


# --- `mentordesk report feedback` ------------------------------------------------------------


def feedback_report(store: Store, config: Config, now: datetime) -> str:
    """Every feedback round, the latest one's comments, and a year of after-session answers."""
    zone = ZoneInfo(config.program.timezone)
    parts = [
        f"{config.program.name}: feedback, {now.astimezone(zone):%Y-%m-%d %H:%M} "
        f"({config.program.timezone})",
        "",
    ]
    rounds = [r for s in store.surveys() if (r := survey_results(store, int(s["year"])))]
    if rounds:
        rows = []
        for r in rounds:
            row = [str(r.year), r.started[:10], (r.reminded or "-")[:10]]
            for group in r.groups:
                row += [f"{group.answered}/{group.asked}", _average(group)]
            rows.append(row)
        headers = ["year", "started", "reminded", "mentors", "avg", "mentees", "avg"]
        parts += ["Feedback rounds (answered/asked, average of 5)", table(headers, rows), ""]
        latest = rounds[-1]
        parts.append(f"Round {latest.year}")
        for group in latest.groups:
            parts.append(f"  {_summary_line(group)}")
            parts += [f"    [{score}] {' '.join(text.split())}" for score, text in group.comments]
    else:
        parts.append("Feedback rounds: none yet (the first goes out on the survey date).")
    since = now - timedelta(days=365)
    results = session_results(store, since, now)
    parts += [
        "",
        "After sessions, the last 365 days",
        f"  asked {results.asked}; {results.took_place} took place, "
        f"{plural(len(results.no_shows), 'no-show')}, "
        f"{plural(len(results.followups), 'follow-up')}",
        f"  {_summary_line(results.ratings)}",
    ]
    parts += [f"    [{score}] {' '.join(text.split())}" for score, text in results.ratings.comments]
    if results.by_mentor:
        rows = [[m, str(n), f"{avg:.1f}"] for m, n, avg in results.by_mentor]
        parts += ["", "Ratings per mentor", table(["mentor", "ratings", "average"], rows)]
    if results.no_shows:
        rows = [
            [
                n["tag"],
                from_iso(n["start"]).astimezone(zone).strftime("%Y-%m-%d %H:%M"),
                n["mentee"],
                n["mentor"],
            ]
            for n in results.no_shows
        ]
        parts += ["", "No-shows", table(["request", "session", "mentee", "mentor"], rows)]
    return "\n".join(parts)


def _average(group: RatingSummary) -> str:
    return "-" if group.average is None else f"{group.average:.1f}"


def _summary_line(group: RatingSummary) -> str:
    spread = "  ".join(f"{n}:{count}" for (n, _), count in zip(RATINGS, group.counts, strict=True))
    share = f" ({group.rate:.0%})" if group.asked else ""
    return (
        f"{group.label}: {group.answered} of {group.asked} answered{share}, "
        f"average {_average(group)} / 5   {spread}"
    )
