"""Raw RFC 5322 bytes → ``ParsedMessage``: plain data the rest of mentordesk can trust.

``parse_message`` never raises. People send malformed MIME, mislabelled charsets,
binary junk and mail with half its headers missing; each problem becomes a note in
``ParsedMessage.defects`` and the best reading of what is left. The module is pure: no
I/O, no clock, the same bytes always give the same result.

The stdlib ``email`` package (``policy=default``) does the MIME work, within limits that
apply while the tree is built (``bodies.message_tree``); this module puts together what
the modules beside it read, and bounds the text it keeps (``MAX_TEXT_CHARS``,
``MAX_NEW_TEXT_CHARS``) so that a 10 MB body is never kept, stored or echoed whole:

    headers    header values, RFC 2047 words, addresses, Message-IDs, dates
    charsets   bytes → text, whatever the label says
    bodies     the MIME walk: the text a person reads, calendar parts, MIME defects
    html       HTML → text
    quoting    quoted history, signatures, forwards, greetings
    delivery   delivery reports (RFC 3464) and plain-text bounces
    subjects   reply/forward prefixes and the request tag
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType

from .bodies import (
    BodyReader,
    Limits,
    calendar_parts,
    header_section,
    message_tree,
    mime_defects,
)
from .delivery import BOUNCE_SUBJECT, DeliveryReport, delivery_report
from .headers import (
    addresses,
    date_utc,
    decode_header,
    first_msg_id,
    msg_ids,
    raw_headers_of,
    read_header,
)
from .html import html_to_text
from .quoting import strip_reply
from .subjects import is_forward
from .text import clean_line, tidy_body, unique

__all__ = [
    "BOUNCE_SUBJECT",
    "MAX_NEW_TEXT_CHARS",
    "MAX_TEXT_CHARS",
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
    sender: str  # From's addr-spec, lower-case, as headers.clean_address accepts it; or ""
    sender_name: str  # display name, decoded
    reply_to: str | None
    recipients: tuple[str, ...]  # To + Cc, lower-case, de-duplicated
    subject: str  # decoded, whitespace collapsed
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    date_utc: datetime | None  # aware UTC
    headers: Mapping[str, str] = field(hash=False)  # lower-case name → first value, decoded
    text: str  # best body text, forwarded messages included (≤ MAX_TEXT_CHARS)
    new_text: str  # ``text`` without quoted history and signature (≤ MAX_NEW_TEXT_CHARS)
    delivery_report: DeliveryReport | None
    calendar_parts: tuple[bytes, ...]  # raw text/calendar bodies, transfer-decoded
    defects: tuple[str, ...]  # human-readable notes about what was wrong


_MAX_HEADER_CHARS = 4_000  # per header value kept in ParsedMessage.headers
# Body text kept, whatever ``max_body_chars`` asks: some 60 pages. What the sender wrote
# this time (``new_text``, where forms, details and notes are read) is cut much shorter:
# a request, an enrollment or a note is a page or two, and what is read from it is stored
# and may be quoted back.
MAX_TEXT_CHARS = 200_000
MAX_NEW_TEXT_CHARS = 10_000
_SYNTHETIC_DOMAIN = "mentordesk.invalid"  # RFC 2606 reserves .invalid


def parse_message(raw: bytes, *, max_body_chars: int = 200_000) -> ParsedMessage:
    """Parse ``raw`` (one whole message as received). Never raises.

    Body text beyond ``max_body_chars`` (and never more than ``MAX_TEXT_CHARS``)
    characters is cut, with a note in ``defects``.
    """
    try:
        data = bytes(raw)
    except Exception as exc:  # not bytes-like at all: still answer, never raise
        return _unreadable(b"", f"the message is not bytes ({type(exc).__name__})")
    limit = max(1, min(max_body_chars, MAX_TEXT_CHARS))
    try:
        return _parse(data, limit)
    except Exception as exc:  # the contract is "never raises"; this is the last net
        note = f"the message could not be parsed ({type(exc).__name__}: {str(exc)[:200]})"
    try:
        # Its header section alone may still say who wrote it, so a person can answer.
        salvaged = _parse(header_section(data) + b"\r\n\r\n", limit)
    except Exception:
        return _unreadable(data, note)
    return replace(
        salvaged, message_id=_message_id(salvaged, data), defects=(clean_line(note)[:500],)
    )


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


def _message_id(salvaged: ParsedMessage, data: bytes) -> str:
    """The salvaged header's Message-ID, or the hash of the whole message."""
    synthetic = salvaged.message_id.endswith(f"@{_SYNTHETIC_DOMAIN}>")
    return _synthetic_id(data) if synthetic else salvaged.message_id


def _parse(data: bytes, max_body_chars: int) -> ParsedMessage:
    factory = read_header
    limits = Limits()
    msg = message_tree(data, limits)
    notes = limits.notes
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

    # tidy_body drops blank lines and trailing spaces: read twice what is kept.
    body = BodyReader(max_body_chars * 2, notes, factory, limits)
    text = tidy_body(body.text_of(msg, 0))
    if len(text) > max_body_chars:
        notes.append(f"body text cut to {max_body_chars} characters")
        text = text[:max_body_chars]
    in_reply_to = msg_ids(raw_headers.get("in-reply-to"))
    new_text = _cut_at_line(strip_reply(text, forwarded=is_forward(subject)), notes)

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


def _cut_at_line(new_text: str, notes: list[str]) -> str:
    """``new_text`` cut to ``MAX_NEW_TEXT_CHARS``, at a line end where one is near."""
    if len(new_text) <= MAX_NEW_TEXT_CHARS:
        return new_text
    notes.append(f"the sender's own text was cut to {MAX_NEW_TEXT_CHARS} characters")
    end = new_text.rfind("\n", MAX_NEW_TEXT_CHARS // 2, MAX_NEW_TEXT_CHARS)
    return new_text[: end if end > 0 else MAX_NEW_TEXT_CHARS].rstrip()


def _synthetic_id(data: bytes) -> str:
    return f"<{hashlib.sha256(data).hexdigest()}@{_SYNTHETIC_DOMAIN}>"
