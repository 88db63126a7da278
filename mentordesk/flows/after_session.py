"""After the session (SPEC §3 flow 7; Operation Code step 11): how did it go?

``followup_after`` past the end of a ``held`` session whose request is ``met`` (both set
by ``SessionDesk.finish``), the mentee gets one-click ratings and a "follow-up with
another mentor" link, the mentor "did it take place?"; then the request is ``closed``
(``RequestEvent.CLOSED``). Each session is settled once — ``session["followup_asked"]``
or ``session["followup_skipped"]`` — so a restart repeats nothing:

- a request withdrawn, closed or released meanwhile: nobody is asked (no mail about a
  request that ended, SPEC §3a);
- found more than ``[timers] after_session_grace`` after its moment (the daemon was
  down): "how did it go" weeks later reads oddly, so the questions are skipped and
  written down (``skipped: late``); the request is closed all the same.

The pages behind the links are the feedback desk's (``flows/feedback.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..state.lifecycle import RequestEvent
from ..state.records import RequestStatus, SessionStatus, request_status, session_status
from ..state.store import from_iso, iso
from ..timers import skip_late, too_late
from ..views import tag
from .feedback import FeedbackDesk
from .feedback_results import session_obj
from .words import span

if TYPE_CHECKING:
    from ..core import Coordinator

__all__ = ["after_sessions_step", "ask_after_sessions"]


def after_sessions_step(coordinator: Coordinator, now: datetime) -> int:
    """Sweep step: ask about the sessions that ended ``followup_after`` ago."""
    return ask_after_sessions(FeedbackDesk(coordinator.claims), now)


def ask_after_sessions(desk: FeedbackDesk, now: datetime) -> int:
    """Ask about every held session due, once; close its request. Returns the sessions
    asked about."""
    store, lifecycle = desk.store, desk.claims.lifecycle
    timers = desk.config.timers
    ended_by = iso(now - timers.followup_after)

    def due(doc: Mapping[str, Any]) -> bool:
        # Sees every stored session uncopied: only the due ones are copied out.
        return (
            str(doc.get("end") or "") <= ended_by
            and not doc.get("followup_asked")
            and not doc.get("followup_skipped")
            and session_status(doc) is SessionStatus.HELD
        )

    asked = 0
    # Only held sessions not yet settled are looked at (by index): not the whole history.
    for session in (s for s in store.sessions_awaiting_followup() if due(s)):
        number = int(session["request"])
        request = store.request(number)
        status = request_status(request) if request is not None else None
        moment = from_iso(session["end"]) + timers.followup_after
        if status is not RequestStatus.MET:
            session["followup_skipped"] = iso(now)
            store.save_session(session)
            store.audit(
                "after-session not asked",
                now=now,
                request=number,
                uid=session["uid"],
                why=f"the request is {status.value if status else 'gone'}",
            )
            continue
        if too_late(moment, now, timers.after_session_grace):
            session["followup_skipped"] = iso(now)
            store.save_session(session)
            skip_late(
                store,
                now,
                step="after-session questions",
                what=tag(number),
                due=moment,
                rule="the after-session questions go out late only within "
                f"{span(timers.after_session_grace)}",
                request=number,
                uid=session["uid"],
            )
            lifecycle.advance(number, RequestEvent.CLOSED, now)
            continue
        session["followup_asked"] = iso(now)
        store.save_session(session)
        # The mail gate leaves out an address known to bounce (the coordinator knows).
        _ask_mentee(desk, session, now)
        _ask_mentor(desk, session, now)
        lifecycle.advance(number, RequestEvent.CLOSED, now)
        store.audit("after-session asked", now=now, request=number, uid=session["uid"])
        asked += 1
    return asked


def _ask_mentee(desk: FeedbackDesk, session: Mapping[str, Any], now: datetime) -> None:
    mentee = session["mentee"]
    about = desk.session_context(session, mentee)
    obj = session_obj(session["uid"])
    desk.postman.send(
        "after_session_mentee",
        to=mentee,
        to_name=about["request"]["name"],
        now=now,
        context={
            **about,
            "ratings": desk.rating_links(mentee, obj, now),
            "comment_url": desk.link("rate", mentee, obj, now),
            "followup_url": desk.link("followup", mentee, obj, now),
        },
        thread=("request", int(session["request"])),
        request=int(session["request"]),
    )


def _ask_mentor(desk: FeedbackDesk, session: Mapping[str, Any], now: datetime) -> None:
    mentor = session["mentor"]
    about = desk.session_context(session, mentor)
    obj = session_obj(session["uid"])
    desk.postman.send(
        "after_session_mentor",
        to=mentor,
        to_name=about["mentor_name"],
        now=now,
        context={
            **about,
            "yes_url": desk.link("attended", mentor, obj, now, "answer=yes"),
            "no_show_url": desk.link("attended", mentor, obj, now, "answer=no-show"),
        },
        thread=("request-mentor", {"number": int(session["request"]), "mentor": mentor}),
        request=int(session["request"]),
    )
