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
from ..errors import MailSourceError, MentordeskError, StoreError
from ..inbox.authres import sender_authenticated
from ..inbox.classify import Classification, Kind, classify, request_tag
from ..inbox.fields import parse_form
from ..inbox.parse import ParsedMessage, parse_message
from ..inbox.source import RawMessage
from ..mailer.compose import Renderer
from ..state.store import Store, content_fingerprint
from .desks import Desks, build_desks
from .enrollment import MENTOR_COMMANDS

log = logging.getLogger(__name__)

SILENT_KINDS = {Kind.AUTO_REPLY, Kind.LIST, Kind.OWN, Kind.NOREPLY}


@dataclass(frozen=True)
class Outcome:
    """What became of one inbound message; ``settled`` means: move it out of the inbox.

    ``failing``: it failed and stays in the inbox, one attempt counted; ``deferred``: the
    machine was in trouble (``temporary``), it stays, and no attempt is counted.
    """

    status: str  # done | duplicate | failing | deferred | quarantined
    kind: str = ""
    request: int | None = None
    error: str = ""

    @property
    def settled(self) -> bool:
        return self.status in ("done", "duplicate")


def temporary(exc: BaseException) -> bool:
    """Is ``exc`` trouble of the machine rather than of the message — no file descriptor
    or disk space left (OSError: EMFILE, ENOSPC, ...), the state or the mailbox out of
    reach — which passes? The message is then tried again without counting an attempt.

    A path that does not exist or may not be read is no passing trouble: it counts.
    """
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, StoreError | MailSourceError):
            return True
        if isinstance(cause, OSError):
            return not isinstance(cause, _PERSISTENT_OS_ERRORS)
        cause = cause.__cause__
    return False


_PERSISTENT_OS_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def describe(exc: BaseException) -> str:
    """``exc`` in a few words that are safe to show on /healthz: our own errors' messages
    (written to be shown), an OSError's reason without its path, else the type only —
    another message may carry what a mail said."""
    if isinstance(exc, MentordeskError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or 'error'}"
    return f"{type(exc).__name__} (the log has the details)"


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
        """Apply one message's effects exactly once; never raises.

        A message seen before — the same Message-ID at the same place in the mailbox, or
        with the same content (``Store.is_processed``) — is a duplicate. A failure undoes
        everything the message did and goes to ``_failed``.
        """
        msg: ParsedMessage | None = None
        try:
            msg = parse_message(raw.data, max_body_chars=self.config.inbox.max_message_bytes)
            fingerprint = content_fingerprint(raw.data)
            if self.store.is_processed(msg.message_id, key=raw.key, fingerprint=fingerprint):
                return Outcome("duplicate")
            with self.store.transaction():
                kind, request = self._dispatch(msg, now)
                self.store.record_message(
                    msg.message_id,
                    key=raw.key,
                    kind=kind,
                    now=now,
                    request=request,
                    fingerprint=fingerprint,
                )
                if raw.uid is not None:
                    self.store.set_meta(
                        "imap", {"uidvalidity": raw.uidvalidity, "last_uid": raw.uid}
                    )
            return Outcome("done", kind, request)
        except Exception as exc:
            return self._failed(raw, msg, exc, now)

    def _failed(
        self, raw: RawMessage, msg: ParsedMessage | None, exc: Exception, now: datetime
    ) -> Outcome:
        """What becomes of a message whose handling raised ``exc``; never raises.

        Trouble of the machine (``temporary``) defers it: it stays in the inbox and no
        attempt is counted, so good mail is not quarantined while, say, no file descriptor
        is left. Any other failure counts an attempt; the last one quarantines it and
        tells the coordinator — with a plainer notice if the full one cannot be made.
        """
        message_id = msg.message_id if msg is not None else f"<unparsed {raw.key}>"
        error = f"{type(exc).__name__}: {exc}"
        if temporary(exc):
            log.warning("message %s: %s; it stays in the inbox for now", message_id, error)
            return Outcome("deferred", error=describe(exc))
        log.error("message %s from %s failed", message_id, msg.sender if msg else "?", exc_info=exc)
        fingerprint = content_fingerprint(raw.data)
        try:
            with self.store.transaction():
                record = self.store.record_message(
                    message_id,
                    key=raw.key,
                    kind="error",
                    now=now,
                    status="failing",
                    error=error,
                    fingerprint=fingerprint,
                )
                if record["attempts"] < self.config.inbox.max_attempts:
                    return Outcome("failing", error=error)
                self.store.record_message(
                    message_id,
                    key=raw.key,
                    kind="error",
                    now=now,
                    status="quarantined",
                    error=error,
                    fingerprint=fingerprint,
                )
                self.store.audit("quarantined", now=now, message_id=message_id, error=error)
                # The usual notice; if the message itself breaks it, one without its fields.
                # Should both fail, the quarantine stays recorded all the same.
                told_error = error
                for about in (msg, None):
                    try:
                        with self.store.transaction():
                            self.postman.tell_coordinator(
                                "quarantined", now, msg=about, error=told_error, attachment=raw.data
                            )
                        break
                    except Exception as notice_exc:
                        if temporary(notice_exc):
                            raise
                        log.error("the notice about %s failed", message_id, exc_info=notice_exc)
                        told_error = f"{error} (the usual notice failed: {notice_exc!r})"
            return Outcome("quarantined", error=error)
        except Exception as again:
            if temporary(again):
                log.warning("message %s: %s; it stays in the inbox for now", message_id, again)
                return Outcome("deferred", error=describe(again))
            # Not even the failure can be written down: quarantine it, so it cannot stop
            # the mail behind it; the log and the quarantine folder keep it.
            log.critical("message %s quarantined unrecorded", message_id, exc_info=again)
            return Outcome("quarantined", error=error)

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
            # Anyone can write a bounce naming anyone: it marks only the addresses it
            # proves to be about (our email to them, or their own domain vouched for by
            # our server), so it is read whether or not its sender authenticated.
            authenticated = self.config.inbox.require_authentication and self._authenticated(msg)
            vouching = msg.sender.rpartition("@")[2] if authenticated else ""
            self.bounces.handle(msg, now, vouching_domain=vouching)
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
        # An answer to an email we sent this address shows that it takes mail again.
        self.bounces.answered(msg, now)
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
        if thread is not None and thread["kind"] == "pairing" and found.command != "withdraw":
            return Kind.REPLY.value, self.desks.pairings.pass_on(msg, int(thread["ref"]), now)
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
