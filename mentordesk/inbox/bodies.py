"""The MIME tree: which parts a person reads, their text, calendar parts, MIME defects.

``message_tree`` builds the tree with its limits applied while it is built, never after:
the header section is cut to ``MAX_HEADER_SECTION_BYTES``/``_LINES`` and the message to
``MAX_LINES`` lines before the parser sees them, every header value is ``bounded`` as it
is read, at most ``MAX_PARTS`` parts and ``MAX_HEADER_FIELDS`` header fields are made,
and a message declaring more than ``MAX_CONTAINERS`` multipart or message parts (each
can nest one level deeper, and the email package's parser nests by recursion) is read
with its body as one text instead. Forwarded messages read a second time share the
limits, and ``MAX_REREAD_BYTES``. Nothing a message holds can make it raise
RecursionError or take memory out of proportion to its size.

``BodyReader`` walks a message (depth-limited) and collects the text a person would
read: plain text before HTML in alternatives, forwarded messages inline, attachments and
binary junk left out, RFC 3676 format=flowed joined. ``walk`` is iterative.
"""

from __future__ import annotations

import email
import email.utils
import io
import re
from collections.abc import Iterator
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import EmailPolicy
from typing import TYPE_CHECKING, Any

from .charsets import decode_bytes
from .headers import HeaderFactory, bounded, decode_header, raw_headers_of, read_header
from .html import html_to_text
from .text import MAX_DEPTH, clean_line

__all__ = [
    "MAX_CALENDAR_BYTES",
    "MAX_CALENDAR_PARTS",
    "MAX_CONTAINERS",
    "MAX_HEADER_FIELDS",
    "MAX_HEADER_SECTION_BYTES",
    "MAX_HEADER_SECTION_LINES",
    "MAX_LINES",
    "MAX_PARTS",
    "MAX_REREAD_BYTES",
    "BodyReader",
    "Limits",
    "calendar_parts",
    "content_type",
    "header_section",
    "message_tree",
    "mime_defects",
    "param",
    "payload_bytes",
    "subparts_of",
    "walk",
]

# Per message, forwarded messages included. Real mail stays far below each: a few dozen
# parts, a few hundred header fields, a header section of some 20 KB.
MAX_PARTS = 500
MAX_HEADER_FIELDS = 10_000
MAX_CONTAINERS = 100  # multipart/* and message/* parts: at most 2 × 100 + 1 levels deep
MAX_HEADER_SECTION_BYTES = 131_072  # of the top-level header section
MAX_HEADER_SECTION_LINES = 4_000
# The parser keeps every line as an object of its own (some 50 bytes more than its text):
# 10 MB of short lines took 200 MB. A 10 MB base64 attachment has 130,000 lines.
MAX_LINES = 250_000
# Bytes of message/rfc822 bodies read a second time as messages (a forward that was
# base64-encoded, or one in a message read as text), in all.
MAX_REREAD_BYTES = 2_000_000
MAX_CALENDAR_PARTS = 5
MAX_CALENDAR_BYTES = 262_144

# A Content-Type field, unfolded or not, starting a line (the parser ends lines at CR, LF
# or CRLF), and the words that make a part a container.
_CONTENT_TYPE_FIELD = re.compile(
    rb"(?:\A|(?<=[\r\n]))content-type:((?:[^\r\n]*(?:\r\n?|\n)[ \t])*[^\r\n]*)", re.I
)
_CONTAINER = re.compile(rb"multipart|message", re.I)
_CHUNK_BYTES = 1 << 20
_MAX_CUT_NOTES = 10  # notes naming a header that was cut, per message
# A line end as the parser reads one (CRLF, LF or a lone CR), and the empty line that
# ends a header section.
_LINE_END = re.compile(rb"\r\n|\n|\r(?!\n)")
_BLANK_LINE = re.compile(rb"(?:\r\n|\n|\r(?!\n))(?:\r\n|\n|\r(?!\n))")


class _OverLimit(Exception):
    """The message holds more parts or header fields than a message may."""


