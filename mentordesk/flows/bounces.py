"""Delivery reports (SPEC §5): an address that bounces gets nothing more.

A permanent failure marks the address undeliverable (the mail gate then refuses it) and
tells the coordinator once per address; a delayed delivery is noted only; a report we
cannot read goes to the coordinator with the message.
"""

from __future__ import annotations

from datetime import datetime

from ..config import Config
from ..inbox.parse import ParsedMessage
from ..mailer.outbox import Postman
from ..state.store import Store


class BounceDesk:
    """Reads delivery reports and the outbox's permanent failures."""

    def __init__(self, config: Config, store: Store, postman: Postman) -> None:
        self.config = config
        self.store = store
        self.postman = postman

    def handle(self, msg: ParsedMessage, now: datetime) -> None:
        report = msg.delivery_report
        if report is None or not report.failed_recipients:
            self.store.audit("bounce unreadable", now=now, message_id=msg.message_id)
            self.postman.tell_coordinator("unreadable bounce", now, msg=msg)
            return
        if not report.permanent:
            self.store.audit("delivery delayed", now=now, recipients=list(report.failed_recipients))
            return
        for address in report.failed_recipients:
            self.address_failed(
                address, report.diagnostic or msg.subject, now, original=report.original_message_id
            )

    def address_failed(
        self, address: str, reason: str, now: datetime, original: str | None = None
    ) -> None:
        """Mark an address undeliverable and tell the coordinator, once per address."""
        self.store.mark_bounced(address, reason=reason, now=now)
        self.store.audit(
            "address bounced", now=now, address=address, reason=reason, original=original
        )
        if address.lower() != self.config.program.coordinator:
            self.postman.tell_coordinator(
                "delivery failure",
                now,
                error=reason,
                address=address,
                once=f"bounce:{address.lower()}:{(self.store.address(address) or {}).get('since')}",
            )
