"""Raw RFC 5322 bytes → ``ParsedMessage``: plain data the rest of mentordesk can trust.

``parse_message`` never raises. People send malformed MIME, mislabelled charsets,
binary junk and mail with half its headers missing; each problem becomes a note in
``ParsedMessage.defects`` and the best reading of what is left. The module is pure: no
I/O, no clock, the same bytes always give the same result.

The stdlib ``email`` package (``policy=default``) does the MIME work. Header values are
read raw and decoded here, because the policy's lazy header objects raise on some
malformed input (a CR/LF inside an encoded display name, for one). The policy's header
factory parses a header once however often it is read (``mentordesk.mime.READ``);
unstructured headers without encoded words need no parsing at all.
"""

from __future__ import annotations

import codecs
import email
import email.header
import email.parser
import email.utils
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import AddressHeader, HeaderRegistry, UnstructuredHeader
from email.message import Message
from email.policy import default as _POLICY
from html.parser import HTMLParser
from types import MappingProxyType
from typing import Any

from ..mime import READ

__all__ = [
    "BOUNCE_SUBJECT",
    "DeliveryReport",
    "ParsedMessage",
    "html_to_text",
    "parse_message",
    "strip_reply",
]


@dataclass(frozen=True)
class DeliveryReport:
    """An RFC 3464 delivery status notification, or a plain-text bounce we recognise."""

    failed_recipients: tuple[str, ...]  # lower-case addresses; () when none could be read
    original_message_id: str | None  # Message-ID of our message it returns, if found
    permanent: bool  # 5.x.x / "failed" → True; 4.x.x "delayed" → False
    diagnostic: str


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


# Subjects MTAs and Exchange give bounces. Shared with classify so both agree.
BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:undelivered mail returned to sender|undeliverable\b|undelivered\b"
    r"|delivery status notification \((?:failure|delay)\)|mail delivery failed"
    r"|delivery failure|failure notice|returned mail\b|mail system error"
    r"|unzustellbar\b|non remis\b|onbestelbaar\b|no se puede entregar\b)",
    re.IGNORECASE,
)

_MAX_DEPTH = 25  # MIME nesting we follow; deeper is an attack or a broken generator
_MAX_HEADER_CHARS = 4_000  # per header value kept in ParsedMessage.headers
_SYNTHETIC_DOMAIN = "mentordesk.invalid"  # RFC 2606 reserves .invalid

_MSG_ID = re.compile(r"<([^<>\s]+)>")
_BARE_MSG_ID = re.compile(r"^[^<>\s@]+@[^<>\s@]+$")
_ADDRESS = re.compile(r"^[^\s@<>()\[\]\\,;:\"]+@[^\s@<>()\[\]\\,;:\"]+$")
# C0 and C1 controls, DEL, and the Unicode line/paragraph separators that some
# renderers treat as newlines — none may reach a header we write (header injection).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_WHITESPACE = re.compile(r"\s+")
_SURROGATE = re.compile("[\ud800-\udfff]")

# What makes header objects: ``header_factory`` of an email policy.
HeaderFactory = Callable[[str, Any], Any]
# Which class the email package uses for which header.
_REGISTRY = HeaderRegistry()
# "Name <address>" and "address" in their plainest form (words; RFC 5322 dot-atoms): what
# the address header classes read in them is plain to see.
_ATOM = r"[A-Za-z0-9_+-]+"
_DOT_ATOM_ADDRESS = rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_PLAIN_NAMED = re.compile(rf"([A-Za-z0-9]+(?: [A-Za-z0-9]+)*) <({_DOT_ATOM_ADDRESS})>")
_PLAIN_BARE = re.compile(_DOT_ATOM_ADDRESS)


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
        defects=(_clean_line(note)[:500],),
    )


