"""The feedback pages (SPEC §3 flows 7 and 9): ratings, "did it take place?", follow-ups.

Both the after-session questions (``flows/after_session.py``) and the yearly feedback
round (``flows/survey.py``) ask people for a rating with one click. The links in the
emails lead to a page, never straight to an action: mail scanners and link previews open
every link in a message, so a link that recorded on GET would record all five ratings at
once. A click opens a page with that rating already chosen, an optional comment box and
one "Send" button; only that button's POST records anything, and a second POST replaces
the first answer instead of adding another.

Every link carries a signed token (``tokens.py``) bound to one person and one object,
and the object is checked too: a genuine token for someone who is not that session's
mentee (or was not asked in that round) is refused as "not yours".

    purpose    object            who may use it, for what
    rate       session:<uid>     the session's mentee: how did it go (1–5, a comment)
    rate       survey:<year>     someone asked in that year's round (1–5, a comment)
    followup   session:<uid>     the session's mentee: a follow-up with another mentor
    attended   session:<uid>     the session's mentor: did it take place (yes / no-show)

The mentor's answer to "did it take place?" is the session's status: ``held`` or
``no-show``; a no-show closes the request (the coordinator sees it in the digest).
The results (pure) are in ``flows/feedback_results.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ..state.lifecycle import RequestEvent
from ..state.records import RequestStatus, SessionStatus, session_status
from ..state.store import Store, from_iso, iso
from ..views import request_view, tag
from .claims import ClaimDesk
from .feedback_results import RATINGS
from .sessions import when_text

__all__ = [
    "ATTENDANCE",
    "FeedbackDesk",
    "FeedbackPage",
    "clean_comment",
    "parse_score",
    "survey_question",
]

log = logging.getLogger(__name__)

MAX_COMMENT_CHARS = 2000
# The mentor's two answers (the form's values, also in links already sent) and labels.
ATTENDANCE = {"yes": "We met", "no-show": "They did not come"}
# What each answer makes of the session.
ATTENDED_STATUS = {"yes": SessionStatus.HELD, "no-show": SessionStatus.NO_SHOW}


def parse_score(unsafe: str | None) -> int | None:
    """'4' → 4; anything that is not a whole number 1–5 → None."""
    text = (unsafe or "").strip()
    return int(text) if text in {"1", "2", "3", "4", "5"} else None


def clean_comment(unsafe: str | None) -> str:
    """What a person typed in the comment box: trimmed, at most MAX_COMMENT_CHARS."""
    text = (unsafe or "").replace("\r\n", "\n").replace("\x00", "").strip()
    return text[:MAX_COMMENT_CHARS]


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

    def session_context(self, session: Mapping[str, Any], person: str) -> dict[str, Any]:
        """What the emails and pages say about ``session`` to ``person`` (their zone)."""
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
            about = self.session_context(session, person)
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
        """The yes / no-show form (GET): changes nothing. Only for a session whose time
        has passed (held, or reported as a no-show)."""
        session = self.store.session(uid)
        if session is None or session_status(session) not in ATTENDED_STATUS.values():
            return FeedbackPage("unknown", "attended")
        if session["mentor"] != person:
            return FeedbackPage("not_yours", "attended")
        about = self.session_context(session, person)
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
            status = ATTENDED_STATUS[answer]
            session["attendance"] = {"answer": answer, "by": person, "at": iso(now)}
            session["status"] = status.value
            session["updated"] = iso(now)
            self.store.save_session(session)
            number = int(session["request"])
            if status is SessionStatus.NO_SHOW:
                # Nothing more about this session: the request is closed (a re-pairing
                # is the mentee's follow-up, a new request).
                self.claims.lifecycle.advance(number, RequestEvent.CLOSED, now)
            self.store.audit(
                "no-show" if status is SessionStatus.NO_SHOW else "session took place",
                now=now,
                request=number,
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
        about = self.session_context(session, person)
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
                "status": RequestStatus.OPEN.value,
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


def survey_question(role: str, program: str) -> str:
    if role == "mentor":
        return f"How has mentoring with {program} been for you this year?"
    return f"How helpful has {program} been for you this year?"
