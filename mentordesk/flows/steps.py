"""Everything the daemon does because time passed, in the order a sweep does it.

Each line names a step and the flow it belongs to; ``timers.load_steps`` imports this
module, which registers them with the daemon's registry. The order matters where one
step leaves work for the next in the same sweep: a session that ended is ``held``
before it is asked about; a term that ended hands back its requests before the ladder
and the expiry look at them; the daily and yearly jobs run after every sweep step, so
the digest reports what this sweep did (and skipped).

How late each timed step may still happen (SPEC §3a, Time; anything later is skipped,
written down as ``skipped: late`` and listed in the next digest):

    claim effects            a claim's emails and booking left by a crash: always happen
    session reminders        only before the session starts
    after the session        [timers] after_session_grace after its moment (7 days)
    terms                    the renewal reminder only before the term ends; the end
                             itself (mentor_left) always happens
    expiry                   a change of state, not a message: always happens
    ladder                   one step at most (the most recent due), within
                             [timers] ladder_grace (2 days); older rungs are skipped
    pairings                 a check-in within [timers] after_session_grace; the
                             term's choice once per term; the term's end always happens
    feedback round reminder  [timers] survey_grace (14 days)
    feedback round (yearly)  [timers] survey_grace (14 days)
    archive                  history older than [state] archive_after: whenever it runs
    digest (daily)           on its own day only
"""

from __future__ import annotations

from ..timers import REGISTRY, Registry
from .after_session import after_sessions_step
from .archiving import archive_step
from .claim_effects import claim_effects_step
from .digest_mail import send_digest
from .expiry import expiry_step
from .ladder import ladder_step
from .pairing_steps import pairings_step
from .session_steps import session_reminders_step, sessions_done_step
from .survey import survey_reminder_step, survey_round_job
from .terms import terms_step

__all__ = ["register_steps"]


def register_steps(registry: Registry) -> Registry:
    """Register every step of the flows with ``registry``, in sweep order."""
    registry.register_sweep_step("claim effects", claim_effects_step)
    registry.register_sweep_step("session reminders", session_reminders_step)
    registry.register_sweep_step("sessions done", sessions_done_step)
    registry.register_sweep_step("after the session", after_sessions_step)
    registry.register_sweep_step("terms", terms_step)
    registry.register_sweep_step("pairings", pairings_step)
    registry.register_sweep_step("expiry", expiry_step)
    registry.register_sweep_step("ladder", ladder_step)
    registry.register_sweep_step("feedback round reminder", survey_reminder_step)
    registry.register_sweep_step("archive", archive_step)
    registry.register_daily("digest", send_digest)
    registry.register_yearly("feedback round", survey_round_job)
    return registry


register_steps(REGISTRY)
