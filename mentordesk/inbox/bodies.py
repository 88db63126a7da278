"""The MIME tree: which parts a person reads, their text, calendar parts, MIME defects.

``BodyReader`` walks a message (depth-limited) and collects the text a person would
read: plain text before HTML in alternatives, forwarded messages inline, attachments and
binary junk left out, RFC 3676 format=flowed joined.
"""

from __future__ import annotations

import email
import email.utils
import re
from collections.abc import Iterator
from email.message import Message
from email.policy import default as _POLICY

from .charsets import decode_bytes
from .headers import HeaderFactory, decode_header, raw_headers_of
from .html import html_to_text
from .text import MAX_DEPTH, clean_line

__all__ = [
    "BodyReader",
    "calendar_parts",
    "content_type",
    "mime_defects",
    "param",
    "payload_bytes",
    "subparts_of",
    "walk",
]


def content_type(part: Message) -> str:
    """The part's "type/subtype", lower-case; text/plain where it cannot be read."""
    try:
        return part.get_content_type()
    except Exception:
        return "text/plain"


def param(part: Message, name: str) -> str | None:
    """A Content-Type parameter ("charset", "format"), RFC 2231 decoded; None if absent."""
    try:
        value = part.get_param(name)
    except Exception:
        return None
    if isinstance(value, tuple):  # RFC 2231 (charset, language, value)
        value = email.utils.collapse_rfc2231_value(value)
    return value if isinstance(value, str) else None


def _is_attachment(part: Message) -> bool:
    try:
        return part.get_content_disposition() == "attachment"
    except Exception:
        return False


