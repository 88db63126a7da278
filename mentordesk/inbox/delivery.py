"""Delivery status notifications (RFC 3464) and the plain-text bounces MTAs send instead.

``delivery_report`` reads which recipients failed, whether for good (5.x.x) or for now
(4.x.x), and which of our messages came back.
"""

from __future__ import annotations

import email.parser
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from email.policy import default as _POLICY

from .bodies import content_type, param, payload_bytes, subparts_of, walk
from .charsets import decode_bytes
from .headers import clean_address, first_msg_id, raw_headers_of
from .text import clean_line, unique

__all__ = ["BOUNCE_SENDERS", "BOUNCE_SUBJECT", "DeliveryReport", "delivery_report"]


@dataclass(frozen=True)
class DeliveryReport:
    """An RFC 3464 delivery status notification, or a plain-text bounce we recognise."""

    failed_recipients: tuple[str, ...]  # lower-case addresses; () when none could be read
    original_message_id: str | None  # Message-ID of our message it returns, if found
    permanent: bool  # 5.x.x / "failed" → True; 4.x.x "delayed" → False
    diagnostic: str


# Subjects MTAs and Exchange give bounces. Shared with classify so both agree.
BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:undelivered mail returned to sender|undeliverable\b|undelivered\b"
    r"|delivery status notification \((?:failure|delay)\)|mail delivery failed"
    r"|delivery failure|failure notice|returned mail\b|mail system error"
    r"|unzustellbar\b|non remis\b|onbestelbaar\b|no se puede entregar\b)",
    re.IGNORECASE,
)


# Local parts bounces come from. Shared with classify's loop guard, like BOUNCE_SUBJECT.
BOUNCE_SENDERS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})

_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")  # RFC 6533
_RETURNED_TYPES = ("text/rfc822-headers", "message/global-headers", "message/rfc822")
_COPY_MARKER = re.compile(
    r"^.*(?:this is a copy of the message|below this line is a copy|original message follows"
    r"|original message headers|-+\s*original message\s*-+|returned message follows"
    r"|message headers follow|unsent message below|-+\s*forwarded message\s*-+).*$",
    re.IGNORECASE | re.MULTILINE,
)
_TEXT_RECIPIENT = re.compile(r"^\s*<?([^\s<>@:]+@[^\s<>@:]+?)>?\s*(?::.*)?$")
_RECIPIENT_INTRO = re.compile(
    r"(?:following (?:address|recipient)|could not be delivered to|wasn't delivered to"
    r"|was not delivered to|delivery to the following|failed recipient)",
    re.IGNORECASE,
)
_INLINE_RECIPIENT = re.compile(
    r"(?:delivered to|delivery to)\s+<?([^\s<>@]+@[^\s<>@,;]+)", re.IGNORECASE
)
_TEMPORARY = re.compile(
    r"\b4\.\d{1,3}\.\d{1,3}\b|\bdelayed\b|not yet been delivered|will (?:continue to )?(?:re)?try"
    r"|temporary (?:failure|error|problem)",
    re.IGNORECASE,
)
_STATUS_CODE = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")
_SMTP_REPLY = re.compile(r"\b[45]\d\d\b|said:", re.IGNORECASE)
_PERMANENT = re.compile(r"permanent|failed|undeliverable", re.IGNORECASE)


def delivery_report(
    msg: Message,
    text: str,
    subject: str,
    sender: str,
    headers: Mapping[str, str],
    in_reply_to: tuple[str, ...],
) -> DeliveryReport | None:
    parts = list(walk(msg, into_messages=False))
    status_part = next((p for p in parts if content_type(p) in _STATUS_TYPES), None)
    local = sender.partition("@")[0]
    null_path = headers.get("return-path", "").replace(" ", "") == "<>"
    plain_bounce = (local in BOUNCE_SENDERS or null_path) and bool(
        BOUNCE_SUBJECT.match(subject) or _RECIPIENT_INTRO.search(text)
    )
    if status_part is None and not plain_bounce:
        return None
    returned = next(
        (
            found
            for p in parts
            if content_type(p) in _RETURNED_TYPES and (found := _returned_message_id(p))
        ),
        None,
    )
    # Exchange and others thread the bounce on the message it returns.
    original_id = returned or (in_reply_to[0] if in_reply_to else None)
    if status_part is not None:
        return _dsn(status_part, original_id)
    return _text_bounce(text, original_id)