def _parse(data: bytes, max_body_chars: int) -> ParsedMessage:
    factory = READ.header_factory
    msg = email.message_from_bytes(data, policy=READ)
    notes: list[str] = []
    raw_headers = _raw_headers(msg)

    message_id = _message_id(raw_headers.get("message-id"))
    if message_id is None:
        notes.append("no usable Message-ID header; using a hash of the message instead")
        message_id = _synthetic_id(data)

    from_ = _addresses("from", raw_headers.get("from"), factory)
    if not from_ or not from_[0][1]:
        notes.append("no readable sender address in From")
    sender_name, sender = from_[0] if from_ else ("", "")
    reply_to = [
        addr for _, addr in _addresses("reply-to", raw_headers.get("reply-to"), factory) if addr
    ]
    recipients = _unique(
        addr
        for name in ("to", "cc")
        for _, addr in _addresses(name, raw_headers.get(name), factory)
        if addr
    )

    headers = {
        name: _clean_line(_decode_header(name, value, factory))[:_MAX_HEADER_CHARS]
        for name, value in raw_headers.items()
    }
    subject = headers.get("subject", "")

    body = _Body(max_body_chars * 4, notes, factory)
    text = _tidy_body(body.text_of(msg, 0))
    if len(text) > max_body_chars:
        notes.append(f"body text cut to {max_body_chars} characters")
        text = text[:max_body_chars]
    in_reply_to = _msg_ids(raw_headers.get("in-reply-to"))
    new_text = strip_reply(text, forwarded=_is_forward_subject(subject))

    report = _delivery_report(msg, text, subject, sender, headers, in_reply_to)

    for defect in _mime_defects(msg):
        notes.append(defect)

    return ParsedMessage(
        message_id=message_id,
        sender=sender,
        sender_name=sender_name,
        reply_to=reply_to[0] if reply_to else None,
        recipients=recipients,
        subject=subject,
        in_reply_to=in_reply_to,
        references=_msg_ids(raw_headers.get("references")),
        date_utc=_date_utc(raw_headers.get("date")),
        headers=MappingProxyType(headers),
        text=text,
        new_text=new_text,
        delivery_report=report,
        calendar_parts=tuple(_calendar_parts(msg)),
        defects=tuple(dict.fromkeys(notes)),
    )


def _synthetic_id(data: bytes) -> str:
    return f"<{hashlib.sha256(data).hexdigest()}@{_SYNTHETIC_DOMAIN}>"


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


# --- headers ---------------------------------------------------------------------------


def _raw_headers(msg: Message) -> dict[str, str]:
    """Lower-case name → first raw value, with 8-bit bytes decoded and folding undone.

    The first occurrence is the topmost, i.e. the one added last in transit, which for
    trace fields such as Authentication-Results is the one our own server wrote.
    """
    result: dict[str, str] = {}
    for name, value in msg.raw_items():
        key = str(name).strip().lower()
        if key and key not in result:
            # RFC 5322 §2.2.3: unfolding removes CRLF before whitespace.
            result[key] = re.sub(r"\r?\n(?=[ \t])", "", _from_surrogates(str(value)))
    return result


