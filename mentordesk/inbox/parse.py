"""Raw RFC 5322 bytes → ``ParsedMessage``: plain data the rest of mentordesk can trust.

``parse_message`` never raises. People send malformed MIME, mislabelled charsets,
binary junk and mail with half its headers missing; each problem becomes a note in
``ParsedMessage.defects`` and the best reading of what is left. The module is pure: no
I/O, no clock, the same bytes always give the same result.

The stdlib ``email`` package (``policy=default``) does the MIME work; this module puts
together what the modules beside it read:

    headers    header values, RFC 2047 words, addresses, Message-IDs, dates
    charsets   bytes → text, whatever the label says
    bodies     the MIME walk: the text a person reads, calendar parts, MIME defects
    html       HTML → text
    quoting    quoted history, signatures, forwards, greetings
    delivery   delivery reports (RFC 3464) and plain-text bounces
    subjects   reply/forward prefixes and the request tag
"""

from __future__ import annotations

import email
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from ..mime import READ
from .bodies import BodyReader, calendar_parts, mime_defects
from .delivery import BOUNCE_SUBJECT, DeliveryReport, delivery_report
from .headers import addresses, date_utc, decode_header, first_msg_id, msg_ids, raw_headers_of
from .html import html_to_text
from .quoting import strip_reply
from .subjects import is_forward
from .text import clean_line, tidy_body, unique

__all__ = [
    "BOUNCE_SUBJECT",
    "DeliveryReport",
    "ParsedMessage",
    "html_to_text",
    "parse_message",
    "strip_reply",
]


@dataclass(frozen=True)
class ParsedMessage:
    """One inbound email, decoded. Every text field is free of CR, LF and control characters
    except ``text``/``new_text``, which keep their line breaks (LF only)."""

    message_id: str  # "<id@host>"; synthetic "<sha256-of-raw@mentordesk.invalid>" if missing
    sender: str  # lower-case address from From ("" if none or unparseable)
    sender_name: str  # display name, decoded
    reply_to: str | None
    recipients: tuple[str, ...]  # To + Cc, lower-case, de-duplicated
    subject: str  # decoded, whitespace collapsed
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    date_utc: datetime | None  # aware UTC
    headers: Mapping[str, str] = field(hash=False)  # lower-case name → first value, decoded
    text: str  # best body text, forwarded messages included
    new_text: str  # ``text`` without quoted history and signature
    delivery_report: DeliveryReport | None
    calendar_parts: tuple[bytes, ...]  # raw text/calendar bodies, transfer-decoded
    defects: tuple[str, ...]  # human-readable notes about what was wrong


_MAX_HEADER_CHARS = 4_000  # per header value kept in ParsedMessage.headers
_SYNTHETIC_DOMAIN = "mentordesk.invalid"  # RFC 2606 reserves .invalid


def parse_message(raw: bytes, *, max_body_chars: int = 200_000) -> ParsedMessage:
    """Parse ``raw`` (one whole message as received). Never raises.

    Body text beyond ``max_body_chars`` characters is cut, with a note in ``defects``.
    """
    try:
        data = bytes(raw)
    except Exception as exc:  # not bytes-like at all: still answer, never raise
        return _unreadable(b"", f"the message is not bytes ({type(exc).__name__})")
    try:
        return _parse(data, max(1, max_body_chars))
    except Exception as exc:  # the contract is "never raises"; this is the last net
        return _unreadable(data, f"the message could not be parsed ({type(exc).__name__}: {exc})")


def _unreadable(data: bytes, note: str) -> ParsedMessage:
    return ParsedMessage(
        message_id=_synthetic_id(data),
        sender="",
        sender_name="",
        reply_to=None,
        recipients=(),
        subject="",
        in_reply_to=(),
        references=(),
        date_utc=None,
        headers=MappingProxyType({}),
        text="",
        new_text="",
        delivery_report=None,
        calendar_parts=(),
        defects=(clean_line(note)[:500],),
    )


def _parse(data: bytes, max_body_chars: int) -> ParsedMessage:
    factory = READ.header_factory
    msg = email.message_from_bytes(data, policy=READ)
    notes: list[str] = []
    raw_headers = raw_headers_of(msg)

    message_id = first_msg_id(raw_headers.get("message-id"))
    if message_id is None:
        notes.append("no usable Message-ID header; using a hash of the message instead")
        message_id = _synthetic_id(data)

    from_ = addresses("from", raw_headers.get("from"), factory)
    if not from_ or not from_[0][1]:
        notes.append("no readable sender address in From")
    sender_name, sender = from_[0] if from_ else ("", "")
    reply_to = [
        addr for _, addr in addresses("reply-to", raw_headers.get("reply-to"), factory) if addr
    ]
    recipients = unique(
        addr
        for name in ("to", "cc")
        for _, addr in addresses(name, raw_headers.get(name), factory)
        if addr
    )

    headers = {
        name: clean_line(decode_header(name, value, factory))[:_MAX_HEADER_CHARS]
        for name, value in raw_headers.items()
    }
    subject = headers.get("subject", "")

    body = BodyReader(max_body_chars * 4, notes, factory)
    text = tidy_body(body.text_of(msg, 0))
    if len(text) > max_body_chars:
        notes.append(f"body text cut to {max_body_chars} characters")
        text = text[:max_body_chars]
    in_reply_to = msg_ids(raw_headers.get("in-reply-to"))
    new_text = strip_reply(text, forwarded=is_forward(subject))

    report = delivery_report(msg, text, subject, sender, headers, in_reply_to)

    for defect in mime_defects(msg):
        notes.append(defect)

    return ParsedMessage(
        message_id=message_id,
        sender=sender,
        sender_name=sender_name,
        reply_to=reply_to[0] if reply_to else None,
        recipients=recipients,
        subject=subject,
        in_reply_to=in_reply_to,
        references=msg_ids(raw_headers.get("references")),
        date_utc=date_utc(raw_headers.get("date")),
        headers=MappingProxyType(headers),
        text=text,
        new_text=new_text,
        delivery_report=report,
        calendar_parts=tuple(calendar_parts(msg)),
        defects=tuple(dict.fromkeys(notes)),
    )


def _synthetic_id(data: bytes) -> str:
    return f"<{hashlib.sha256(data).hexdigest()}@{_SYNTHETIC_DOMAIN}>"
