"""After the session and the yearly feedback round (SPEC §3 flows 7 and 9).

Both ask people for a rating with one click. The links in the emails lead to a page,
never straight to an action: mail scanners and link previews open every link in a
message, so a link that recorded on GET would record all five ratings at once. A click
opens a page with that rating already chosen, an optional comment box and one "Send"
button; only that button's POST records anything, and a second POST replaces the first
answer instead of adding another.

Every link carries a signed token (``tokens.py``) bound to one person and one object,
and the object is checked too: a genuine token for someone who is not that session's
mentee (or was not asked in that round) is refused as "not yours".

    purpose    object            who may use it, for what
    rate       session:<uid>     the session's mentee: how did it go (1–5, a comment)
    rate       survey:<year>     someone asked in that year's round (1–5, a comment)
    followup   session:<uid>     the session's mentee: a follow-up with another mentor
    attended   session:<uid>     the session's mentor: did it take place (yes / no-show)

The timer steps are plain ``fn(coordinator, now) -> int`` functions (how many things
they did), run on the store's writer thread inside one transaction each:

- :func:`after_sessions_step`: ``followup_after`` past the end of a session that was not
  cancelled, ask the mentee how it went and the mentor whether it took place; once.
- :func:`survey_round_job` (yearly, on ``survey_date``): the feedback round; a second run
  in the same year sends nothing.
- :func:`survey_reminder_step`: the one reminder, ``survey_reminder_after`` later, to
  those who have not answered.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ..config import Config
from ..flows.claims import ClaimDesk
from ..reports import register_report
from ..state.store import Store, from_iso, iso
from ..status import table
from ..timers import register_sweep_step, register_yearly
from ..views import request_view, tag

if TYPE_CHECKING:
    from ..core import Coordinator

log = logging.getLogger(__name__)

#: The five answers to every rating question, worst first.
RATINGS: tuple[tuple[int, str], ...] = (
    (1, "Poor"),
    (2, "Fair"),
    (3, "Good"),
    (4, "Very good"),
    (5, "Excellent"),
)
MAX_COMMENT_CHARS = 2000
ATTENDANCE = {"yes": "We met", "no-show": "They did not come"}
# Session states in which a meeting may have happened (everything but "cancelled").
HELD_STATUSES = ("proposed", "confirmed", "done")


def parse_score(unsafe: str | None) -> int | None:
    """'4' → 4; anything that is not a whole number 1–5 → None."""
    text = (unsafe or "").strip()
    return int(text) if text in {"1", "2", "3", "4", "5"} else None


def clean_comment(unsafe: str | None) -> str:
    """What a person typed in the comment box: trimmed, at most MAX_COMMENT_CHARS."""
    text = (unsafe or "").replace("\r\n", "\n").replace("\x00", "").strip()
    return text[:MAX_COMMENT_CHARS]


def session_obj(uid: str) -> str:
    return f"session:{uid}"


def survey_obj(year: int) -> str:
    return f"survey:{year}"


@dataclass(frozen=True)
class FeedbackPage:
    """What one of the feedback pages shows, and how that went.

    ``outcome``: ask (a GET: the form) | recorded | updated | missing_score |
    not_yours | unknown | created (a follow-up request) | already (asked before).
    """

    outcome: str
    kind: str = ""  # session | survey | attended | followup
    question: str = ""
    score: int | None = None
    answer: str = ""  # attended: yes | no-show
    comment: str = ""
    about: Mapping[str, str] = field(default_factory=dict)
    request_tag: str = ""  # followup: the new request's reference
    followup_url: str = ""  # rating pages of a session: ask for a follow-up from here


# --- who is asked in a feedback round (pure) -------------------------------------------


def survey_recipients(store: Store, now: datetime) -> dict[str, dict[str, str]]:
    """email → {"role", "name"}: every mentor in the program (active or paused, term
    not ended) and every mentee with a request in the past year. Someone who is both is
    asked as a mentor. Undeliverable addresses are left out."""
    cutoff = iso(now - timedelta(days=365))
    people: dict[str, dict[str, str]] = {}
    for request in sorted(store.requests(), key=lambda r: r.get("created") or ""):
        if request["status"] == "incomplete" or (request.get("created") or "") < cutoff:
            continue
        people[request["mentee"]] = {"role": "mentee", "name": request.get("name") or ""}
    for mentor in store.mentors():
        in_term = (mentor.get("term_end") or "") > iso(now)
        if mentor.get("status") in ("active", "paused") and in_term:
            people[mentor["email"]] = {"role": "mentor", "name": mentor.get("name") or ""}
    return {email: who for email, who in sorted(people.items()) if not store.is_bounced(email)}


# --- the desk -----------------------------------------------------------------------------


class FeedbackDesk:
    """Asks for ratings, records answers, re-pairs for follow-ups. Runs on the writer thread."""

    def __init__(self, claims: ClaimDesk) -> None:
        self.claims = claims
        self.config = claims.config
        self.store: Store = claims.store
        self.postman = claims.postman

    # Links ------------------------------------------------------------------------------

    def link(self, purpose: str, person: str, obj: str, now: datetime, query: str = "") -> str:
        url = self.claims.links(purpose, person, obj, now)
        return f"{url}?{query}" if query else url

    def rating_links(self, person: str, obj: str, now: datetime) -> list[dict[str, Any]]:
        """One link per rating; each opens the page with that rating chosen."""
        return [
            {"score": n, "label": label, "url": self.link("rate", person, obj, now, f"score={n}")}
            for n, label in RATINGS
        ]

    # After the session (flow 7) ------------------------------------------------------------

    def ask_after_sessions(self, now: datetime) -> int:
        """Ask about every session that ended ``followup_after`` ago; each one once.

        A session found much later than that (the daemon was down for longer than a
        link lives) is marked as skipped instead: "how did it go" weeks later reads oddly.
        """
        asked = 0
        wait = self.config.timers.followup_after
        too_late = wait + self.config.web.link_lifetime
        ended_by = iso(now - wait)

        def due(doc: Mapping[str, Any]) -> bool:
            # Sees every stored session uncopied: only the due ones are copied out.
            return (
                doc["status"] in HELD_STATUSES
                and doc["end"] <= ended_by
                and not doc.get("followup_asked")
                and not doc.get("followup_skipped")
            )

        for session in self.store.sessions_where(due):
            ended = from_iso(session["end"])
            if now > ended + too_late:
                session["followup_skipped"] = iso(now)
                self.store.save_session(session)
                self.store.audit("after-session skipped", now=now, uid=session["uid"])
                continue
            session["followup_asked"] = iso(now)
            self.store.save_session(session)
            # Nobody is written to at an address known to bounce (the coordinator knows).
            if not self.store.is_bounced(session["mentee"]):
                self._ask_mentee(session, now)
            if not self.store.is_bounced(session["mentor"]):
                self._ask_mentor(session, now)
            self.store.audit(
                "after-session asked",
                now=now,
                request=int(session["request"]),
                uid=session["uid"],
            )
            asked += 1
        return asked

    def _session_context(self, session: Mapping[str, Any], person: str) -> dict[str, Any]:
        from ..flows.sessions import when_text

        mentor = self.store.mentor(session["mentor"]) or {"email": session["mentor"]}
        request = self.store.request(int(session["request"])) or {
            "number": session["request"],
            "mentee": session["mentee"],
        }
        reader = mentor if person == session["mentor"] else request
        return {
            "mentor_name": mentor.get("name") or "your mentor",
            "mentee_name": request.get("name") or "your mentee",
            "when": when_text(
                from_iso(session["start"]),
                from_iso(session["end"]),
                reader.get("timezone") or self.config.program.timezone,
            ),
            "tag": tag(int(session["request"])),
            "request": request_view(request),
        }

    def _ask_mentee(self, session: Mapping[str, Any], now: datetime) -> None:
        mentee = session["mentee"]
        about = self._session_context(session, mentee)
        obj = session_obj(session["uid"])
        self.postman.send(
            "after_session_mentee",
            to=mentee,
            to_name=about["request"]["name"],
            now=now,
            context={
                **about,
                "ratings": self.rating_links(mentee, obj, now),
                "comment_url": self.link("rate", mentee, obj, now),
                "followup_url": self.link("followup", mentee, obj, now),
            },
            thread=("request", int(session["request"])),
            request=int(session["request"]),
        )

    def _ask_mentor(self, session: Mapping[str, Any], now: datetime) -> None:
        mentor = session["mentor"]
        about = self._session_context(session, mentor)
        obj = session_obj(session["uid"])
        self.postman.send(
            "after_session_mentor",
            to=mentor,
            to_name=about["mentor_name"],
            now=now,
            context={
                **about,
                "yes_url": self.link("attended", mentor, obj, now, "answer=yes"),
                "no_show_url": self.link("attended", mentor, obj, now, "answer=no-show"),
            },
            thread=("request-mentor", {"number": int(session["request"]), "mentor": mentor}),
            request=int(session["request"]),
        )

    # Rating pages (sessions and surveys) -----------------------------------------------------

    def rating_page(
        self, obj: str, person: str, now: datetime, score: int | None = None
    ) -> FeedbackPage:
        """The rating form (GET): changes nothing. ``score`` pre-selects a rating."""
        page = self._rating_subject(obj, person, now)
        if page.outcome != "ask":
            return page
        previous = self.store.feedback(obj, person) or {}
        return replace(
            page,
            score=score if score is not None else previous.get("score"),
            comment=previous.get("comment", ""),
        )

    def rate(
        self, obj: str, person: str, score: int | None, comment: str, now: datetime
    ) -> FeedbackPage:
        """Record (or replace) ``person``'s answer about ``obj`` (POST)."""
        with self.store.transaction():
            page = self._rating_subject(obj, person, now)
            if page.outcome != "ask":
                return page
            if score is None:
                return replace(page, outcome="missing_score", comment=comment)
            previous = self.store.feedback(obj, person)
            doc: dict[str, Any] = {
                **(previous or {}),
                "obj": obj,
                "person": person,
                "kind": page.kind,
                "score": score,
                "comment": comment,
                "created": (previous or {}).get("created") or iso(now),
                "updated": iso(now),
                "revisions": int((previous or {}).get("revisions", 0)) + 1,
            }
            if page.kind == "session":
                session = self.store.session(obj.partition(":")[2]) or {}
                doc.update(
                    role="mentee",
                    session=session.get("uid"),
                    request=session.get("request"),
                    mentor=session.get("mentor"),
                )
            else:
                survey = self.store.survey(int(obj.partition(":")[2])) or {}
                doc.update(
                    role=survey.get("recipients", {}).get(person, {}).get("role", ""),
                    year=survey.get("year"),
                )
            self.store.save_feedback(doc)
            self.store.audit(
                "feedback recorded" if previous is None else "feedback updated",
                now=now,
                obj=obj,
                person=person,
                score=score,
                request=doc.get("request"),
            )
            return replace(
                page,
                outcome="recorded" if previous is None else "updated",
                score=score,
                comment=comment,
            )

    def _rating_subject(self, obj: str, person: str, now: datetime) -> FeedbackPage:
        kind, _, key = obj.partition(":")
        program = self.config.program.name
        if kind == "session":
            session = self.store.session(key)
            if session is None:
                return FeedbackPage("unknown", "session")
            if session["mentee"] != person:
                return FeedbackPage("not_yours", "session")
            about = self._session_context(session, person)
            return FeedbackPage(
                "ask",
                "session",
                question=f"How was your session with {about['mentor_name']}?",
                about={"when": about["when"], "tag": about["tag"]},
                followup_url=self.link("followup", person, obj, now),
            )
        if kind == "survey" and key.isdigit():
            survey = self.store.survey(int(key))
            if survey is None:
                return FeedbackPage("unknown", "survey")
            asked = survey.get("recipients", {}).get(person)
            if asked is None:
                return FeedbackPage("not_yours", "survey")
            return FeedbackPage(
                "ask",
                "survey",
                question=survey_question(asked["role"], program),
                about={"year": key},
            )
        return FeedbackPage("unknown")

    # Did it take place? (the mentor) ---------------------------------------------------------

    def attendance_page(self, uid: str, person: str, answer: str) -> FeedbackPage:
        """The yes / no-show form (GET): changes nothing."""
        session = self.store.session(uid)
        if session is None:
            return FeedbackPage("unknown", "attended")
        if session["mentor"] != person:
            return FeedbackPage("not_yours", "attended")
        about = self._session_context(session, person)
        given = (session.get("attendance") or {}).get("answer", "")
        return FeedbackPage(
            "ask",
            "attended",
            question=f"Did your session with {about['mentee_name']} take place?",
            answer=answer if answer in ATTENDANCE else given,
            about={"when": about["when"], "tag": about["tag"], "mentee": about["mentee_name"]},
        )

    def record_attendance(self, uid: str, person: str, answer: str, now: datetime) -> FeedbackPage:
        """Record (or correct) whether the session took place (POST)."""
        with self.store.transaction():
            page = self.attendance_page(uid, person, answer)
            if page.outcome != "ask":
                return page
            if answer not in ATTENDANCE:
                return replace(page, outcome="missing_score", answer="")
            session = self.store.session(uid) or {}
            previous = session.get("attendance")
            session["attendance"] = {"answer": answer, "by": person, "at": iso(now)}
            session["no_show"] = answer == "no-show"
            self.store.save_session(session)
            self.store.audit(
                "no-show" if answer == "no-show" else "session took place",
                now=now,
                request=int(session["request"]),
                uid=uid,
                mentor=person,
                mentee=session["mentee"],
                correction=previous is not None,
            )
            return replace(page, outcome="recorded" if previous is None else "updated")

    # A follow-up with another mentor (Operation Code step 11) -------------------------------

    def followup_page(self, uid: str, person: str) -> FeedbackPage:
        """The "ask for a follow-up?" form (GET): changes nothing."""
        session = self.store.session(uid)
        if session is None:
            return FeedbackPage("unknown", "followup")
        if session["mentee"] != person:
            return FeedbackPage("not_yours", "followup")
        about = self._session_context(session, person)
        existing = session.get("followup_request")
        return FeedbackPage(
            "already" if existing else "ask",
            "followup",
            question="Would you like a follow-up session with another mentor?",
            about={"when": about["when"], "tag": about["tag"], "mentor": about["mentor_name"]},
            request_tag=tag(int(existing)) if existing else "",
        )

    def request_followup(self, uid: str, person: str, note: str, now: datetime) -> FeedbackPage:
        """Open a new request for the same mentee, the first mentor left out (POST).

        The request is a copy of the original (skills, details, zone, hours), matched
        through ClaimDesk like any other; asking twice gives the same request back.
        """
        with self.store.transaction():
            page = self.followup_page(uid, person)
            if page.outcome != "ask":
                return page
            session = self.store.session(uid) or {}
            original = self.store.request(int(session["request"])) or {}
            number = self.store.new_request_number()
            details = original.get("details") or ""
            if note:
                details = f"{details}\n\nFor the follow-up: {note}".strip()
            exclude = [*original.get("exclude_mentors", []), session["mentor"]]
            request = {
                "number": number,
                "mentee": session["mentee"],
                "name": original.get("name") or "",
                "skills": list(original.get("skills") or []),
                "details": details,
                "timezone": original.get("timezone"),
                "timezone_text": original.get("timezone_text"),
                "availability": list(original.get("availability") or []),
                "status": "open",
                "created": iso(now),
                "opened": iso(now),
                "updated": iso(now),
                "subject": f"Follow-up: {original.get('subject') or tag(int(session['request']))}",
                "source": f"followup:{uid}",
                "follow_up_of": int(session["request"]),
                "exclude_mentors": sorted(set(exclude)),
            }
            self.store.save_request(request)
            session["followup_request"] = number
            self.store.save_session(session)
            self.store.audit(
                "follow-up requested",
                now=now,
                request=number,
                of=int(session["request"]),
                mentee=person,
                excluded=request["exclude_mentors"],
            )
            self.store.audit("request opened", now=now, request=number, mentee=person)
            self.postman.send(
                "followup_ack",
                to=person,
                to_name=request["name"],
                now=now,
                context={
                    "request": request_view(request),
                    "original_tag": tag(int(session["request"])),
                    "first_mentor": page.about.get("mentor", ""),
                    "invite_count": self.config.matching.invite_count,
                },
                thread=("request", number),
                request=number,
            )
            self.claims.matching.match(number, now)
            return replace(page, outcome="created", request_tag=tag(number))

    # The yearly feedback round (flow 9) ------------------------------------------------------

    def round_year(self, now: datetime) -> int:
        return now.astimezone(ZoneInfo(self.config.program.timezone)).year

    def start_round(self, now: datetime) -> int:
        """Send this year's survey to everyone it is for; nothing if it went out already."""
        year = self.round_year(now)
        if self.store.survey(year) is not None:
            return 0
        people = survey_recipients(self.store, now)
        obj = survey_obj(year)
        recipients: dict[str, dict[str, Any]] = {}
        for email, who in people.items():
            self._send_survey("survey_invite", email, who, year, obj, now)
            recipients[email] = {**who, "sent": iso(now)}
        self.store.save_survey(
            {"year": year, "started": iso(now), "reminded": None, "recipients": recipients}
        )
        self.store.audit("feedback round started", now=now, year=year, asked=len(recipients))
        log.info("feedback round %s: asked %d people", year, len(recipients))
        return len(recipients)

    def remind_round(self, now: datetime) -> int:
        """One reminder, ``survey_reminder_after`` after a round started, to those who
        have not answered. A round found much later (the daemon was down) is not chased."""
        reminded = 0
        wait = self.config.timers.survey_reminder_after
        for survey in self.store.surveys():
            if survey.get("reminded"):
                continue
            started = from_iso(survey["started"])
            if now < started + wait:
                continue
            year = int(survey["year"])
            obj = survey_obj(year)
            survey["reminded"] = iso(now)
            count = 0
            if now <= started + wait + self.config.web.link_lifetime:
                for email, who in survey["recipients"].items():
                    if self.store.feedback(obj, email) is None and not self.store.is_bounced(email):
                        self._send_survey("survey_reminder", email, who, year, obj, now)
                        who["reminded"] = iso(now)
                        count += 1
            self.store.save_survey(survey)
            self.store.audit("feedback round reminded", now=now, year=year, reminded=count)
            reminded += count
        return reminded

    def _send_survey(
        self,
        template: str,
        email: str,
        who: Mapping[str, str],
        year: int,
        obj: str,
        now: datetime,
    ) -> None:
        self.postman.send(
            template,
            to=email,
            to_name=who.get("name", ""),
            now=now,
            context={
                "name": who.get("name", ""),
                "role": who["role"],
                "year": year,
                "question": survey_question(who["role"], self.config.program.name),
                "ratings": self.rating_links(email, obj, now),
                "comment_url": self.link("rate", email, obj, now),
                "lifetime_days": self.config.web.link_lifetime.days,
            },
        )


