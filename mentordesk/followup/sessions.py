"""Sweep steps for sessions: the reminder before, and "done" after (SPEC §3 flow 5).

Both are derived from the stored sessions on every sweep and record what they did on
the session itself (``reminded``, status ``done``), so a restart repeats nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ..timers import register_sweep_step

if TYPE_CHECKING:
    from ..core import Coordinator


def session_reminders_step(coordinator: Coordinator, now: datetime) -> int:
    """Remind both people ``[sessions] reminder_before`` a session, once."""
    return coordinator.sessions.remind(now)


def sessions_done_step(coordinator: Coordinator, now: datetime) -> int:
    """Sessions whose end has passed become "done" (the follow-up step reads them)."""
    return coordinator.sessions.finish(now)


register_sweep_step("session reminders", session_reminders_step)
register_sweep_step("sessions done", sessions_done_step)
