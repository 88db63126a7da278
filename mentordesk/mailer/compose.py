"""Outgoing email, built in memory: templates → text + HTML → a MIME message → bytes.

Pure code: no network, no clock, no state; the only files read are the templates,
through Jinja's loader. Every piece of user text that ends up in a header goes through
``header_safe`` and every address through ``email.headerregistry.Address``, so no
subject or name can add a header line of its own.

Serialise with ``as_bytes`` only: it uses the SMTP policy (CRLF line ends) and keeps the
message-id headers exactly as written (see ``_set_msg_id_header``). ``message_bytes`` gives
the same bytes as ``as_bytes(build_message(...))`` without building the message objects,
for the outbox, which only needs the bytes: it writes the header fields here and the MIME
structure below them with ``mime_body.py``.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import secrets
import textwrap
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import jinja2

from ..mime import DEFAULT, WIRE
from .mime_body import LINE_LENGTH, mime_tree, parts_bytes

__all__ = [
    "AUTO_SUBMITTED_VALUES",
    "MAX_REFERENCES",
    "Email",
    "RenderedEmail",
    "Renderer",
    "as_bytes",
    "build_message",
    "build_references",
    "header_safe",
    "make_message_id",
    "message_bytes",
]

# RFC 3834 §5: "auto-replied" answers a message a person sent; "auto-generated" is
# everything we start ourselves (digests, reminders, claim emails).
AUTO_SUBMITTED_VALUES = frozenset({"auto-replied", "auto-generated"})

# Enough for any real thread while keeping the header small; mail clients trim long
# References the same way (RFC 5322 §3.6.4 leaves the length to the writer).
MAX_REFERENCES = 20

# A msg-id as others really write it (RFC 5322 §3.6.4, plus the obsolete forms): printable
# ASCII without spaces or angle brackets inside "<...>". We copy these from mail we
# received, so anything else is dropped rather than put into a header.
_MSG_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]{1,250}>")
# Our own ids: id-right is a domain name (RFC 5322 §3.6.4 dot-atom-text, conservatively).
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*")

# refold_source="none": headers stored with set_raw (the msg-id lists) go out as written.
# With the default ("long") the email package rewrites a line longer than 78 characters
# as RFC 2047 encoded words, and an encoded msg-id no longer matches anything, so the
# reply would fall out of its thread (Gmail's ids alone are often 70+ characters).
_WIRE_POLICY = WIRE

# The longest Subject that fits on its header line ("Subject: " + subject) unfolded.
_SHORT_SUBJECT = LINE_LENGTH - len("Subject: ")
# Display names and addresses that need no quoting or encoding (RFC 5322 atoms).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*")
_ATOM = r"[A-Za-z0-9_+-]+"
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def make_message_id(domain: str) -> str:
    """A new, globally unique ``<random@domain>`` (RFC 5322 §3.6.4).

    128 random bits make a collision as unlikely as it gets; no host name, time or
    process id leaks into the id. ``domain`` must be a plain domain name.
    """
    if not _DOMAIN.fullmatch(domain):
        raise ValueError(f"{domain!r} is not a domain name for a Message-ID")
    return f"<{_random_id_bytes().hex()}@{domain.lower()}>"


class _RandomPool:
    """The operating system's random bytes, read many ids' worth at a time: one system
    call (which lets other threads take the interpreter) per 256 ids, not one per id.
    A forked child starts with none, so no two processes give out the same bytes."""

    SIZE = 16 * 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bytes = b""
        self._at = 0  # the next unused byte
        os.register_at_fork(after_in_child=self._forget)

    def take(self, count: int) -> bytes:
        with self._lock:
            if self._at + count > len(self._bytes):
                self._bytes, self._at = secrets.token_bytes(max(self.SIZE, count)), 0
            self._at += count
            return self._bytes[self._at - count : self._at]

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._bytes, self._at = b"", 0


_POOL = _RandomPool()


def _random_id_bytes() -> bytes:
    return _POOL.take(16)


def header_safe(text: str, max_len: int = 200) -> str:
    """User text fit for one header: control characters (CR and LF included) become
    spaces, runs of whitespace collapse to one space, the ends are trimmed and the
    result is cut to at most ``max_len`` characters.

    RFC 2047 encoded words in the text are decoded first and what they hide is cleaned
    too: the email package's header classes decode ``=?utf-8?q?Eve=0D=0ABcc:..?=``
    back into a line break when the header is written (on some CPython releases), so
    the text that reaches them must hold no encoded word at all. A leftover ``=?``
    (a word that does not decode) is broken apart so it cannot form one.
    """
    text = text[: max_len * 8]  # limits before work: decoding is linear in this
    for _ in range(3):  # words that decode to words: peel a few layers, then break them
        if "=?" not in text:
            break
        text = _decode_words(text)
    # Cc covers CR, LF, NUL, DEL and the C1 range; Cs are lone surrogates (from bytes
    # decoded with surrogateescape) that could not be encoded at all. str.split() below
    # then also breaks on the Unicode line and paragraph separators.
    cleaned = "".join(" " if unicodedata.category(c) in ("Cc", "Cs") else c for c in text)
    cleaned = cleaned.replace("=?", "= ?")
    return " ".join(cleaned.split())[:max_len].rstrip()


def _decode_words(text: str) -> str:
    """``text`` with its RFC 2047 encoded words decoded (undecodable ones left as text)."""
    try:
        return str(make_header(decode_header(text)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return text


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """One email as rendered from its template pair, before it becomes MIME."""

    subject: str
    text: str
    html: str


class Renderer:
    """Renders an email from the Jinja2 templates in mentordesk/templates/email/.

    An email called ``name`` is two files: ``<name>.txt`` (which must define
    ``{% block subject %}``) and ``<name>.html``; both usually extend ``base.txt`` /
    ``base.html``. Undefined variables are errors, not empty strings; HTML is
    autoescaped and text is not.
    """

    def __init__(self, template_dir: Path | None = None) -> None:
        loader: jinja2.BaseLoader
        if template_dir is None:
            loader = jinja2.PackageLoader("mentordesk", "templates/email")
        else:
            loader = jinja2.FileSystemLoader(template_dir)
        self._env = jinja2.Environment(
            loader=loader,
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html",), default_for_string=False, default=False
            ),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            # Templates do not change under a running program: no stat() of each
            # template and its parents on every render.
            auto_reload=False,
        )
        self._env.filters["reflow"] = reflow
        self._env.filters["first_name"] = first_name

    def render(self, name: str, context: Mapping[str, Any]) -> RenderedEmail:
        """Render ``<name>.txt`` and ``<name>.html`` with ``context``.

        The subject is the txt template's ``subject`` block collapsed to one line; the
        HTML template also sees it as ``subject`` (for its <title>). Raises
        jinja2.TemplateNotFound, jinja2.UndefinedError or ValueError (no subject block).
        """
        text_template = self._env.get_template(f"{name}.txt")
        subject = self._subject(name, text_template, context)
        text = text_template.render(context).strip() + "\n"
        html = self._env.get_template(f"{name}.html").render({**context, "subject": subject})
        return RenderedEmail(subject=subject, text=text, html=html)

    def subject(self, name: str, context: Mapping[str, Any]) -> str:
        """Only the subject ``render`` would give: for an email written later."""
        return self._subject(name, self._env.get_template(f"{name}.txt"), context)

    @staticmethod
    def _subject(name: str, text_template: jinja2.Template, context: Mapping[str, Any]) -> str:
        subject_block = text_template.blocks.get("subject")
        if subject_block is None:
            raise ValueError(f"email template {name}.txt has no {{% block subject %}}")
        # Rendering the block on its own yields the subject without the rest of the
        # body; base.txt never outputs this block, so the full render omits it.
        raw_subject = "".join(subject_block(text_template.new_context(dict(context))))
        return " ".join(raw_subject.split())


def reflow(text: str, width: int = 72, indent: int = 0) -> str:
    """Re-wrap what a person wrote: paragraphs kept, their line breaks rejoined, no line
    longer than ``width``. With ``indent`` the text is meant to follow a label of that
    many characters: every line is laid out as if indented, and the first line's
    indentation is left to the label."""
    return _reflow(str(text), width, indent)


# A request's details appear in every email about it (the acknowledgement, each claim
# invitation, the introductions): wrap them once.
@functools.lru_cache(maxsize=1024)
def _reflow(text: str, width: int, indent: int) -> str:
    pad = " " * indent
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip())]
    wrapped = [
        textwrap.fill(
            p, width=width, initial_indent=pad, subsequent_indent=pad, break_on_hyphens=False
        )
        for p in paragraphs
        if p
    ]
    return f"\n{pad}\n".join(wrapped)[indent:]


def first_name(name: str) -> str:
    """What to call someone in a greeting: "Ada" for "Ada Lovelace"; titles kept whole."""
    words = name.split()
    if not words:
        return ""
    if words[0].rstrip(".").lower() in {"dr", "prof", "mr", "mrs", "ms", "mx"}:
        return name.strip()
    return words[0]


@dataclass(frozen=True)
class Email:
    """One outgoing email, as ``build_message`` and ``message_bytes`` take it.

    Names and the subject are user text (cleaned on the way out); addresses are plain
    addr-specs; ``message_id`` is our ``<...>`` msg-id; ``in_reply_to`` and
    ``references`` come from mail we received; ``date`` is aware.
    """

    from_addr: str
    from_name: str
    to: str
    to_name: str
    subject: str
    text: str
    html: str
    message_id: str
    date: datetime
    in_reply_to: str | None = None
    references: Sequence[str] = ()
    auto_submitted: str = "auto-replied"
    reply_to: str | None = None
    alternatives: Sequence[MIMEPart] = ()
    attachments: Sequence[MIMEPart] = ()
    # A one-click opt-out URL (ours, signed): List-Unsubscribe and List-Unsubscribe-Post
    # (RFC 2369, RFC 8058) for mail sent to many, such as announcements.
    list_unsubscribe: str | None = None


def build_message(email: Email) -> EmailMessage:
    """A complete message: multipart/alternative (text/plain, text/html, then
    ``alternatives``), wrapped in multipart/mixed when ``attachments`` are given.

    Names and the subject are cleaned with ``header_safe``; addresses must be plain
    addr-specs and ``message_id`` a ``<...>`` msg-id (ValueError otherwise). Ids in
    ``in_reply_to`` and ``references`` come from mail we received: malformed ones are
    left out. ``date`` must be timezone-aware. Serialise the result with ``as_bytes``.
    """
    e = email
    own_id, parent = _checked_ids(e.auto_submitted, e.date, e.message_id, e.in_reply_to)

    msg = EmailMessage(policy=DEFAULT)
    # Written by our own encoder and stored as written (see _mailbox).
    msg.set_raw("From", _mailbox("From", e.from_name, e.from_addr))
    msg.set_raw("To", _mailbox("To", e.to_name, e.to))
    if e.reply_to:
        msg.set_raw("Reply-To", _mailbox("Reply-To", "", e.reply_to))
    msg["Subject"] = header_safe(e.subject)
    msg["Date"] = format_datetime(e.date)
    _set_msg_id_header(msg, "Message-ID", [own_id])
    # RFC 5322 §3.6.4: In-Reply-To names the parent; References is the parent's
    # References followed by the parent's Message-ID.
    if parent:
        _set_msg_id_header(msg, "In-Reply-To", [parent])
    thread = build_references(e.references, parent)
    if thread:
        _set_msg_id_header(msg, "References", thread)
    msg["Auto-Submitted"] = e.auto_submitted
    # RFC 3834 §2 asks responders to stay silent on Auto-Submitted mail, but Exchange
    # and Outlook only skip their out-of-office and other automatic answers for this.
    msg["X-Auto-Response-Suppress"] = "All"
    for name, value in _list_fields(e.list_unsubscribe):
        msg[name] = value

    # Quoted-printable keeps every line 7-bit and short, so the message passes servers
    # without 8BITMIME and never exceeds RFC 5321 §4.5.3.1.6's line limit.
    msg.set_content(e.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(e.html, subtype="html", charset="utf-8", cte="quoted-printable")
    for part in msg.iter_parts():
        # RFC 2045 §4: MIME-Version belongs in the top-level header only.
        del part["MIME-Version"]
    # RFC 2046 §5.1.4: alternatives go from plainest to richest; a text/calendar part
    # (RFC 6047 §2.4) comes last.
    # (MIMEPart.attach, not msg.attach: typeshed wants the container's own class, while
    # any MIMEPart is a valid subpart.)
    for alternative in e.alternatives:
        MIMEPart.attach(msg, alternative)
    if e.attachments:
        msg.make_mixed()
        for attachment in e.attachments:
            MIMEPart.attach(msg, attachment)
    return msg


def message_bytes(email: Email) -> bytes:
    """``as_bytes(build_message(...))`` — the same arguments, checks and bytes but for the
    random MIME boundaries — without building the message objects first.

    The Subject and Date still go through the email package's header classes (RFC 2047
    encoded words, folding); the address headers are ours (``_mailbox``); the fixed
    headers and the MIME structure are written as the generator writes them, and the
    bodies are encoded by the function ``set_content`` uses. ``alternatives`` and
    ``attachments`` of the shape the program makes (``_leaf_part``) are written as they
    are; with any other the message is built and serialised the long way.
    """
    e = email
    alternatives, attachments = parts_bytes(e.alternatives), parts_bytes(e.attachments)
    if alternatives is None or attachments is None:
        return _only_our_headers(as_bytes(build_message(email)))
    return _only_our_headers(_head(e) + mime_tree(e.text, e.html, alternatives, attachments))


def message_head(email: Email) -> bytes:
    """The header fields ``message_bytes`` writes before the MIME structure, checked as
    it checks them. Raises ValueError."""
    return _only_our_headers(_head(email) + b"\r\n")[:-2]


def _head(email: Email) -> bytes:
    """``message_head`` before the last guard (its callers guard the whole message)."""
    e = email
    own_id, parent = _checked_ids(e.auto_submitted, e.date, e.message_id, e.in_reply_to)
    head = [_address_field("From", e.from_name, e.from_addr), _address_field("To", e.to_name, e.to)]
    if e.reply_to:
        head.append(_address_field("Reply-To", "", e.reply_to))
    head.append(_subject_field(header_safe(e.subject)))
    head.append(_date_field(format_datetime(e.date)))
    head.append(_msg_id_field("Message-ID", [own_id]))
    if parent:
        head.append(_msg_id_field("In-Reply-To", [parent]))
    thread = build_references(e.references, parent)
    if thread:
        head.append(_msg_id_field("References", thread))
    head.append(b"Auto-Submitted: %s\r\n" % e.auto_submitted.encode("ascii"))
    head.append(b"X-Auto-Response-Suppress: All\r\n")
    head.extend(
        b"%s: %s\r\n" % (n.encode(), v.encode()) for n, v in _list_fields(e.list_unsubscribe)
    )
    head.append(b"MIME-Version: 1.0\r\n")
    return b"".join(head)


def message_under_head(
    head: bytes,
    text: str,
    html: str,
    alternatives: Sequence[bytes] = (),
    attachments: Sequence[bytes] = (),
) -> bytes:
    """``message_bytes`` of an email whose ``message_head`` and parts (``parts_bytes``)
    were written before (a draft's, mailer/drafts.py), with its bodies now."""
    return _only_our_headers(head + mime_tree(text, html, alternatives, attachments))


# The header fields our emails carry; anything else in a written head was injected.
_OUR_FIELDS = frozenset(
    {
        b"from",
        b"to",
        b"reply-to",
        b"subject",
        b"date",
        b"message-id",
        b"in-reply-to",
        b"references",
        b"auto-submitted",
        b"x-auto-response-suppress",
        b"list-unsubscribe",
        b"list-unsubscribe-post",
        b"mime-version",
        b"content-type",
        b"content-transfer-encoding",
    }
)


# An opt-out URL we made: http(s), printable ASCII, no angle brackets; short enough that
# "List-Unsubscribe: <url>" stays one line within RFC 5322's 998 characters.
_LIST_URL = re.compile(r"https?://[!-;=?-~]{1,900}")


def _list_fields(url: str | None) -> list[tuple[str, str]]:
    """The RFC 2369 / RFC 8058 fields for a one-click opt-out at ``url`` (none for None)."""
    if url is None:
        return []
    if not _LIST_URL.fullmatch(url):
        raise ValueError("list_unsubscribe must be an http(s) URL of printable ASCII")
    return [
        ("List-Unsubscribe", f"<{url}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ]


def _only_our_headers(data: bytes) -> bytes:
    """The last guard against header injection, whatever the email package did: every
    field line of the written head is one of ours (RFC 5322 §2.2: a line that does not
    start with white space starts a field). Raises ValueError otherwise."""
    head = data.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            continue
        name = line.split(b":", 1)[0].strip().lower()
        if name not in _OUR_FIELDS:
            raise ValueError(f"refusing to send an email whose head has a line {line[:60]!r}")
    return data


def build_references(references: Sequence[str], in_reply_to: str | None = None) -> list[str]:
    """The References list for a reply: valid ids of ``references`` in order without
    repeats, then ``in_reply_to`` if not already there; past ``MAX_REFERENCES`` ids the
    first one (the thread's root) and the most recent ones are kept.

    An item may hold several whitespace-separated ids (a References header as received);
    malformed ids are dropped.
    """
    seen: set[str] = set()
    thread: list[str] = []
    for item in [*references, *([in_reply_to] if in_reply_to else [])]:
        for raw in item.split():
            msg_id = _clean_msg_id(raw)
            if msg_id is not None and msg_id not in seen:
                seen.add(msg_id)
                thread.append(msg_id)
    if len(thread) > MAX_REFERENCES:
        # Clients that thread by the root (the first id) still can; the others find the
        # parent at the end.
        thread = [thread[0], *thread[-(MAX_REFERENCES - 1) :]]
    return thread


def as_bytes(msg: EmailMessage) -> bytes:
    """The message as it goes over SMTP: CRLF line ends, 7-bit headers (RFC 5322)."""
    return msg.as_bytes(policy=_WIRE_POLICY)


def _checked_ids(
    auto_submitted: str, date: datetime, message_id: str, in_reply_to: str | None
) -> tuple[str, str | None]:
    """build_message's argument checks; the message's own id and its parent's, cleaned."""
    if auto_submitted not in AUTO_SUBMITTED_VALUES:
        raise ValueError(f"Auto-Submitted must be one of {sorted(AUTO_SUBMITTED_VALUES)}")
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("the Date of a message must be timezone-aware")
    own_id = _clean_msg_id(message_id)
    if own_id is None:
        raise ValueError(f"{message_id!r} is not a Message-ID like '<id@domain>'")
    parent = _clean_msg_id(in_reply_to) if in_reply_to else None
    return own_id, parent


def _folded(name: str, value: str | Address) -> bytes:
    """One header field as ``as_bytes`` writes it: the header class parses ``value`` as
    ``msg[name] = value`` would, and folds it for the wire."""
    _, header = _WIRE_POLICY.header_store_parse(name, value)
    return _WIRE_POLICY.fold_binary(name, header)


def _address_field(name: str, unsafe_name: str, addr_spec: str) -> bytes:
    """An address header line (with its folds), as ``_mailbox`` writes it."""
    return f"{name}: {_mailbox(name, unsafe_name, addr_spec)}\r\n".encode("ascii")


# A program writes to the same people again and again (its own From, mentors).
@functools.lru_cache(maxsize=2048)
def _mailbox(name: str, unsafe_name: str, addr_spec: str) -> str:
    """The value of the address header ``name``: one mailbox, written by our own
    encoder, whatever the email package's release would do with it (issue 14: on
    some, a long name of specials lost its quotes when folded, and the header named
    other addresses). The name is cleaned (``header_safe``); plain words go out as
    they are, a short name with specials as a quoted-string, anything else as RFC 2047
    encoded words (UTF-8, base64: no special survives), folded between words.
    ValueError unless ``addr_spec`` is exactly one plain address."""
    # The check (the name is not given to the email package): a dot-atom address is one
    # plain address as it stands; anything else is left to Address() to judge.
    if not _PLAIN_ADDRESS.fullmatch(addr_spec):
        _address("", addr_spec)
    display = header_safe(unsafe_name)
    if not display:
        return addr_spec
    width = LINE_LENGTH - len(name) - 2
    if _PLAIN_NAME.fullmatch(display) and len(display) + len(addr_spec) + 3 <= width:
        return f"{display} <{addr_spec}>"
    quoted = '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if display.isascii() and len(quoted) + len(addr_spec) + 3 <= width:
        return f"{quoted} <{addr_spec}>"
    words = _encoded_words(display)
    if len(words[-1]) + len(addr_spec) + 3 <= LINE_LENGTH - 1:
        return "\r\n ".join(words) + f" <{addr_spec}>"
    return "\r\n ".join(words) + f"\r\n <{addr_spec}>"


# Bytes of UTF-8 in one encoded word: "=?utf-8?b?" + 56 base64 characters + "?=" is 68
# characters, so even "Reply-To: " and the first word stay within 78.
_WORD_BYTES = 42


def _encoded_words(text: str) -> list[str]:
    """``text`` as RFC 2047 B-encoded words of ``_WORD_BYTES`` of UTF-8 at most, split
    between characters (§5: never inside one), after a space where there is one. The
    spaces stay inside the words: a decoder drops the folding white space between
    words (§6.2)."""
    chunks = [""]
    for char in text:
        if len((chunks[-1] + char).encode("utf-8")) > _WORD_BYTES:
            head, space, tail = chunks[-1].rpartition(" ")
            chunks[-1:] = [head + space, tail] if head else [chunks[-1], ""]
        chunks[-1] += char
    return [
        f"=?utf-8?b?{base64.b64encode(chunk.encode('utf-8')).decode('ascii')}?=" for chunk in chunks
    ]


# Every email one decision sends has the same Date (to the second).
@functools.lru_cache(maxsize=64)
def _date_field(value: str) -> bytes:
    return _folded("Date", value)


# The emails of one decision often share a subject (a request's invitations, a
# session's two invitations).
@functools.lru_cache(maxsize=256)
def _subject_field(subject: str) -> bytes:
    """The Subject header as ``_folded`` writes it. A short subject of printable ASCII
    without "=?" (which could start an encoded word) is neither encoded nor folded, so
    it goes out as it is (tests/test_compose.py checks that the two agree)."""
    if (
        subject.isascii()
        and subject.isprintable()
        and "=?" not in subject
        and 0 < len(subject) <= _SHORT_SUBJECT
    ):
        return b"Subject: %s\r\n" % subject.encode("ascii")
    return _folded("Subject", subject)


def _msg_id_field(name: str, msg_ids: Sequence[str]) -> bytes:
    """As ``_set_msg_id_header`` stores it and the wire policy writes it: one id a line."""
    return b"%s: %s\r\n" % (name.encode("ascii"), "\r\n ".join(msg_ids).encode("ascii"))


def _address(unsafe_name: str, addr_spec: str) -> Address:
    """One mailbox for an address header; ValueError unless ``addr_spec`` is exactly
    one plain address. The policy quotes or RFC 2047-encodes the name as needed."""
    try:
        # Address() refuses CR/LF and anything beyond a single addr-spec.
        return Address(display_name=header_safe(unsafe_name), addr_spec=addr_spec)
    except (ValueError, HeaderParseError) as exc:
        raise ValueError(f"{addr_spec!r} is not a plain email address: {exc}") from None


def _clean_msg_id(raw: str) -> str | None:
    """``raw`` as one ``<id>``, or None when it is not a usable msg-id."""
    text = raw.strip()
    if text and not text.startswith("<"):
        text = f"<{text}>"
    return text if _MSG_ID.fullmatch(text) else None


def _set_msg_id_header(msg: EmailMessage, name: str, msg_ids: Sequence[str]) -> None:
    """Store already-validated msg-ids one per line, untouched by the policy.

    The ids contain no whitespace (``_MSG_ID``), so the only line breaks are the folds
    written here, and each line is one id: never more than RFC 5322's 998 characters.
    """
    msg.set_raw(name, "\r\n ".join(msg_ids))
