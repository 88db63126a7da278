"""Sweep steps for sessions (SPEC §3 flow 5): the reminder before, and "held" after.

Both are derived from the stored sessions on every sweep and record what they did on
the session itself (``reminded``, status ``held``), so a restart repeats nothing. The
desk's ``remind`` sends a reminder only before the session starts; a reminder whose
time passed while the daemon was down is not sent late — it is written down as skipped
(``skipped: late``, and ``session["reminder_skipped"]`` holds the start it was for), so
the digest says so.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ..state.records import RequestStatus, SessionStatus, request_status, session_status
from ..state.store import from_iso, iso
from ..timers import skip_late
from ..views import tag

if TYPE_CHECKING:
    from ..core import Coordinator

__all__ = ["session_reminders_step", "sessions_done_step"]


def session_reminders_step(coordinator: Coordinator, now: datetime) -> int:
    """Remind both people ``[sessions] reminder_before`` a session, once; write down the
    reminders that can no longer go out. Returns the sessions reminded."""
    reminded = coordinator.sessions.remind(now)
    _note_missed_reminders(coordinator, now)
    return reminded


def sessions_done_step(coordinator: Coordinator, now: datetime) -> int:
    """Sessions whose end has passed are held, and their request met (the after-session
    step reads them)."""
    return coordinator.sessions.finish(now)


def _note_missed_reminders(coordinator: Coordinator, now: datetime) -> None:
    """A live session that has started without its reminder: skipped, written down once."""
    store = coordinator.store
    before = coordinator.config.sessions.reminder_before
    for session in store.live_sessions():
        start = from_iso(session["start"])
        if session.get("reminded") or start > now:
            continue
        if session_status(session) is SessionStatus.DECLINED:
            continue  # its time was turned down: nobody is to be reminded of it
        if session.get("reminder_skipped") == session["start"]:
            continue
        number = int(session["request"])
        request = store.request(number) or {}
        if request_status(request) is not RequestStatus.BOOKED:
            continue  # no reminder was ever due: the request is not booked
        session["reminder_skipped"] = session["start"]
        session["updated"] = iso(now)
        store.save_session(session)
        skip_late(
            store,
            now,
            step="session reminder",
            what=tag(number),
            due=start - before,
            rule="a reminder goes only before the session starts",
            request=number,
            uid=session["uid"],
        )