class Limits:
    """What one message may still make while it is read, and the notes on what it hit."""

    def __init__(self) -> None:
        self.parts_left = MAX_PARTS
        self.fields_left = MAX_HEADER_FIELDS
        self.reread_left = MAX_REREAD_BYTES
        self.fields_cut = 0
        self.flat = False  # a tree was too big to build: its body was read as one text
        self.notes: list[str] = []

    def new_part(self, policy: Any) -> EmailMessage:
        """A ``message_factory``: every part the parser makes is counted here."""
        self.parts_left -= 1
        if self.parts_left < 0:
            raise _OverLimit(f"more than {MAX_PARTS} MIME parts")
        return EmailMessage(policy=policy)

    def field(self, name: str, cut: bool) -> None:
        self.fields_left -= 1
        if self.fields_left < 0:
            raise _OverLimit(f"more than {MAX_HEADER_FIELDS} header fields")
        if cut and self.fields_cut < _MAX_CUT_NOTES:
            self.fields_cut += 1
            self.notes.append(f"the {clean_line(name)[:40]} header was too long; it was cut")


if TYPE_CHECKING:  # generic only in the type stubs
    _EmailPolicy = EmailPolicy[EmailMessage]
else:
    _EmailPolicy = EmailPolicy


class _BoundedPolicy(_EmailPolicy):
    """``mime.READ``, counting what the parser makes and bounding each header value as it is
    read (``headers.bounded``); a header the classes cannot read is given as text."""

    limits: Limits | None = None

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, value = super().header_source_parse(sourcelines)
        value, cut = bounded(value)
        if self.limits is not None:
            self.limits.field(name, cut)
        return name, value

    def header_fetch_parse(self, name: str, value: str) -> Any:
        try:
            return super().header_fetch_parse(name, value)
        except Exception:  # RecursionError on nested comments, ValueError on CR/LF, ...
            return "".join(value.splitlines())


_READ = _BoundedPolicy(header_factory=read_header)


def message_tree(data: bytes, limits: Limits) -> Message:
    """``data`` as a MIME tree, within ``limits`` (see the module docstring). Never raises
    for what the message holds; notes on what was cut go to ``limits.notes``."""
    data = _cut_lines(_cut_header_section(data, limits.notes), limits.notes)
    # clone() takes any attribute the class has; typeshed lists only EmailPolicy's own.
    policy = _READ.clone(message_factory=limits.new_part, limits=limits)  # type: ignore[call-arg]
    if _containers(data) <= MAX_CONTAINERS:
        parts_left, fields_left = limits.parts_left, limits.fields_left
        try:
            return _parsed(data, policy, headersonly=False)
        except _OverLimit as exc:
            limits.notes.append(f"MIME: {exc}; the body was read as one text")
            limits.parts_left, limits.fields_left = parts_left, fields_left
    else:
        limits.notes.append(
            f"MIME: more than {MAX_CONTAINERS} multipart or message parts; "
            "the body was read as one text"
        )
    # The header section alone: within its limits by _cut_header_section.
    limits.flat = True
    limits.parts_left = max(limits.parts_left, 1)
    limits.fields_left = max(limits.fields_left, MAX_HEADER_SECTION_LINES)
    return _parsed(data, policy, headersonly=True)


def _parsed(data: bytes, policy: _BoundedPolicy, *, headersonly: bool) -> Message:
    """``data`` parsed from a stream, a slice at a time: ``parsebytes`` would first make
    all of it one str and a StringIO (4 bytes a character), and a limit would only be hit
    once the whole message had been split into lines."""
    return BytesParser(policy=policy).parse(io.BytesIO(data), headersonly=headersonly)


