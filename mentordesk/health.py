"""How the daemon is doing, for ``GET /healthz``.

Two kinds of knowledge meet here:

- what the long-running tasks say: ``trouble(name, what)`` while one cannot do its
  work, ``fine(name)`` once it can again (which also records when it last worked);
- what the clock says, once ``expect(HealthRules)`` gave the limits: the mailbox must
  have been reached, and the timers' sweep must have run, within their limits; the
  outbox's oldest due email must be younger than its limit; and an SMTP failure counts
  only while emails wait (with nothing to send, a server that is down harms nobody).

``report`` gives 200 ``{"status": "ok"}`` when all holds, else 503 with one reason per
failing part, so a monitor notices a reader that stopped reading while the pages answer.
The limits derive from the config's own intervals (``HealthRules.from_config``). Used
from the event loop only; the outbox facts come from the store (``OutboxFacts``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Config

# Parts whose last success is watched, and the part whose trouble counts only while
# emails wait.
INBOX, SWEEP, SMTP = "inbox", "sweep", "smtp"
# The longest an IMAP connect plus one slow read may take (inbox/imap.py timeouts), as
# slack on top of the polling interval.
_MAILBOX_SLACK = timedelta(seconds=75)


@dataclass(frozen=True)
class HealthRules:
    """How long each part may go without working before /healthz says so."""

    mailbox_quiet: timedelta  # since the mailbox was last read
    sweep_quiet: timedelta  # since the timers' sweep last ran
    outbox_age: timedelta  # age of the oldest email due and not yet sent

    @classmethod
    def from_config(cls, config: Config) -> HealthRules:
        # A reader waits at most poll_interval between rounds (IDLE or not); a sweep is
        # due every sweep_interval; an email that keeps failing is retried at least
        # every max_retry_after. Each limit allows two missed turns and some slack.
        poll = config.inbox.poll_interval
        sweep = config.timers.sweep_interval
        retry = config.smtp.max_retry_after
        return cls(
            mailbox_quiet=2 * poll + _MAILBOX_SLACK,
            sweep_quiet=3 * sweep + timedelta(minutes=1),
            outbox_age=2 * retry + 4 * config.smtp.timeout + timedelta(minutes=5),
        )


@dataclass(frozen=True)
class OutboxFacts:
    """What the store says about the emails waiting (``Store.outbox_facts``)."""

    pending: int  # waiting to be sent, due or not
    due: int  # due now
    oldest_due_age: timedelta  # zero when nothing is due


class Health:
    """What each long-running task of the daemon last said about itself."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._trouble: dict[str, str] = {}
        self._worked: dict[str, float] = {}
        self._rules: HealthRules | None = None
        self._since = monotonic()

    def expect(self, rules: HealthRules) -> None:
        """Judge the parts' last successes by ``rules`` from now on (the daemon's start)."""
        self._rules = rules
        self._since = self._monotonic()

    def trouble(self, task: str, what: str) -> None:
        """``task`` cannot do its work now; ``what`` says why (no secrets: it is shown)."""
        self._trouble[task] = what

    def fine(self, task: str) -> None:
        """``task`` just did its work."""
        self._trouble.pop(task, None)
        self._worked[task] = self._monotonic()

    def troubles(self) -> dict[str, str]:
        return dict(self._trouble)

    def reasons(self, outbox: OutboxFacts | None = None) -> dict[str, str]:
        """Part → why it is not healthy; empty when all is well."""
        reasons = {k: v for k, v in self._trouble.items() if k != SMTP}
        if SMTP in self._trouble and (outbox is None or outbox.due):
            reasons[SMTP] = self._trouble[SMTP]
        rules = self._rules
        if rules is None:
            return reasons
        for part, limit, doing in (
            (INBOX, rules.mailbox_quiet, "the mailbox was not reached"),
            (SWEEP, rules.sweep_quiet, "the timers' sweep has not run"),
        ):
            quiet = self._monotonic() - self._worked.get(part, self._since)
            if quiet > limit.total_seconds() and part not in reasons:
                reasons[part] = f"{doing} for {quiet:.0f}s (limit {limit.total_seconds():.0f}s)"
        if outbox is not None and outbox.oldest_due_age > rules.outbox_age:
            reasons["outbox"] = (
                f"{outbox.due} emails due, the oldest for "
                f"{outbox.oldest_due_age.total_seconds():.0f}s "
                f"(limit {rules.outbox_age.total_seconds():.0f}s)"
            )
        return reasons

    def response(self, *, store_open: bool, outbox: OutboxFacts | None = None) -> dict[str, Any]:
        """The arguments of the /healthz JSON response: its data and its HTTP status."""
        if not store_open:
            return {"data": {"status": "starting"}, "status": 503}
        reasons = self.reasons(outbox)
        if reasons:
            return {"data": {"status": "degraded", **reasons}, "status": 503}
        return {"data": {"status": "ok"}, "status": 200}
