"""Delivery and feedback reports (SPEC §5): an address that bounces or complains gets
nothing more, and the coordinator hears of each address once.

``decide`` reads one report into one decision; ``BounceDesk.handle`` applies it:

    failed        each address is marked undeliverable (the mail gate then refuses it);
                  the coordinator hears once per address
    complaint     an abuse report (ARF, RFC 5965): the complaining address is marked the
                  same way, with a reason saying it complained; told once per address
    delayed       the server is still trying: noted in the audit log, nothing else
    unreadable    a bounce naming no address we can read: the coordinator gets the
                  message, once per sender and day however many such bounces arrive
    feedback      a feedback report that is no complaint (a DMARC failure report, RFC 6591):
                  the coordinator hears once per sender and day; nobody is marked

Whether a report must also match a Message-ID we sent to that address is not decided
here yet; ``DeliveryReport.original_message_id`` carries it for that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ..config import Config
from ..inbox.delivery import DeliveryReport
from ..inbox.parse import ParsedMessage
from ..mailer.outbox import Postman
from ..state.store import Store

__all__ = ["BounceDecision", "BounceDesk", "Outcome", "decide"]


class Outcome(StrEnum):
    """What a report means for the addresses it names."""

    FAILED = "failed"
    COMPLAINT = "complaint"
    DELAYED = "delayed"
    UNREADABLE = "unreadable"
    FEEDBACK = "feedback"


@dataclass(frozen=True)
class BounceDecision:
    """One report, read: whom to mark, why, and what the coordinator should hear."""

    outcome: Outcome
    addresses: tuple[str, ...]  # to mark undeliverable (FAILED, COMPLAINT); else ()
    reason: str  # stored with each mark and shown to the coordinator
    original: str | None  # Message-ID of our message the report returns


def decide(report: DeliveryReport | None, program_address: str) -> BounceDecision:
    """What ``report`` means. Pure: no store, no clock."""
    if report is None:
        return BounceDecision(Outcome.UNREADABLE, (), "a bounce mentordesk cannot read", None)
    # The program's own address is never marked: a report cannot stop our own inbox.
    named = tuple(a for a in report.failed_recipients if a != program_address.lower())
    original = report.original_message_id
    if report.feedback_type is not None:
        if report.complaint:
            # An empty list (a redacted report) still tells the coordinator, as unreadable.
            return BounceDecision(
                Outcome.COMPLAINT, named, f"complaint: {report.diagnostic}", original
            )
        return BounceDecision(Outcome.FEEDBACK, (), report.diagnostic, original)
    if not report.permanent:
        return BounceDecision(Outcome.DELAYED, (), report.diagnostic, original)
    if not named:
        return BounceDecision(Outcome.UNREADABLE, (), report.diagnostic, original)
    return BounceDecision(Outcome.FAILED, named, report.diagnostic, original)


class BounceDesk:
    """Reads delivery and feedback reports, and the outbox's permanent failures."""

    def __init__(self, config: Config, store: Store, postman: Postman) -> None:
        self.config = config
        self.store = store
        self.postman = postman

    def handle(self, msg: ParsedMessage, now: datetime) -> None:
        """Apply what the report ``msg`` carries (classified ``Kind.BOUNCE``)."""
        decision = decide(msg.delivery_report, self.config.program.address)
        if decision.outcome is Outcome.DELAYED:
            report = msg.delivery_report
            recipients = list(report.failed_recipients) if report else []
            self.store.audit("delivery delayed", now=now, recipients=recipients)
            return
        if decision.outcome is Outcome.COMPLAINT and decision.addresses:
            for address in decision.addresses:
                self.address_complained(address, decision.reason, now, decision.original)
            return
        if decision.outcome is Outcome.FAILED:
            for address in decision.addresses:
                self.address_failed(address, decision.reason, now, original=decision.original)
            return
        self._tell_once_a_day(msg, decision, now)

    def address_failed(
        self, address: str, reason: str, now: datetime, original: str | None = None
    ) -> None:
        """Mark an address undeliverable and tell the coordinator, once per address."""
        self._mark(address, reason, now, original, event="address bounced")
        self._tell_about(address, Outcome.FAILED, reason, now)

    def address_complained(
        self, address: str, reason: str, now: datetime, original: str | None = None
    ) -> None:
        """The person at ``address`` reported our mail as abuse: write to them no more."""
        self._mark(address, reason, now, original, event="address complained")
        self._tell_about(address, Outcome.COMPLAINT, reason, now)

    def _mark(
        self, address: str, reason: str, now: datetime, original: str | None, *, event: str
    ) -> None:
        self.store.mark_bounced(address, reason=reason, now=now)
        self.store.audit(event, now=now, address=address, reason=reason, original=original)

    def _tell_about(self, address: str, outcome: Outcome, reason: str, now: datetime) -> None:
        if address.lower() == self.config.program.coordinator:
            return
        # Keyed on when the mark was set: cleared and marked again is news again.
        since = (self.store.address(address) or {}).get("since")
        self.postman.tell_coordinator(
            _NOTICE[outcome],
            now,
            error=reason,
            address=address,
            once=f"{_ONCE_KEY[outcome]}:{address.lower()}:{since}",
            template="coordinator_report",
            context={"outcome": outcome.value},
        )

    def _tell_once_a_day(self, msg: ParsedMessage, decision: BounceDecision, now: datetime) -> None:
        """A report naming nobody we can mark: the coordinator reads it, once per sender
        and day (a server that sends a hundred such bounces sends one notice)."""
        sender = msg.sender or msg.headers.get("from", "") or "(no sender)"
        self.store.audit(
            f"report {decision.outcome.value}",
            now=now,
            message_id=msg.message_id,
            sender=sender,
            reason=decision.reason,
        )
        day = now.date().isoformat()
        self.postman.tell_coordinator(
            _NOTICE[decision.outcome],
            now,
            msg=msg,
            error=decision.reason,
            once=f"report-{decision.outcome.value}:{sender.lower()}:{day}",
            template="coordinator_report",
            context={"outcome": decision.outcome.value},
        )


# The coordinator's notice, per outcome (its subject line says this).
_NOTICE = {
    Outcome.FAILED: "delivery failure",
    Outcome.COMPLAINT: "complaint",
    Outcome.UNREADABLE: "unreadable bounce",
    Outcome.FEEDBACK: "feedback report",
}
_ONCE_KEY = {Outcome.FAILED: "bounce", Outcome.COMPLAINT: "complaint"}