def _returned_message_id(part: Message) -> str | None:
    subparts = subparts_of(part)
    if subparts:
        return first_msg_id(raw_headers_of(subparts[0]).get("message-id"))
    text, _ = decode_bytes(payload_bytes(part), param(part, "charset"), [])
    match = re.search(r"^message-id:[ \t]*(.*(?:\n[ \t].*)*)", text, re.IGNORECASE | re.MULTILINE)
    return first_msg_id(match.group(1)) if match else None


def _dsn_blocks(part: Message) -> list[dict[str, str]]:
    """The per-message block, then one block per recipient (RFC 3464 §2.1)."""
    subparts = subparts_of(part)
    if subparts:
        return [raw_headers_of(block) for block in subparts]
    text, _ = decode_bytes(payload_bytes(part), "utf-8", [])
    parser = email.parser.HeaderParser(policy=_POLICY)
    return [
        raw_headers_of(parser.parsestr(block.strip() + "\n"))
        for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
        if block.strip()
    ]


def _dsn(part: Message, original_id: str | None) -> DeliveryReport:
    permanent: list[tuple[str, str]] = []
    delayed: list[tuple[str, str]] = []
    for block in _dsn_blocks(part)[1:]:
        action = block.get("action", "").strip().lower().split(";")[0].strip()
        status = block.get("status", "").strip()
        address = _dsn_address(block.get("final-recipient") or block.get("original-recipient"))
        diagnostic = clean_line(block.get("diagnostic-code", "").partition(";")[2] or status)
        if action == "failed" or (not action and status.startswith("5")):
            permanent.append((address, diagnostic or "failed"))
        elif action == "delayed" or (not action and status.startswith("4")):
            delayed.append((address, diagnostic or "delayed"))
    # A report listing both: the permanent failures are the news; the delays may yet resolve.
    chosen = permanent or delayed
    return DeliveryReport(
        failed_recipients=unique(addr for addr, _ in chosen if addr),
        original_message_id=original_id,
        permanent=bool(permanent),
        diagnostic=chosen[0][1][:500] if chosen else "no failed recipients reported",
    )


def _dsn_address(value: str | None) -> str:
    """``rfc822; user@host`` (RFC 3464 §2.3.2) → ``user@host``."""
    if not value:
        return ""
    kind, _, address = value.partition(";")
    return clean_address(address if address else kind)


def _text_bounce(text: str, original_id: str | None) -> DeliveryReport:
    """A bounce without a delivery-status part (qmail, Exim, some webmail)."""
    marker = _COPY_MARKER.search(text)
    human = text[: marker.start()] if marker else text
    if original_id is None and marker:
        match = re.search(r"^\s*message-id:\s*(<[^>\s]+>)", text[marker.start() :], re.I | re.M)
        original_id = match.group(1) if match else None
    lines = human.split("\n")
    recipients: list[str] = []
    for i, line in enumerate(lines):
        match = _TEXT_RECIPIENT.match(line)
        introduced = i > 0 and any(_RECIPIENT_INTRO.search(p) for p in lines[max(0, i - 3) : i])
        if match and (line.lstrip().startswith("<") or introduced or line.startswith((" ", "\t"))):
            recipients.append(clean_address(match.group(1)))
        recipients.extend(clean_address(m.rstrip(".:")) for m in _INLINE_RECIPIENT.findall(line))
    temporary = bool(_TEMPORARY.search(human)) and not re.search(
        r"\b5\.\d{1,3}\.\d{1,3}\b|permanent", human, re.IGNORECASE
    )
    # The most specific line: an enhanced status code (RFC 3463), an SMTP reply, a phrase.
    diagnostic = next(
        (
            clean_line(line)
            for pattern in (_STATUS_CODE, _SMTP_REPLY, _PERMANENT)
            for line in lines
            if pattern.search(line)
        ),
        next((clean_line(line) for line in lines if line.strip()), "bounce"),
    )
    return DeliveryReport(
        failed_recipients=unique(addr for addr in recipients if addr),
        original_message_id=original_id,
        permanent=not temporary,
        diagnostic=diagnostic[:500],
    )
