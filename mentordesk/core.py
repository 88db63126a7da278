"""The coordinator: what to do with one inbound email.

``Coordinator.handle`` runs on the store's writer thread. It parses and classifies the
message (pure functions), decides, and applies every effect — store changes, outgoing
emails, audit events, the processed-message record — in ONE store transaction, so a
crash leaves either all of them or none (SPEC §5). The caller moves the message out of
the inbox only after ``handle`` returned.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .config import Config
from .flows.desks import Desks, build_desks
from .inbox.authres import sender_authenticated
from .inbox.classify import Classification, Kind, classify, request_tag
from .inbox.fields import FormFields, format_windows, parse_form
from .inbox.parse import ParsedMessage, parse_message
from .inbox.source import RawMessage
from .mailer.compose import Renderer
from .state.records import MentorStatus, RequestStatus, request_status
from .state.store import Store, iso
from .views import request_view, windows_from_doc, windows_to_doc

log = logging.getLogger(__name__)

MENTOR_COMMANDS = ("pause", "resume", "resign", "renew")
MIN_DETAIL_WORDS = 6  # "can someone help me?" is not a question a mentor can take
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


# --- pure decisions -------------------------------------------------------------------


def missing_enrollment_fields(fields: FormFields, name: str) -> list[str]:
    missing = []
    if not name:
        missing.append("name")
    if not fields.skills:
        missing.append("skills")
    if not fields.timezone:
        missing.append("timezone")
    if not fields.availability:
        missing.append("availability")
    return missing


def skills_in_text(text: str, synonyms: Mapping[str, str], known: Iterable[str]) -> list[str]:
    """Skills named anywhere in free text: every alias and canonical name, whole words."""
    names = dict(synonyms)
    for skill in known:
        names.setdefault(skill.lower(), skill.lower())
    found: list[str] = []
    lowered = f" {text.lower()} "
    for alias in sorted(names, key=len, reverse=True):
        pattern = r"(?<![\w+#.])" + re.escape(alias) + r"(?![\w+#])"
        if re.search(pattern, lowered) and names[alias] not in found:
            found.append(names[alias])
    return found


def free_text(text: str) -> str:
    """The body minus `Key: value` form lines and greetings: what the person wrote."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip(" *-•\t")
        if re.match(r"^[A-Za-z][A-Za-z ]{0,24}:\s", stripped + " ") and not stripped.endswith(":"):
            continue
        # "Hi," / "Hello Ada!" is not part of the question, even on the same line.
        line = re.sub(r"^\s*(hi|hello|hey|dear)\b[^,.!?\n]{0,30}[,!]\s*", "", line, flags=re.I)
        if re.fullmatch(r"\s*(hi|hello|hey|dear)\b[^.!?]{0,30}", line, re.I):
            continue
        lines.append(line.rstrip())
    return "\n".join(lines).strip()