def _cut_lines(data: bytes, notes: list[str]) -> bytes:
    """``data`` up to the end of its ``MAX_LINES``-th line (line ends: CRLF, LF, CR)."""
    if _line_ends(data) <= MAX_LINES:
        return data
    counted, start = 0, 0
    while counted + (ends := _line_ends(data[start : start + _CHUNK_BYTES])) < MAX_LINES:
        counted += ends
        start += _CHUNK_BYTES
    end = start
    for line_end in _LINE_END.finditer(data, start, start + _CHUNK_BYTES):
        counted += 1
        end = line_end.end()
        if counted >= MAX_LINES:
            break
    notes.append(f"the message has more than {MAX_LINES} lines; the rest was left out")
    return data[:end]


def _line_ends(data: bytes) -> int:
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _containers(data: bytes) -> int:
    """How many multipart/message Content-Type fields ``data`` may hold (an upper bound:
    lines in bodies count too), counting no further than ``MAX_CONTAINERS + 1``."""
    count = 0
    for field in _CONTENT_TYPE_FIELD.finditer(data):
        if _CONTAINER.search(field.group(1)):
            count += 1
            if count > MAX_CONTAINERS:
                break
    return count


def header_section(data: bytes) -> bytes:
    """The top-level header section of ``data``, without the empty line that ends it."""
    blank = _BLANK_LINE.search(data)
    return data[: blank.start()] if blank is not None else data


def _cut_header_section(data: bytes, notes: list[str]) -> bytes:
    """``data`` with its top-level header section cut to ``MAX_HEADER_SECTION_BYTES`` and
    ``MAX_HEADER_SECTION_LINES`` at a line end; the body after it is kept."""
    window = data[:MAX_HEADER_SECTION_BYTES]
    blank = _BLANK_LINE.search(window)
    if blank is not None or len(data) <= MAX_HEADER_SECTION_BYTES:
        head = window[: blank.start()] if blank is not None else window
        if _line_ends(head) < MAX_HEADER_SECTION_LINES:
            return data
    else:
        head = window
    kept = head
    for number, line_end in enumerate(_LINE_END.finditer(head), start=1):
        if number == MAX_HEADER_SECTION_LINES:
            kept = head[: line_end.start()]
            break
    body = _BLANK_LINE.search(data, max(len(kept) - 2, 0))
    notes.append(
        f"the header section was longer than {MAX_HEADER_SECTION_BYTES // 1024} KB or "
        f"{MAX_HEADER_SECTION_LINES} lines; the rest of it was left out"
    )
    return kept.rstrip(b"\r\n") + b"\r\n\r\n" + (data[body.end() :] if body else b"")


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


def payload_bytes(part: Message, limit: int | None = None) -> bytes:
    """The part's body with its Content-Transfer-Encoding (RFC 2045 §6) undone; the
    first ``limit`` bytes of it when ``limit`` is given.

    A base64 or quoted-printable body is cut before it is decoded (decoding 10 MB of
    base64 takes four times that in lines and copies).
    """
    try:
        encoding = _transfer_encoding(part)
        if limit is not None and encoding in _ENCODED_CHARS:
            encoded = part.get_payload()
            chars = _ENCODED_CHARS[encoding](limit)
            if isinstance(encoded, str) and len(encoded) > chars:
                cut = Message()
                cut["Content-Transfer-Encoding"] = encoding
                cut.set_payload(encoded[: encoded.rfind("\n", 0, chars) + 1])
                part = cut
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if not isinstance(payload, bytes):
        return b""
    return payload if limit is None or len(payload) <= limit else payload[:limit]