def survey_question(role: str, program: str) -> str:
    if role == "mentor":
        return f"How has mentoring with {program} been for you this year?"
    return f"How helpful has {program} been for you this year?"


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
    attendance = [s for s in sessions if inside((s.get("attendance") or {}).get("at"))]
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
        if s["attendance"]["answer"] == "no-show"
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
        took_place=len(attendance) - len(no_shows),
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
        f"{len(results.no_shows)} no-show{'s' if len(results.no_shows) != 1 else ''}, "
        f"{len(results.followups)} follow-up{'s' if len(results.followups) != 1 else ''}",
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


# --- timer steps: fn(coordinator, now) -> int ------------------------------------------------


def after_sessions_step(coordinator: Coordinator, now: datetime) -> int:
    """Sweep step: ask about sessions that ended ``followup_after`` ago."""
    return FeedbackDesk(coordinator.claims).ask_after_sessions(now)


def survey_round_job(coordinator: Coordinator, now: datetime) -> int:
    """Yearly job on ``survey_date``: the feedback round (idempotent per year)."""
    return FeedbackDesk(coordinator.claims).start_round(now)


def survey_reminder_step(coordinator: Coordinator, now: datetime) -> int:
    """Sweep step: the one reminder of a feedback round."""
    return FeedbackDesk(coordinator.claims).remind_round(now)


register_sweep_step("after the session", after_sessions_step)
register_sweep_step("feedback round reminder", survey_reminder_step)
register_yearly("feedback round", survey_round_job)
register_report("feedback", feedback_report)