def _from_surrogates(value: str) -> str:
    """Undo the surrogateescape that ``message_from_bytes`` applies to raw 8-bit headers.

    RFC 5322 headers are ASCII, but UTF-8 (RFC 6532) and legacy 8-bit headers are common.
    """
    if not any("\udc80" <= char <= "\udcff" for char in value):
        return value
    data = value.encode("ascii", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _decode_header(name: str, value: str, factory: HeaderFactory = _POLICY.header_factory) -> str:
    """Decode RFC 2047 encoded-words; fall back to a lenient decoder the policy can't manage."""
    if "=?" not in value and not _SURROGATE.search(value) and _is_unstructured(name):
        # What the header class would give: with no encoded word (and no undecodable
        # byte), unstructured text reads as it is written (Received, X-… and the like).
        return value
    if _plain_mailbox(value) is not None and _is_address_header(name):
        return value  # likewise: the class writes a plain mailbox back as it is
    try:
        return str(factory(name, value))
    except Exception:  # malformed beyond what the policy tolerates; read it ourselves
        return _decode_words(value)


def _plain_mailbox(value: str) -> tuple[str, str] | None:
    """(display name, address) of a mailbox written in its plainest form, else None."""
    if named := _PLAIN_NAMED.fullmatch(value):
        return named.group(1), named.group(2)
    if _PLAIN_BARE.fullmatch(value):
        return "", value
    return None


def _is_address_header(name: str) -> bool:
    cls = _REGISTRY.registry.get(name.lower(), _REGISTRY.default_class)
    return issubclass(cls, AddressHeader)


def _is_unstructured(name: str) -> bool:
    """Whether the email package reads header ``name`` as unstructured text."""
    cls = _REGISTRY.registry.get(name.lower(), _REGISTRY.default_class)
    return issubclass(cls, UnstructuredHeader)


def _decode_words(value: str) -> str:
    try:
        parts = email.header.decode_header(value)
    except Exception:  # not even RFC 2047 can read it: keep it as it came
        return value
    return "".join(
        _decode_bytes(chunk, charset, [])[0] if isinstance(chunk, bytes) else chunk
        for chunk, charset in parts
    )


def _clean_line(value: str) -> str:
    """One line of text: controls dropped, whitespace runs collapsed (no header injection)."""
    return _WHITESPACE.sub(" ", _CONTROL.sub(" ", value)).strip()


def _addresses(
    name: str, value: str | None, factory: HeaderFactory = _POLICY.header_factory
) -> list[tuple[str, str]]:
    """(display name, lower-case address) pairs; the address is "" when unusable."""
    if not value:
        return []
    pairs: list[tuple[str, str]]
    plain = _plain_mailbox(value)
    if plain is not None:
        pairs = [plain]  # what the header class would read in it
    else:
        try:
            header = factory(name, value)
            pairs = [(a.display_name, a.addr_spec) for a in header.addresses]
        except Exception:  # e.g. an encoded CR/LF in a display name; RFC 5322 parse by hand
            pairs = [(_decode_words(n), a) for n, a in email.utils.getaddresses([value])]
    return [(_clean_line(display)[:200], _clean_address(addr)) for display, addr in pairs]


def _clean_address(addr: str) -> str:
    addr = addr.strip().strip("<>").strip().lower()
    return addr if _ADDRESS.match(addr) and not _CONTROL.search(addr) else ""


def _message_id(value: str | None) -> str | None:
    """RFC 5322 §3.6.4 msg-id, normalised to ``<left@right>``; None if there is none."""
    ids = _msg_ids(value)
    return ids[0] if ids else None


def _msg_ids(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    value = _CONTROL.sub(" ", value)
    found = [f"<{m}>" for m in _MSG_ID.findall(value)]
    if not found:
        # Some clients omit the angle brackets RFC 5322 requires; accept a lone id@host.
        found = [f"<{token}>" for token in value.split() if _BARE_MSG_ID.match(token)]
    return _unique(found)


def _date_utc(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
        if parsed.tzinfo is None:
            # RFC 5322 §3.3: "-0000" means the time is UTC with no local zone known.
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


# --- charsets --------------------------------------------------------------------------

# Labels that mail clients use for a charset Python knows under another name, or whose
# real-world content is a superset (the WHATWG Encoding Standard makes the same choices).
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "iso_8859-1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "x-sjis": "shift_jis",
    "x-mac-roman": "mac_roman",
    "utf8": "utf-8",
}
# Python text codecs that are no charset a sender could mean; decoding with them would
# interpret the text rather than just decode it.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined"})
# Encodings in which ASCII bytes do not stand for ASCII text (escape-based or wide).
_NOT_ASCII_BASED = ("iso2022", "utf-7", "utf-16", "utf-32", "hz")


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _CHARSET_ALIASES.get(label, label)
    try:
        name = codecs.lookup(label).name
        b"a".decode(name, "ignore")  # refuses bytes-to-bytes codecs such as base64, rot13
    except (LookupError, ValueError, TypeError, UnicodeError):
        return None
    return None if name in _NOT_CHARSETS else name


def _decode_bytes(data: bytes, label: str | None, notes: list[str]) -> tuple[str, str]:
    """Decode ``data`` declared as ``label``; returns (text, codec used). Never raises.

    Mislabelled mail is common: "us-ascii" or no label on UTF-8 text, "iso-8859-1" on
    UTF-8 or Windows-1252 text. Non-ASCII bytes that form valid UTF-8 are UTF-8 with near
    certainty, so UTF-8 is tried first, then the label, then the label with replacement.
    """
    codec = _codec(label)
    if label and codec is None:
        notes.append(f"unknown charset {_clean_line(label)[:40]!r}; guessed the text encoding")
    if codec and codec.startswith(_NOT_ASCII_BASED):
        try:
            return data.decode(codec), codec
        except (UnicodeError, LookupError, ValueError):
            pass
    elif data.isascii():
        return data.decode("ascii"), "ascii"
    fallback = codec if codec not in (None, "ascii") else "cp1252"
    for name in dict.fromkeys(["utf-8", fallback]):
        try:
            return data.decode(name), name
        except (UnicodeError, LookupError, ValueError):
            continue
    notes.append(f"text is not valid {fallback}; unreadable bytes replaced")
    try:
        return data.decode(fallback, "replace"), fallback
    except (UnicodeError, LookupError, ValueError):
        return data.decode("latin-1"), "latin-1"


# --- bodies ----------------------------------------------------------------------------


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "text/plain"


def _param(part: Message, name: str) -> str | None:
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


def _payload_bytes(part: Message) -> bytes:
    """The part's body with its Content-Transfer-Encoding (RFC 2045 §6) undone."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    return payload if isinstance(payload, bytes) else b""


def _subparts(part: Message) -> list[Message]:
    try:
        payload = part.get_payload()
    except Exception:
        return []
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


class _Body:
    """Walks a MIME tree and collects the text a person would read."""

    def __init__(self, max_part_chars: int, notes: list[str], factory: HeaderFactory) -> None:
        self.max_part_chars = max_part_chars
        self.notes = notes
        self.factory = factory

    def text_of(self, part: Message, depth: int) -> str:
        if depth > _MAX_DEPTH:
            self.notes.append(f"MIME parts nested deeper than {_MAX_DEPTH} levels were skipped")
            return ""
        ctype = _content_type(part)
        subparts = _subparts(part)
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
                if _content_type(sub) == "text/plain" and not _is_attachment(sub):
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
        raw = _raw_headers(inner)
        lines = ["---------- Forwarded message ---------"]
        for name in ("from", "date", "subject", "to"):
            if name in raw:
                decoded = _decode_header(name, raw[name], self.factory)
                lines.append(f"{name.title()}: {_clean_line(decoded)}")
        return "\n".join(lines) + "\n\n" + self.text_of(inner, depth + 1)

    def _decoded(self, part: Message) -> str:
        data = _payload_bytes(part)
        text, _ = _decode_bytes(data, _param(part, "charset"), self.notes)
        if len(text) > self.max_part_chars:
            text = text[: self.max_part_chars]
        if _looks_binary(text):
            self.notes.append("a text part holds binary data; it was left out")
            return ""
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if (_param(part, "format") or "").lower() == "flowed":
            text = _unflow(text, delsp=(_param(part, "delsp") or "").lower() == "yes")
        return text


def _inner_message(part: Message, subparts: list[Message]) -> Message:
    if subparts:
        return subparts[0]
    # RFC 2046 §5.2.1 forbids encoding message/rfc822, but some clients base64 it anyway.
    return email.message_from_bytes(_payload_bytes(part), policy=_POLICY)


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


def _tidy_body(text: str) -> str:
    text = re.sub(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]", "\n", text)
    text = _BODY_CONTROL.sub("", text)
    lines = [line.rstrip() for line in text.replace("\xa0", " ").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def _calendar_parts(msg: Message) -> Iterator[bytes]:
    # Answers forwarded to us count (some clients wrap a reply in message/rfc822; the
    # coordinator checks that the answering attendee is who sent it), but nothing inside
    # a delivery report: that is our own invitation coming back (RFC 3464).
    is_report = _content_type(msg) == "multipart/report"
    for part in _walk(msg, into_messages=not is_report):
        if _content_type(part) in ("text/calendar", "application/ics"):
            data = _payload_bytes(part)
            if data.strip():
                yield data


def _walk(part: Message, depth: int = 0, *, into_messages: bool = True) -> Iterator[Message]:
    """Every part, depth-limited (``Message.walk`` recurses without a limit)."""
    yield part
    if depth >= _MAX_DEPTH:
        return
    if not into_messages and _content_type(part).startswith("message/"):
        return
    for sub in _subparts(part):
        yield from _walk(sub, depth + 1, into_messages=into_messages)


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


def _mime_defects(msg: Message) -> Iterator[str]:
    for part in _walk(msg):
        for defect in getattr(part, "defects", ()):
            name = type(defect).__name__
            readable = re.sub(r"(?<!^)(?=[A-Z])", " ", name.removesuffix("Defect")).lower()
            yield "MIME: " + _DEFECT_NOTES.get(name, readable)


# --- HTML → text -----------------------------------------------------------------------

_SKIP_TAGS = frozenset({"head", "script", "style", "title", "template", "svg", "object"})
_PARAGRAPH_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "dl", "pre", "blockquote"}
)
_BLOCK_TAGS = _PARAGRAPH_TAGS | frozenset(
    {
        "address", "article", "aside", "center", "dd", "details", "dialog", "div", "dt",
        "fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "li", "main",
        "nav", "section", "summary", "tbody", "tfoot", "thead", "tr", "body", "html",
    }
)  # fmt: skip


class _HtmlText(HTMLParser):
    """Renders HTML as the lines a reader sees; <blockquote> becomes "> " quoting."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._line = ""  # the open line, without its quote prefix
        self._prefix = ""  # quote prefix of the open line
        self._breaks = 0  # line breaks owed before the next text
        self._space = False  # a cell boundary owes a space before the next text
        self._bullet = False
        self._skip: list[str] = []
        self._pre = 0
        self._quote = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":  # browsers close an unclosed <head> here
            self._skip = [t for t in self._skip if t not in ("head", "title")]
        if tag in _SKIP_TAGS:
            self._skip.append(tag)
            return
        if self._skip:
            return
        if tag == "br":
            self._end_line()
        elif tag in ("td", "th"):
            self._space = True
        elif tag in _BLOCK_TAGS:
            self._want(2 if tag in _PARAGRAPH_TAGS else 1)
            if tag == "li":
                self._bullet = True
            elif tag == "pre":
                self._pre += 1
            elif tag == "blockquote":
                self._quote += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            if tag in self._skip:
                while self._skip.pop() != tag:
                    pass
            return
        if self._skip:
            return
        if tag == "br":  # "</br>" is read as <br> by browsers too
            self._end_line()
        elif tag in _BLOCK_TAGS:
            self._want(2 if tag in _PARAGRAPH_TAGS else 1)
            if tag == "pre":
                self._pre = max(0, self._pre - 1)
            elif tag == "blockquote":
                self._quote = max(0, self._quote - 1)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        data = data.replace("\xa0", " ")
        if self._pre:
            first, *rest = data.split("\n")
            self._write(first, keep_space=True)
            for line in rest:
                self._end_line()
                self._write(line, keep_space=True)
        else:
            self._write(_WHITESPACE.sub(" ", data), keep_space=False)

    def _want(self, breaks: int) -> None:
        self._breaks = max(self._breaks, breaks)
        self._space = False

    def _end_line(self) -> None:
        self._flush()
        self.lines.append(self._prefix + self._line.rstrip() if self._line else "")
        self._line = ""
        self._breaks = 0

    def _flush(self) -> None:
        """Pay owed line breaks; a text-less block owes nothing."""
        if not self._breaks:
            return
        if self._line:
            self.lines.append(self._prefix + self._line.rstrip())
            self._line = ""
        if self.lines:
            self.lines.extend([""] * (self._breaks - 1))
        self._breaks = 0

    def _write(self, text: str, *, keep_space: bool) -> None:
        if not text.strip() and (self._breaks or not self._line):
            return  # whitespace never starts a line
        self._flush()
        if not self._line:
            text = text if keep_space else text.lstrip()
            self._prefix = "> " * min(self._quote, _MAX_DEPTH)
            if self._bullet:
                text, self._bullet = "- " + text, False
        elif self._space and not self._line.endswith(" ") and not text.startswith(" "):
            text = " " + text
        elif self._line.endswith(" ") and not keep_space:
            text = text.lstrip()
        self._space = False
        self._line += text

    def result(self) -> str:
        if self._line:
            self.lines.append(self._prefix + self._line.rstrip())
            self._line = ""
        return re.sub(r"\n{3,}", "\n\n", "\n".join(self.lines)).strip("\n")


def html_to_text(html: str) -> str:
    """Readable text of an HTML body. Never raises."""
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
        return parser.result()
    except Exception:  # html.parser is lenient, but a failure must not lose the body
        return _tidy_body(re.sub(r"<[^>]*>", " ", html))


# --- quoted history and signatures -----------------------------------------------------

_FORWARD_SUBJECT = re.compile(r"^\s*(?:fwd?|wg|tr|rv|enc|vs|fs)\s*:", re.IGNORECASE)
_FORWARD_MARKER = re.compile(
    r"^\s*(?:-{2,}\s*(?:forwarded message|weitergeleitete nachricht|message transféré"
    r"|mensaje reenviado|messaggio inoltrato)\s*-{2,}"
    r"|begin forwarded message:|anfang der weitergeleiteten nachricht:)\s*$",
    re.IGNORECASE,
)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(?:original message|ursprüngliche nachricht|message d'origine"
    r"|mensaje original|messaggio originale|oorspronkelijk bericht)\s*-{2,}\s*$",
    re.IGNORECASE,
)
# Attribution lines, "On <date>, <name> wrote:" and its translations.
_ATTRIBUTION = re.compile(
    r"^\s*(?:on\b.*\bwrote|am\b.*\bschrieb\b.*|le\b.*\ba écrit\s*|el\b.*\bescribió"
    r"|op\b.*\bschreef\b.*|il\b.*\bha scritto|em\b.*\bescreveu)\s*:\s*$",
    re.IGNORECASE,
)
_WROTE = re.compile(r"\bwrote:\s*$", re.IGNORECASE)
_HEADER_FROM = re.compile(r"^\s*\*?(?:from|von|de|da|van|från|fra)\s*:\*?\s", re.IGNORECASE)
_HEADER_SENT = re.compile(
    r"^\s*\*?(?:sent|date|gesendet|datum|envoyé|enviado|inviato|verzonden|skickat|sendt|data)"
    r"\s*:",
    re.IGNORECASE,
)
_SENT_INLINE = re.compile(r"\s(?:sent|gesendet|envoyé|enviado)\s*:", re.IGNORECASE)
_SIGNATURE = re.compile(
    r"^(?:--\s?|sent from my \w[\w ]*|get outlook for \w+|von meinem \w+ gesendet)\s*$",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(r"^\s*[_\-=*]{3,}\s*$")
_MAX_MARKER_CHARS = 400  # no attribution or marker line is longer; longer ones are text


def _is_forward_subject(subject: str) -> bool:
    return bool(_FORWARD_SUBJECT.match(subject))


def _next_lines(lines: list[str], start: int, count: int) -> list[str]:
    """Up to ``count`` non-blank lines from ``start``, looking no further than 12 lines."""
    found: list[str] = []
    for line in lines[start : start + 12]:
        if line.strip():
            found.append(line)
            if len(found) == count:
                break
    return found


def _is_header_block(lines: list[str], i: int) -> bool:
    """Outlook's "From: … / Sent: …" block that heads a quoted or forwarded message."""
    line = lines[i]
    if not _HEADER_FROM.match(line):
        return False
    return bool(_SENT_INLINE.search(line)) or any(
        _HEADER_SENT.match(nxt) for nxt in _next_lines(lines, i + 1, 4)
    )


def _is_reply_start(lines: list[str], i: int) -> bool:
    line = lines[i]
    if _ATTRIBUTION.match(line) or _ORIGINAL_MESSAGE.match(line) or _is_header_block(lines, i):
        return True
    if re.match(r"^\s*on\s", line, re.IGNORECASE):
        # Gmail wraps a long "On … wrote:" over two lines.
        following = _next_lines(lines, i + 1, 1)
        if following and _WROTE.search(following[0]):
            return bool(_ATTRIBUTION.match(line + " " + following[0].strip()))
    if _WROTE.search(line):
        # "<name> wrote:" alone counts only when quoted lines follow it.
        following = _next_lines(lines, i + 1, 1)
        return bool(following) and following[0].startswith(">")
    return False


def strip_reply(text: str, *, forwarded: bool = False) -> str:
    """``text`` without quoted history and signature; forwarded content is kept.

    Cut at the first attribution ("On … wrote:", "Am … schrieb …:"), Outlook
    "-----Original Message-----" line or "From:/Sent:" block; drop "> " lines; skip a
    signature ("-- " line, RFC 3676 §4.3) up to any forwarded message. A forward marker
    ("---------- Forwarded message ---------", "Begin forwarded message:") keeps
    everything after it. With ``forwarded`` (a Fwd:/WG: subject) Outlook's header block and
    "Original Message" line mark a forward, not a reply, since Outlook uses them for both.
    """
    lines = text.split("\n")
    kept: list[str] = []
    in_signature = False
    for i, line in enumerate(lines):
        if len(line) > _MAX_MARKER_CHARS:  # also keeps the patterns below linear
            if not in_signature and not line.lstrip().startswith(">"):
                kept.append(line)
            continue
        forward_marker = _FORWARD_MARKER.match(line) or (
            forwarded and (_ORIGINAL_MESSAGE.match(line) or _is_header_block(lines, i))
        )
        if forward_marker:
            kept.extend(lines[i:])
            break
        if _is_reply_start(lines, i):
            break
        if _SIGNATURE.match(line):
            in_signature = True
        elif not in_signature and not line.lstrip().startswith(">"):
            kept.append(line)
    while kept and (not kept[-1].strip() or _SEPARATOR.match(kept[-1])):
        kept.pop()
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n")


# --- delivery status notifications (RFC 3464) ------------------------------------------

_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")  # RFC 6533
_RETURNED_TYPES = ("text/rfc822-headers", "message/global-headers", "message/rfc822")
_BOUNCE_SENDERS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})
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


def _delivery_report(
    msg: Message,
    text: str,
    subject: str,
    sender: str,
    headers: Mapping[str, str],
    in_reply_to: tuple[str, ...],
) -> DeliveryReport | None:
    parts = list(_walk(msg, into_messages=False))
    status_part = next((p for p in parts if _content_type(p) in _STATUS_TYPES), None)
    local = sender.partition("@")[0]
    null_path = headers.get("return-path", "").replace(" ", "") == "<>"
    plain_bounce = (local in _BOUNCE_SENDERS or null_path) and bool(
        BOUNCE_SUBJECT.match(subject) or _RECIPIENT_INTRO.search(text)
    )
    if status_part is None and not plain_bounce:
        return None
    returned = next(
        (
            found
            for p in parts
            if _content_type(p) in _RETURNED_TYPES and (found := _returned_message_id(p))
        ),
        None,
    )
    # Exchange and others thread the bounce on the message it returns.
    original_id = returned or (in_reply_to[0] if in_reply_to else None)
    if status_part is not None:
        return _dsn(status_part, original_id)
    return _text_bounce(text, original_id)


def _returned_message_id(part: Message) -> str | None:
    subparts = _subparts(part)
    if subparts:
        return _message_id(_raw_headers(subparts[0]).get("message-id"))
    text, _ = _decode_bytes(_payload_bytes(part), _param(part, "charset"), [])
    match = re.search(r"^message-id:[ \t]*(.*(?:\n[ \t].*)*)", text, re.IGNORECASE | re.MULTILINE)
    return _message_id(match.group(1)) if match else None


def _dsn_blocks(part: Message) -> list[dict[str, str]]:
    """The per-message block, then one block per recipient (RFC 3464 §2.1)."""
    subparts = _subparts(part)
    if subparts:
        return [_raw_headers(block) for block in subparts]
    text, _ = _decode_bytes(_payload_bytes(part), "utf-8", [])
    parser = email.parser.HeaderParser(policy=_POLICY)
    return [
        _raw_headers(parser.parsestr(block.strip() + "\n"))
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
        diagnostic = _clean_line(block.get("diagnostic-code", "").partition(";")[2] or status)
        if action == "failed" or (not action and status.startswith("5")):
            permanent.append((address, diagnostic or "failed"))
        elif action == "delayed" or (not action and status.startswith("4")):
            delayed.append((address, diagnostic or "delayed"))
    # A report listing both: the permanent failures are the news; the delays may yet resolve.
    chosen = permanent or delayed
    return DeliveryReport(
        failed_recipients=_unique(addr for addr, _ in chosen if addr),
        original_message_id=original_id,
        permanent=bool(permanent),
        diagnostic=chosen[0][1][:500] if chosen else "no failed recipients reported",
    )


def _dsn_address(value: str | None) -> str:
    """``rfc822; user@host`` (RFC 3464 §2.3.2) → ``user@host``."""
    if not value:
        return ""
    kind, _, address = value.partition(";")
    return _clean_address(address if address else kind)


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
            recipients.append(_clean_address(match.group(1)))
        recipients.extend(_clean_address(m.rstrip(".:")) for m in _INLINE_RECIPIENT.findall(line))
    temporary = bool(_TEMPORARY.search(human)) and not re.search(
        r"\b5\.\d{1,3}\.\d{1,3}\b|permanent", human, re.IGNORECASE
    )
    # The most specific line: an enhanced status code (RFC 3463), an SMTP reply, a phrase.
    diagnostic = next(
        (
            _clean_line(line)
            for pattern in (_STATUS_CODE, _SMTP_REPLY, _PERMANENT)
            for line in lines
            if pattern.search(line)
        ),
        next((_clean_line(line) for line in lines if line.strip()), "bounce"),
    )
    return DeliveryReport(
        failed_recipients=_unique(addr for addr in recipients if addr),
        original_message_id=original_id,
        permanent=not temporary,
        diagnostic=diagnostic[:500],
    )
