"""The router: what to do with one inbound email (SPEC §4: subject, then thread, then
content decide).

``Coordinator.handle`` runs on the store's writer thread. It parses and classifies the
message (pure functions), decides, and applies every effect — store changes, outgoing
emails, audit events, the processed-message record — in ONE store transaction, so a
crash leaves either all of them or none (SPEC §5). The caller moves the message out of
the inbox only after ``handle`` returned.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..config import Config
from ..inbox.authres import sender_authenticated
from ..inbox.classify import Classification, Kind, classify, request_tag
from ..inbox.fields import parse_form
from ..inbox.parse import ParsedMessage, parse_message
from ..inbox.source import RawMessage
from ..mailer.compose import Renderer
from ..state.store import Store
from .desks import Desks, build_desks
from .enrollment import MENTOR_COMMANDS

log = logging.getLogger(__name__)

SILENT_KINDS = {Kind.AUTO_REPLY, Kind.LIST, Kind.OWN, Kind.NOREPLY}


@dataclass(frozen=True)
class Outcome:
    """What became of one inbound message; ``settled`` means: move it out of the inbox."""

    status: str  # done | duplicate | failing | quarantined
    kind: str = ""
    request: int | None = None

    @property
    def settled(self) -> bool:
        return self.status in ("done", "duplicate")


# --- the coordinator ------------------------------------------------------------------


class Coordinator:
    """Decides and applies the effects of inbound mail. Runs on the writer thread."""

    def __init__(
        self, config: Config, store: Store, renderer: Renderer, desks: Desks | None = None
    ) -> None:
        self.config = config
        self.store = store
        self.desks = desks or build_desks(config, store, renderer)
        self.postman = self.desks.postman
        self.links = self.desks.links
        self.claims = self.desks.claims
        self.matching = self.desks.matching
        self.sessions = self.desks.sessions
        self.office_hours = self.desks.office_hours
        self.lifecycle = self.desks.lifecycle
        self.enrollment = self.desks.enrollment
        self.requests = self.desks.requests
        self.bounces = self.desks.bounces

    # The entry point ----------------------------------------------------------------

    def handle(self, raw: RawMessage, now: datetime) -> Outcome:
        """Apply one message's effects exactly once; never raises for bad input."""
        msg = parse_message(raw.data, max_body_chars=self.config.inbox.max_message_bytes)
        if self.store.is_processed(msg.message_id):
            return Outcome("duplicate")
        try:
            with self.store.transaction():
                kind, request = self._dispatch(msg, now)
                self.store.record_message(
                    msg.message_id, key=raw.key, kind=kind, now=now, request=request
                )
                if raw.uid is not None:
                    self.store.set_meta(
                        "imap", {"uidvalidity": raw.uidvalidity, "last_uid": raw.uid}
                    )
            return Outcome("done", kind, request)
        except Exception as exc:
            log.exception("message %s from %s failed", msg.message_id, msg.sender or "?")
            return self._failed(raw, msg, exc, now)

    def _failed(
        self, raw: RawMessage, msg: ParsedMessage, exc: Exception, now: datetime
    ) -> Outcome:
        error = f"{type(exc).__name__}: {exc}"
        with self.store.transaction():
            record = self.store.record_message(
                msg.message_id, key=raw.key, kind="error", now=now, status="failing", error=error
            )
            if record["attempts"] < self.config.inbox.max_attempts:
                return Outcome("failing")
            self.store.record_message(
                msg.message_id,
                key=raw.key,
                kind="error",
                now=now,
                status="quarantined",
                error=error,
            )
            self.store.audit("quarantined", now=now, message_id=msg.message_id, error=error)
            self.postman.tell_coordinator(
                "quarantined",
                now,
                msg=msg,
                error=error,
                attachment=raw.data,
            )
        return Outcome("quarantined")

    def _dispatch(self, msg: ParsedMessage, now: datetime) -> tuple[str, int | None]:
        found = classify(msg, self.config.program.address)
        kind = found.kind
        if (
            msg.calendar_parts
            and kind not in (Kind.BOUNCE, Kind.OWN)
            and self._authenticated(msg)
            and self.sessions.handle_calendar(msg, now)
        ):
            # An answer from a calendar client (RFC 6047). Such answers may carry
            # auto-reply markers, so they are read before the loop guards; they are
            # never answered by email.
            return "calendar", None
        if kind in SILENT_KINDS and (msg.sender or kind is not Kind.NOREPLY):
            # RFC 3834 §2: never answer automatic mail; just remember we saw it. Mail
            # with no readable From at all is no noreply sender: a person sees it below.
            self.store.audit(
                "ignored",
                now=now,
                kind=kind.value,
                sender=msg.sender,
                message_id=msg.message_id,
                reason=found.reason,
            )
            return kind.value, None
        if kind is Kind.BOUNCE:
            self.bounces.handle(msg, now)
            return kind.value, None
        if not msg.sender:
            self.postman.tell_coordinator("unclassified", now, msg=msg, error="no sender address")
            return "unknown", None
        if not self._authenticated(msg):
            # Anyone can write any From address: with the check on, a person decides.
            self.store.audit(
                "unauthenticated", now=now, sender=msg.sender, message_id=msg.message_id
            )
            self.postman.tell_coordinator("sender not authenticated", now, msg=msg)
            return "unauthenticated", None
        if kind is Kind.REPLY or (
            kind in (Kind.ENROLLMENT, Kind.REQUEST) and self._answers_our_question(msg)
        ):
            # "Re: enroll" answering our question completes that enrollment; it is not
            # a fresh one (nor is a tag-less "Re: mentor request" a second request).
            return self._reply(msg, found, now)
        if kind is Kind.ENROLLMENT:
            self.enrollment.enroll(
                msg, parse_form(msg.new_text, self.config.matching.synonyms), now
            )
            return kind.value, None
        if kind is Kind.REQUEST:
            return kind.value, self.requests.receive(msg, now)
        if kind is Kind.COMMAND:
            return kind.value, self._command(msg, found, now)
        if kind is Kind.OFFICE_HOURS:
            self.office_hours.answer(msg, now, leave=found.command == "leave")
            return kind.value, None
        return self._unknown(msg, now)

    def _authenticated(self, msg: ParsedMessage) -> bool:
        inbox = self.config.inbox
        if not inbox.require_authentication:
            return True
        domain = msg.sender.rpartition("@")[2]
        results = msg.headers.get("authentication-results", "")
        return sender_authenticated(results, domain, inbox.authserv_id)

    def _answers_our_question(self, msg: ParsedMessage) -> bool:
        thread = self.store.thread([*msg.references, *msg.in_reply_to])
        if thread is None:
            return False
        if thread["kind"] == "enrollment":
            return bool(thread["ref"].get("email") == msg.sender)
        if thread["kind"] == "request":
            request = self.store.request(int(thread["ref"]))
            return bool(request and request["mentee"] == msg.sender)
        return False

    # Replies in a known thread ----------------------------------------------------------

    def _reply(
        self, msg: ParsedMessage, found: Classification, now: datetime
    ) -> tuple[str, int | None]:
        thread = self.store.thread([*msg.references, *msg.in_reply_to])
        number = found.tag
        if thread is not None and thread["kind"] == "enrollment":
            fields = parse_form(msg.new_text, self.config.matching.synonyms)
            if thread["ref"].get("email") == msg.sender:
                self.enrollment.enroll(msg, fields, now, pending=thread["ref"])
                return Kind.ENROLLMENT.value, None
        if thread is not None and thread["kind"] == "request":
            number = int(thread["ref"])
        if thread is not None and thread["kind"] == "mentor" and found.command:
            return Kind.COMMAND.value, self._command(msg, found, now)
        if thread is not None and thread["kind"] == "session" and found.command:
            return self._session_command(msg, found, thread["ref"], now)
        if thread is not None and thread["kind"] in ("claim", "request-mentor"):
            return self._mentor_reply(msg, found, thread, now)
        request = self.store.request(number) if number is not None else None
        if request is None or request["mentee"] != msg.sender:
            if found.command in MENTOR_COMMANDS and self.store.mentor(msg.sender):
                return Kind.COMMAND.value, self._command(msg, found, now)
            return self._unknown(msg, now)
        if found.command == "withdraw":
            return Kind.COMMAND.value, self.requests.withdraw(msg, request, now)
        live = self.store.live_session_of(int(request["number"]))
        if live is not None and found.command in ("reschedule", "cancel"):
            # "Can we do 7:30am instead?" in the request's thread is about its session.
            return self._session_command(msg, found, live["uid"], now)
        return self.requests.answer(msg, request, now), int(request["number"])

    def _session_command(
        self, msg: ParsedMessage, found: Classification, uid: str, now: datetime
    ) -> tuple[str, int | None]:
        """ "cancel" or "reschedule" in answer to a session invitation; the mentee may
        also withdraw the whole request from here."""
        session = self.store.session(uid) or {}
        number = session.get("request")
        request = self.store.request(int(number)) if number is not None else None
        if found.command == "withdraw" and request and request["mentee"] == msg.sender:
            return Kind.COMMAND.value, self.requests.withdraw(msg, request, now)
        if found.command == "cancel":
            outcome = self.sessions.cancel(uid, msg.sender, now)
        elif found.command == "reschedule":
            outcome = self.sessions.move(uid, msg.sender, now, found.proposed)
        else:
            return self._unknown(msg, now)
        if outcome in ("gone", "not_yours"):
            self.postman.tell_coordinator(f"session {found.command}: {outcome}", now, msg=msg)
        return Kind.COMMAND.value, number

    def _mentor_reply(
        self, msg: ParsedMessage, found: Classification, thread: Mapping[str, Any], now: datetime
    ) -> tuple[str, int | None]:
        """A mentor answers a claim email ("claim") or an introduction ("release")."""
        number = int(thread["ref"]["number"])
        if msg.sender != thread["ref"]["mentor"]:
            return self._unknown(msg, now)
        if found.command == "claim":
            self._claim_by_email(msg, number, now)
            return Kind.COMMAND.value, number
        if found.command == "release":
            self._release_by_email(msg, number, msg.sender, now)
            return Kind.COMMAND.value, number
        if found.command in MENTOR_COMMANDS:
            return Kind.COMMAND.value, self._command(msg, found, now)
        # Anything else a mentor writes back is for a person to read.
        self.postman.tell_coordinator("a mentor wrote back", now, msg=msg)
        return Kind.REPLY.value, number

    def _claim_by_email(self, msg: ParsedMessage, number: int, now: datetime) -> None:
        result = self.claims.claim(number, msg.sender, now, via="email", answering=msg)
        if result.outcome != "claimed":
            # The introduction answers a successful claim; anything else gets a reply.
            self.postman.reply(
                msg,
                "claim_result",
                now,
                number=number,
                context={"result": result, "request": result.request},
            )

    def _release_by_email(self, msg: ParsedMessage, number: int, by: str, now: datetime) -> None:
        result = self.claims.release(number, by, now)
        self.postman.reply(
            msg,
            "claim_result",
            now,
            number=number,
            context={"result": result, "request": result.request},
        )

    # Commands (pause, resume, resign, renew, withdraw, claim, release) -----------------

    def _command(self, msg: ParsedMessage, found: Classification, now: datetime) -> int | None:
        command = found.command or ""
        if command == "withdraw":
            return self.requests.withdraw_by_sender(msg, found, now)
        if command in MENTOR_COMMANDS:
            self.enrollment.command(msg, command, now)
            return None
        number = found.tag or request_tag(msg.subject)
        if command == "claim" and number is not None and self.store.mentor(msg.sender):
            self._claim_by_email(msg, number, now)
            return number
        if command == "release" and number is not None:
            self._release_by_email(msg, number, msg.sender, now)
            return number
        # "leave" (office hours) and commands missing their request need a person.
        self.postman.tell_coordinator(f"command “{command}”", now, msg=msg)
        return None

    def _unknown(self, msg: ParsedMessage, now: datetime) -> tuple[str, int | None]:
        self.postman.tell_coordinator("unclassified", now, msg=msg)
        return Kind.UNKNOWN.value, None
