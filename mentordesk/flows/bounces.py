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

Anyone can write a report naming anyone, so a failure or complaint marks only the
addresses it proves to be about (``vouched_for``): it returns an email we sent to that
address (``original_message_id`` is in our outbox with the address among its
recipients), or, with ``[inbox] require_authentication`` on, our receiving server vouches
for a sender in the address's own domain. The coordinator hears of the other addresses,
once per sender and day, and they are not marked.

A mark is lifted when the address answers one of our emails (``answered``), and a mark
our own relay set when the relay accepts mail for the address again (``delivered``).
Mail the relay keeps refusing for a while (4xx, or unreachable) marks nobody: it is held
and retried, and the coordinator hears once a day that mail is held up (``held``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ..config import Config
from ..inbox.delivery import DeliveryReport
from ..inbox.parse import ParsedMessage
from ..mailer.outbox import Postman
from ..state.store import Store

__all__ = ["BounceDecision", "BounceDesk", "Outcome", "decide", "vouched_for"]


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


def vouched_for(
    addresses: Sequence[str], *, sent_to: Collection[str], vouching_domain: str
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split the ``addresses`` a report names into those it may mark and the others.

    ``sent_to``: the recipients of our email the report returns (none when it returns
    none of ours); ``vouching_domain``: the report's sender domain when our receiving
    server authenticated it, else "". Pure.
    """
    ours = {address.lower() for address in sent_to}
    counted: list[str] = []
    doubtful: list[str] = []
    for address in addresses:
        proven = address.lower() in ours or _speaks_for(vouching_domain, address)
        (counted if proven else doubtful).append(address.lower())
    return tuple(counted), tuple(doubtful)


def _speaks_for(domain: str, address: str) -> bool:
    """Is ``domain`` the address's own domain, or one of its parent or child domains (its
    mail servers, RFC 7489 §3.1's relaxed alignment without the public suffix list)?"""
    own = address.rpartition("@")[2].lower().strip(".")
    domain = domain.lower().strip(".")
    return bool(domain and own) and (
        own == domain or own.endswith("." + domain) or domain.endswith("." + own)
    )


class BounceDesk:
    """Reads delivery and feedback reports, and the outbox's permanent failures."""

    def __init__(self, config: Config, store: Store, postman: Postman) -> None:
        self.config = config
        self.store = store
        self.postman = postman

    def handle(self, msg: ParsedMessage, now: datetime, *, vouching_domain: str = "") -> None:
        """Apply what the report ``msg`` carries (classified ``Kind.BOUNCE``).

        ``vouching_domain``: the report's sender domain if our receiving server
        authenticated it (``[inbox] require_authentication``), else "".
        """
        decision = decide(msg.delivery_report, self.config.program.address)
        if decision.outcome is Outcome.DELAYED:
            report = msg.delivery_report
            recipients = list(report.failed_recipients) if report else []
            self.store.audit("delivery delayed", now=now, recipients=recipients)
            return
        if decision.outcome in (Outcome.FAILED, Outcome.COMPLAINT) and decision.addresses:
            counted, doubtful = vouched_for(
                decision.addresses,
                sent_to=self.store.sent_to(decision.original),
                vouching_domain=vouching_domain,
            )
            for address in counted:
                if decision.outcome is Outcome.FAILED:
                    self.address_failed(address, decision.reason, now, decision.original)
                else:
                    self.address_complained(address, decision.reason, now, decision.original)
            if doubtful:
                self._tell_unproven(msg, decision, doubtful, now)
            return
        self._tell_once_a_day(msg, decision, now)

    def address_failed(
        self,
        address: str,
        reason: str,
        now: datetime,
        original: str | None = None,
        *,
        origin: str = "report",
    ) -> None:
        """Mark an address undeliverable and tell the coordinator, once per address.

        ``origin``: "report" (a bounce that came back by mail) or "relay" (our own SMTP
        server refused the address for good).
        """
        self._mark(address, reason, now, original, event="address bounced", origin=origin)
        self._tell_about(address, Outcome.FAILED, reason, now)

    def address_complained(
        self, address: str, reason: str, now: datetime, original: str | None = None
    ) -> None:
        """The person at ``address`` reported our mail as abuse: write to them no more."""
        self._mark(address, reason, now, original, event="address complained")
        self._tell_about(address, Outcome.COMPLAINT, reason, now)

    def answered(self, msg: ParsedMessage, now: datetime) -> None:
        """``msg`` (from a person, authenticated where that is required) answers one of
        our emails to its sender: whatever mark the sender's address has is lifted."""
        sender = msg.sender.lower()
        if not sender or not self.store.is_bounced(sender):
            return
        for message_id in (*msg.in_reply_to, *msg.references):
            if sender in self.store.sent_to(message_id):
                self._clear(sender, now, why=f"answered our email {message_id}")
                return

    def delivered(self, addresses: Sequence[str], now: datetime) -> None:
        """Our relay accepted mail for ``addresses``: a mark the relay set is lifted.

        A mark from a report stays: the relay takes mail for any address, and the report
        came from the recipient's side.
        """
        for address in addresses:
            doc = self.store.address(address)
            if doc and doc.get("bounced") and doc.get("origin") == "relay":
                self._clear(address, now, why="the relay accepted mail for it")

    def held(self, recipients: Sequence[str], error: str, now: datetime) -> None:
        """An email has met ``[smtp] max_attempts`` temporary failures: it is kept and
        retried, nobody is marked, and the coordinator hears of it once a day."""
        every = self.config.smtp.max_retry_after
        self.store.audit("mail held up", now=now, recipients=list(recipients), error=error)
        self.postman.tell_coordinator(
            "mail held up",
            now,
            error=(
                f"the mail server keeps answering “{error}”. Email to "
                f"{', '.join(recipients)} (and maybe others) is held and tried again every "
                f"{every}; nobody is marked undeliverable for it"
            ),
            once=f"held:{now.date().isoformat()}",
        )

    def _mark(
        self,
        address: str,
        reason: str,
        now: datetime,
        original: str | None,
        *,
        event: str,
        origin: str = "report",
    ) -> None:
        self.store.mark_bounced(address, reason=reason, now=now, origin=origin)
        self.store.audit(
            event, now=now, address=address, reason=reason, original=original, origin=origin
        )

    def _clear(self, address: str, now: datetime, *, why: str) -> None:
        if self.store.clear_bounce(address):
            self.store.audit("address cleared", now=now, address=address.lower(), reason=why)

    def _tell_unproven(
        self, msg: ParsedMessage, decision: BounceDecision, addresses: Sequence[str], now: datetime
    ) -> None:
        """A report naming addresses it does not prove to be about: nobody is marked, and
        the coordinator reads it, once per sender and day (a forger may send many)."""
        sender = msg.sender or msg.headers.get("from", "") or "(no sender)"
        self.store.audit(
            f"report {decision.outcome.value} not proven",
            now=now,
            message_id=msg.message_id,
            sender=sender,
            addresses=list(addresses),
            original=decision.original,
        )
        self.postman.tell_coordinator(
            "a delivery report about mail we did not send",
            now,
            msg=msg,
            error=(
                f"it says mail to {', '.join(addresses)} failed, but it returns no email "
                "the program sent to them, so nobody was marked. If it is genuine, tell "
                "the person; it may also be forged"
            ),
            once=f"report-unproven:{sender.lower()}:{now.date().isoformat()}",
        )

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