# How many characters of a transfer encoding hold ``n`` bytes, at most (RFC 2045 §6.8:
# 4 for 3, in lines of 76 and a line end; §6.7: "=XX" for a byte).
_ENCODED_CHARS = {
    "base64": lambda n: (n // 3 + 1) * 4 * 78 // 76 + 80,
    "quoted-printable": lambda n: 3 * n + 80,
}


def _transfer_encoding(part: Message) -> str:
    return str(part.get("content-transfer-encoding", "")).strip().lower()


def subparts_of(part: Message) -> list[Message]:
    """The parts directly inside ``part`` (none for a leaf or an unreadable payload)."""
    if not part.is_multipart():
        # A leaf: get_payload() would scan (and copy) its whole text for surrogates.
        return []
    try:
        payload = part.get_payload()
    except Exception:
        return []
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


class BodyReader:
    """Walks a MIME tree and collects the text a person would read.

    ``max_chars`` is shared by the whole walk: once that much text has been decoded,
    later parts are not decoded at all.
    """

    def __init__(
        self, max_chars: int, notes: list[str], factory: HeaderFactory, limits: Limits
    ) -> None:
        self.chars_left = max_chars
        self.notes = notes
        self.factory = factory
        self.limits = limits

    def text_of(self, part: Message, depth: int) -> str:
        if depth > MAX_DEPTH:
            self.notes.append(f"MIME parts nested deeper than {MAX_DEPTH} levels were skipped")
            return ""
        ctype = content_type(part)
        subparts = subparts_of(part)
        if ctype in ("message/rfc822", "message/global"):
            if not subparts and self.limits.flat:
                return self._decoded(part)  # what was too big to build once is text
            return self._forwarded(self._inner_message(part, subparts), depth)
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
                lines.append(f"{name.title()}: {clean_line(decoded)[:1000]}")
        return "\n".join(lines) + "\n\n" + self.text_of(inner, depth + 1)

    def _inner_message(self, part: Message, subparts: list[Message]) -> Message:
        if subparts:
            return subparts[0]
        # RFC 2046 §5.2.1 forbids encoding message/rfc822, but some clients base64 it
        # anyway. It is read within what is left of this message's limits.
        data = payload_bytes(part, max(min(4 * self.chars_left, self.limits.reread_left), 0))
        self.limits.reread_left -= len(data)
        return message_tree(data, self.limits)

    def _decoded(self, part: Message) -> str:
        if self.chars_left <= 0:
            self.notes.append("the message holds more text than is read; the rest was left out")
            return ""
        # A character takes at most 4 bytes in any charset a sender may name.
        data = payload_bytes(part, 4 * self.chars_left)
        text, _ = decode_bytes(data, param(part, "charset"), self.notes)
        if len(text) > self.chars_left:
            text = text[: self.chars_left]
        self.chars_left -= len(text)
        if _looks_binary(text):
            self.notes.append("a text part holds binary data; it was left out")
            return ""
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if (param(part, "format") or "").lower() == "flowed":
            text = _unflow(text, delsp=(param(part, "delsp") or "").lower() == "yes")
        return text


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
    """The first ``MAX_CALENDAR_PARTS`` calendar parts, each up to
    ``MAX_CALENDAR_BYTES`` (an answer to an invitation is a few KB; a bigger part is no
    answer, and the calendar parser would take long over it)."""
    # Answers forwarded to us count (some clients wrap a reply in message/rfc822; the
    # coordinator checks that the answering attendee is who sent it), but nothing inside
    # a delivery report: that is our own invitation coming back (RFC 3464).
    is_report = content_type(msg) == "multipart/report"
    given = 0
    for part in walk(msg, into_messages=not is_report):
        if content_type(part) in ("text/calendar", "application/ics"):
            data = payload_bytes(part, MAX_CALENDAR_BYTES + 1)
            if data.strip() and len(data) <= MAX_CALENDAR_BYTES:
                yield data
                given += 1
                if given == MAX_CALENDAR_PARTS:
                    return


def walk(part: Message, *, into_messages: bool = True) -> Iterator[Message]:
    """Every part, depth first, at most ``MAX_DEPTH`` levels down and ``MAX_PARTS`` parts
    in all (``Message.walk`` recurses without a limit). Iterative."""
    stack: list[tuple[Message, int]] = [(part, 0)]
    given = 0
    while stack and given < MAX_PARTS:
        current, depth = stack.pop()
        yield current
        given += 1
        if depth >= MAX_DEPTH:
            continue
        if not into_messages and content_type(current).startswith("message/"):
            continue
        stack.extend((sub, depth + 1) for sub in reversed(subparts_of(current)))


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