def enough_detail(text: str) -> bool:
    return len(re.findall(r"\w+", text)) >= MIN_DETAIL_WORDS


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
            self._tell_coordinator(
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
        if kind in SILENT_KINDS:
            # RFC 3834 §2: never answer automatic mail; just remember we saw it.
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
            self._bounce(msg, now)
            return kind.value, None
        if not msg.sender:
            self._tell_coordinator("unclassified", now, msg=msg, error="no sender address")
            return "unknown", None
        if not self._authenticated(msg):
            # Anyone can write any From address: with the check on, a person decides.
            self.store.audit(
                "unauthenticated", now=now, sender=msg.sender, message_id=msg.message_id
            )
            self._tell_coordinator("sender not authenticated", now, msg=msg)
            return "unauthenticated", None
        if kind is Kind.REPLY or (
            kind in (Kind.ENROLLMENT, Kind.REQUEST) and self._answers_our_question(msg)
        ):
            # "Re: enroll" answering our question completes that enrollment; it is not
            # a fresh one (nor is a tag-less "Re: mentor request" a second request).
            return self._reply(msg, found, now)
        if kind is Kind.ENROLLMENT:
            self._enroll(msg, parse_form(msg.new_text, self.config.matching.synonyms), now)
            return kind.value, None
        if kind is Kind.REQUEST:
            return kind.value, self._request(msg, now)
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

    # Enrollment (SPEC §3 flow 1) ------------------------------------------------------

    def _enroll(
        self,
        msg: ParsedMessage,
        fields: FormFields,
        now: datetime,
        pending: Mapping[str, Any] | None = None,
    ) -> None:
        merged = self._merge_enrollment(pending or {}, fields)
        name = merged["name"] or msg.sender_name
        existing = self.store.mentor(msg.sender)
        if existing and not pending:
            # Re-enrollment: anything left out keeps its stored value.
            for key in ("skills", "timezone", "timezone_text", "availability", "capacity", "about"):
                if not merged.get(key) and existing.get(key):
                    merged[key] = existing[key]
            name = merged["name"] or existing.get("name") or name
        check = FormFields(
            name=name or None,
            skills=tuple(merged["skills"]),
            timezone=merged["timezone"],
            timezone_text=merged["timezone_text"],
            availability=windows_from_doc(merged["availability"]),
            availability_text=None,
            capacity=merged["capacity"],
            about=merged["about"],
            details=None,
            present=frozenset(),
            problems=(),
        )
        missing = missing_enrollment_fields(check, name)
        if missing or (fields.problems and not existing):
            self._reply_to(
                msg,
                "enrollment_incomplete",
                now,
                context={
                    "name": name,
                    "missing": missing,
                    "problems": fields.problems,
                    "understood": self._mentor_view(merged, name),
                },
                thread=("enrollment", {**merged, "name": name, "email": msg.sender}),
            )
            self.store.audit("enrollment incomplete", now=now, mentor=msg.sender, missing=missing)
            return
        term_end = existing.get("term_end") if existing else None
        if not term_end or term_end < iso(now):
            term_end = iso(now + self.config.timers.term_length)
        mentor = self.store.save_mentor(
            {
                "email": msg.sender,
                "name": name,
                "skills": list(merged["skills"]),
                "timezone": merged["timezone"],
                "timezone_text": merged["timezone_text"],
                "availability": merged["availability"],
                "capacity": merged["capacity"] or self.config.matching.default_capacity,
                "about": merged["about"] or "",
                "status": "active"
                if not existing or existing["status"] == "resigned"
                else existing["status"],
                "term_end": term_end,
                "enrolled": existing["enrolled"] if existing else iso(now),
                "updated": iso(now),
            }
        )
        self._reply_to(
            msg,
            "enrollment_confirmed",
            now,
            context={
                "name": name,
                "updated": existing is not None,
                "mentor": self._mentor_view(mentor, name),
                "problems": fields.problems,
            },
            thread=("mentor", msg.sender),
        )
        self.store.audit(
            "enrolled" if not existing else "enrollment updated", now=now, mentor=msg.sender
        )

    @staticmethod
    def _merge_enrollment(pending: Mapping[str, Any], fields: FormFields) -> dict[str, Any]:
        return {
            "name": fields.name or pending.get("name") or "",
            "skills": list(fields.skills) or list(pending.get("skills", [])),
            "timezone": fields.timezone or pending.get("timezone"),
            "timezone_text": fields.timezone_text
            if fields.timezone
            else pending.get("timezone_text"),
            "availability": windows_to_doc(fields.availability) or pending.get("availability", []),
            "capacity": fields.capacity or pending.get("capacity"),
            "about": fields.about or pending.get("about") or "",
        }

    def _mentor_view(self, doc: Mapping[str, Any], name: str) -> dict[str, Any]:
        """What we understood, as the confirmation echoes it."""
        timezone = doc.get("timezone")
        written = doc.get("timezone_text")
        zone_text = timezone or ""
        if timezone and written and written.strip().lower() != timezone.lower():
            zone_text = f"{timezone} (you wrote “{written}”)"
        return {
            "name": name,
            "skills": ", ".join(doc.get("skills") or []),
            "timezone": zone_text,
            "availability": format_windows(windows_from_doc(doc.get("availability") or [])),
            "capacity": doc.get("capacity") or self.config.matching.default_capacity,
            "about": doc.get("about") or "",
            "term_end": (doc.get("term_end") or "")[:10],
            "status": doc.get("status", ""),
        }

    # Requests (SPEC §3 flow 2) ---------------------------------------------------------

    def _known_skills(self) -> set[str]:
        return self.store.mentor_skills() | set(self.config.matching.synonyms.values())

    def _request_fields(self, msg: ParsedMessage) -> dict[str, Any]:
        fields = parse_form(msg.new_text, self.config.matching.synonyms)
        known = self._known_skills()
        skills = [s for s in fields.skills if s in known]
        unknown = [s for s in fields.skills if s not in known]
        details = (fields.details or "").strip()
        prose = free_text(msg.new_text)
        if not details and enough_detail(prose):
            details = prose
        if not skills:
            skills = skills_in_text(
                f"{msg.subject}\n{details}", self.config.matching.synonyms, known
            )
        return {
            "name": fields.name or msg.sender_name,
            "skills": skills,
            "unknown_skills": unknown,
            "details": details,
            "timezone": fields.timezone,
            "timezone_text": fields.timezone_text,
            "availability": windows_to_doc(fields.availability),
            "problems": list(fields.problems),
        }

    @staticmethod
    def _missing_request_fields(doc: Mapping[str, Any]) -> list[str]:
        missing = []
        if not doc.get("skills"):
            missing.append("skills")
        if not enough_detail(doc.get("details") or ""):
            missing.append("details")
        return missing

    def _request(self, msg: ParsedMessage, now: datetime) -> int | None:
        fields = self._request_fields(msg)
        open_requests = self.store.open_requests_of(msg.sender)
        for existing in open_requests:
            if fields["details"] and existing.get("details") == fields["details"]:
                self._reply_to(
                    msg,
                    "request_duplicate",
                    now,
                    number=existing["number"],
                    context={"request": request_view(existing)},
                )
                return int(existing["number"])
        limit = self.config.limits.open_requests_per_mentee
        if len(open_requests) >= limit:
            self._reply_to(
                msg,
                "request_limit",
                now,
                context={
                    "limit": limit,
                    "requests": [request_view(r) for r in open_requests],
                },
            )
            self.store.audit("request refused: limit", now=now, mentee=msg.sender)
            return None
        number = self.store.new_request_number()
        doc = {
            "number": number,
            "mentee": msg.sender,
            "name": fields["name"],
            "skills": fields["skills"],
            "details": fields["details"],
            "timezone": fields["timezone"],
            "timezone_text": fields["timezone_text"],
            "availability": fields["availability"],
            "status": "incomplete",
            "created": iso(now),
            "updated": iso(now),
            "subject": msg.subject,
            "source": msg.message_id,
        }
        self._settle_request(msg, doc, fields, now, new=True)
        return number

    def _settle_request(
        self,
        msg: ParsedMessage,
        doc: dict[str, Any],
        fields: Mapping[str, Any],
        now: datetime,
        *,
        new: bool,
    ) -> None:
        missing = self._missing_request_fields(doc)
        was = doc["status"]
        doc["status"] = "incomplete" if missing else "open"
        if doc["status"] == "open" and was != "open":
            doc["opened"] = iso(now)
        doc["updated"] = iso(now)
        self.store.save_request(doc)
        number = int(doc["number"])
        context = {
            "request": request_view(doc),
            "missing": missing,
            "problems": fields.get("problems", []),
            "unknown_skills": fields.get("unknown_skills", []),
            "known_skills": sorted(self._known_skills()),
        }
        if missing:
            self._reply_to(msg, "request_incomplete", now, number=number, context=context)
            self.store.audit("request incomplete", now=now, request=number, missing=missing)
        else:
            context["next_update"] = self._local_date(
                now + self.config.timers.mentee_update_after, doc.get("timezone")
            )
            context["invite_count"] = self.config.matching.invite_count
            self._reply_to(msg, "request_ack", now, number=number, context=context)
            self.store.audit("request opened", now=now, request=number, mentee=doc["mentee"])
            self.matching.match(number, now)
        if new:
            self.store.audit("request received", now=now, request=number, mentee=doc["mentee"])

    def _local_date(self, moment: datetime, timezone: str | None) -> str:
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(timezone or self.config.program.timezone)
        return moment.astimezone(zone).strftime("%A %-d %B")

    # Replies in a known thread ----------------------------------------------------------

    def _reply(
        self, msg: ParsedMessage, found: Classification, now: datetime
    ) -> tuple[str, int | None]:
        thread = self.store.thread([*msg.references, *msg.in_reply_to])
        number = found.tag
        if thread is not None and thread["kind"] == "enrollment":
            fields = parse_form(msg.new_text, self.config.matching.synonyms)
            if thread["ref"].get("email") == msg.sender:
                self._enroll(msg, fields, now, pending=thread["ref"])
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
            return Kind.COMMAND.value, self._withdraw(msg, request, now)
        if request_status(request) is RequestStatus.INCOMPLETE:
            answer = self._request_fields(msg)
            request["skills"] = request["skills"] or answer["skills"]
            extra = answer["details"]
            if extra and extra not in request["details"]:
                request["details"] = f"{request['details']}\n\n{extra}".strip()
            for key in ("timezone", "timezone_text", "availability"):
                request[key] = request.get(key) or answer[key]
            self._settle_request(msg, request, answer, now, new=False)
            return Kind.REQUEST.value, int(request["number"])
        if request_status(request).waiting:
            note = free_text(msg.new_text)
            if note:
                request.setdefault("notes", []).append({"at": iso(now), "text": note})
                request["updated"] = iso(now)
                self.store.save_request(request)
            self._reply_to(
                msg,
                "request_note",
                now,
                number=int(request["number"]),
                context={"request": request_view(request)},
            )
            self.store.audit("request note", now=now, request=request["number"])
            return Kind.REPLY.value, int(request["number"])
        # A reply to a withdrawn or closed request: a person should look at it.
        self._tell_coordinator("reply to a closed request", now, msg=msg)
        return Kind.REPLY.value, int(request["number"])

    def _session_command(
        self, msg: ParsedMessage, found: Classification, uid: str, now: datetime
    ) -> tuple[str, int | None]:
        """ "cancel" or "reschedule" in answer to a session invitation."""
        session = self.store.session(uid) or {}
        number = session.get("request")
        if found.command == "cancel":
            outcome = self.sessions.cancel(uid, msg.sender, now)
        elif found.command == "reschedule":
            outcome = self.sessions.move(uid, msg.sender, now)
        else:
            return self._unknown(msg, now)
        if outcome in ("gone", "not_yours"):
            self._tell_coordinator(f"session {found.command}: {outcome}", now, msg=msg)
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
        self._tell_coordinator("a mentor wrote back", now, msg=msg)
        return Kind.REPLY.value, number

    def _claim_by_email(self, msg: ParsedMessage, number: int, now: datetime) -> None:
        result = self.claims.claim(number, msg.sender, now, via="email", answering=msg)
        if result.outcome != "claimed":
            # The introduction answers a successful claim; anything else gets a reply.
            self._reply_to(
                msg,
                "claim_result",
                now,
                number=number,
                context={"result": result, "request": result.request},
            )

    def _release_by_email(self, msg: ParsedMessage, number: int, by: str, now: datetime) -> None:
        result = self.claims.release(number, by, now)
        self._reply_to(
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
            return self._withdraw_by_sender(msg, found, now)
        if command in MENTOR_COMMANDS:
            self._mentor_command(msg, command, now)
            return None
        number = found.tag or request_tag(msg.subject)
        if command == "claim" and number is not None and self.store.mentor(msg.sender):
            self._claim_by_email(msg, number, now)
            return number
        if command == "release" and number is not None:
            self._release_by_email(msg, number, msg.sender, now)
            return number
        # "leave" (office hours) and commands missing their request need a person.
        self._tell_coordinator(f"command “{command}”", now, msg=msg)
        return None

    def _mentor_command(self, msg: ParsedMessage, command: str, now: datetime) -> None:
        mentor = self.store.mentor(msg.sender)
        if mentor is None:
            self._reply_to(msg, "not_a_mentor", now, context={"command": command})
            return
        if command == "resign":
            self.lifecycle.mentor_left(msg.sender, MentorStatus.RESIGNED, now)
            mentor = self.store.mentor(msg.sender) or mentor
        else:
            if command == "pause":
                mentor["status"] = MentorStatus.PAUSED.value
            elif command == "resume":
                mentor["status"] = MentorStatus.ACTIVE.value
            elif command == "renew":
                mentor["term_end"] = iso(now + self.config.timers.term_length)
                if MentorStatus(mentor["status"]).left:
                    mentor["status"] = MentorStatus.ACTIVE.value
            mentor["updated"] = iso(now)
            self.store.save_mentor(mentor)
            self.store.audit(f"mentor {command}", now=now, mentor=msg.sender)
        self._reply_to(
            msg,
            "mentor_status",
            now,
            context={
                "command": command,
                "mentor": self._mentor_view(mentor, mentor.get("name", "")),
            },
            thread=("mentor", msg.sender),
        )

    def _withdraw_by_sender(
        self, msg: ParsedMessage, found: Classification, now: datetime
    ) -> int | None:
        number = found.tag or request_tag(msg.subject)
        open_requests = self.store.open_requests_of(msg.sender)
        chosen = [r for r in open_requests if number is None or r["number"] == number]
        if len(chosen) == 1:
            return self._withdraw(msg, chosen[0], now)
        self._reply_to(
            msg,
            "which_request",
            now,
            context={
                "requests": [request_view(r) for r in open_requests],
            },
        )
        return None

    def _withdraw(self, msg: ParsedMessage, request: dict[str, Any], now: datetime) -> int:
        number = int(request["number"])
        self.lifecycle.withdraw(number, msg.sender, now)
        request = self.store.request(number) or request
        self._reply_to(
            msg,
            "request_withdrawn",
            now,
            number=number,
            context={"request": request_view(request)},
        )
        return number

    # Bounces and the coordinator ---------------------------------------------------------

    def _bounce(self, msg: ParsedMessage, now: datetime) -> None:
        report = msg.delivery_report
        if report is None or not report.failed_recipients:
            self.store.audit("bounce unreadable", now=now, message_id=msg.message_id)
            self._tell_coordinator("unreadable bounce", now, msg=msg)
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

    def _unknown(self, msg: ParsedMessage, now: datetime) -> tuple[str, int | None]:
        self._tell_coordinator("unclassified", now, msg=msg)
        return Kind.UNKNOWN.value, None

    def _tell_coordinator(
        self,
        reason: str,
        now: datetime,
        *,
        msg: ParsedMessage | None = None,
        error: str = "",
        attachment: bytes | None = None,
    ) -> None:
        self.postman.tell_coordinator(reason, now, msg=msg, error=error, attachment=attachment)

    def _reply_to(
        self,
        msg: ParsedMessage,
        template: str,
        now: datetime,
        *,
        context: Mapping[str, Any],
        number: int | None = None,
        thread: tuple[str, Any] | None = None,
    ) -> None:
        self.postman.reply(msg, template, now, context=context, number=number, thread=thread)