def payload_bytes(part: Message) -> bytes:
    """The part's body with its Content-Transfer-Encoding (RFC 2045 §6) undone."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    return payload if isinstance(payload, bytes) else b""


def subparts_of(part: Message) -> list[Message]:
    """The parts directly inside ``part`` (none for a leaf or an unreadable payload)."""
    try:
        payload = part.get_payload()
    except Exception:
        return []
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


class BodyReader:
    """Walks a MIME tree and collects the text a person would read."""

    def __init__(self, max_part_chars: int, notes: list[str], factory: HeaderFactory) -> None:
        self.max_part_chars = max_part_chars
        self.notes = notes
        self.factory = factory

    def text_of(self, part: Message, depth: int) -> str:
        if depth > MAX_DEPTH:
            self.notes.append(f"MIME parts nested deeper than {MAX_DEPTH} levels were skipped")
            return ""
        ctype = content_type(part)
        subparts = subparts_of(part)
        if ctype in ("message/rfc822", "message/global"):
            return self._forwarded(_inner_message(part, subparts), depth)
        if part.is_multipart():
            return self._multipart(ctype, subparts, depth)
        if _is_attachment(part):
            return ""
        if ctype == "text/plain" or ctype.startswith("multipart/"):
            # A multipart whose boundary is missing arrives as one string: read it as text.
            return self._decoded(part)
        if ctype == "text/html":
            return html_to_text(self._decoded(part))
        return ""

    def _multipart(self, ctype: str, subparts: list[Message], depth: int) -> str:
        if ctype == "multipart/alternative":
            # RFC 2046 §5.1.4: the parts say the same thing. Plain text is what the sender
            # typed; HTML has layout to undo, so it is only the fallback.
            for sub in subparts:
                if content_type(sub) == "text/plain" and not _is_attachment(sub):
                    text = self.text_of(sub, depth + 1)
                    if text.strip():
                        return text
            for sub in reversed(subparts):
                text = self.text_of(sub, depth + 1)
                if text.strip():
                    return text
            return ""
        if ctype == "multipart/report":
            # RFC 6522 §3: the first part is for people, the rest for programs.
            return self.text_of(subparts[0], depth + 1) if subparts else ""
        texts = (self.text_of(sub, depth + 1) for sub in subparts)
        return "\n\n".join(text for text in texts if text.strip())

    def _forwarded(self, inner: Message, depth: int) -> str:
        raw = raw_headers_of(inner)
        lines = ["---------- Forwarded message ---------"]
        for name in ("from", "date", "subject", "to"):
            if name in raw:
                decoded = decode_header(name, raw[name], self.factory)
                lines.append(f"{name.title()}: {clean_line(decoded)}")
        return "\n".join(lines) + "\n\n" + self.text_of(inner, depth + 1)

    def _decoded(self, part: Message) -> str:
        data = payload_bytes(part)
        text, _ = decode_bytes(data, param(part, "charset"), self.notes)
        if len(text) > self.max_part_chars:
            text = text[: self.max_part_chars]
        if _looks_binary(text):
            self.notes.append("a text part holds binary data; it was left out")
            return ""
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if (param(part, "format") or "").lower() == "flowed":
            text = _unflow(text, delsp=(param(part, "delsp") or "").lower() == "yes")
        return text


def _inner_message(part: Message, subparts: list[Message]) -> Message:
    if subparts:
        return subparts[0]
    # RFC 2046 §5.2.1 forbids encoding message/rfc822, but some clients base64 it anyway.
    return email.message_from_bytes(payload_bytes(part), policy=_POLICY)


def _looks_binary(text: str) -> bool:
    sample = text[:4096]
    if not sample:
        return False
    odd = sum(1 for c in sample if c == "\ufffd" or (c < " " and c not in "\t\n\r\f"))
    return odd > len(sample) // 10


def _unflow(text: str, *, delsp: bool) -> str:
    """Join RFC 3676 format=flowed soft line breaks (§4.2), keeping quote depth (§4.5)."""
    out: list[str] = []
    buffer = ""
    depth = -1
    joining = False
    for line in text.split("\n"):
        content = line.lstrip(">")
        line_depth = len(line) - len(content)
        if content.startswith(" "):  # §4.4 space-stuffing
            content = content[1:]
        if joining and line_depth == depth:
            buffer += content
        else:
            if joining:
                out.append(_quoted(depth, buffer))
            buffer, depth = content, line_depth
        # §4.3: a trailing space marks a soft break, except on the "-- " signature line.
        joining = content.endswith(" ") and content != "-- "
        if joining:
            if delsp:
                buffer = buffer[:-1]
        else:
            out.append(_quoted(depth, buffer))
            buffer = ""
    if joining:
        out.append(_quoted(depth, buffer))
    return "\n".join(out)


def _quoted(depth: int, text: str) -> str:
    return (">" * depth + " " + text) if depth > 0 else text


def calendar_parts(msg: Message) -> Iterator[bytes]:
    # Answers forwarded to us count (some clients wrap a reply in message/rfc822; the
    # coordinator checks that the answering attendee is who sent it), but nothing inside
    # a delivery report: that is our own invitation coming back (RFC 3464).
    is_report = content_type(msg) == "multipart/report"
    for part in walk(msg, into_messages=not is_report):
        if content_type(part) in ("text/calendar", "application/ics"):
            data = payload_bytes(part)
            if data.strip():
                yield data


def walk(part: Message, depth: int = 0, *, into_messages: bool = True) -> Iterator[Message]:
    """Every part, depth-limited (``Message.walk`` recurses without a limit)."""
    yield part
    if depth >= MAX_DEPTH:
        return
    if not into_messages and content_type(part).startswith("message/"):
        return
    for sub in subparts_of(part):
        yield from walk(sub, depth + 1, into_messages=into_messages)


_DEFECT_NOTES = {
    "StartBoundaryNotFoundDefect": "a multipart body has no start boundary",
    "CloseBoundaryNotFoundDefect": "a multipart body is not closed (the message may be cut off)",
    "NoBoundaryInMultipartDefect": "a multipart part has no boundary; it was read as text",
    "MissingHeaderBodySeparatorDefect": "headers and body run together without a blank line",
    "MultipartInvariantViolationDefect": "a part says multipart but is not",
    "InvalidBase64PaddingDefect": "base64 text has wrong padding",
    "InvalidBase64CharactersDefect": "base64 text has invalid characters",
    "InvalidBase64LengthDefect": "base64 text has an impossible length",
    "FirstHeaderLineIsContinuationDefect": "the first header line is a continuation",
    "MisplacedEnvelopeHeaderDefect": "an mbox 'From ' line sits among the headers",
    "InvalidMultipartContentTransferEncodingDefect": "a multipart has a transfer encoding",
}


def mime_defects(msg: Message) -> Iterator[str]:
    for part in walk(msg):
        for defect in getattr(part, "defects", ()):
            name = type(defect).__name__
            readable = re.sub(r"(?<!^)(?=[A-Z])", " ", name.removesuffix("Defect")).lower()
            yield "MIME: " + _DEFECT_NOTES.get(name, readable)
