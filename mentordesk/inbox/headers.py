"""Header fields: raw values, RFC 2047 decoding, addresses, Message-IDs and dates.

Header values are read raw and decoded here, because the ``email`` policy's lazy header
objects raise on some malformed input (a CR/LF inside an encoded display name, for one).
The policy's header factory parses a header once however often it is read
(``mentordesk.mime.READ``); unstructured headers without encoded words need no parsing
at all.
"""

from __future__ import annotations

import email.header
import email.utils
import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.headerregistry import AddressHeader, HeaderRegistry, UnstructuredHeader
from email.message import Message
from email.policy import default as _POLICY
from typing import Any

from .charsets import decode_bytes
from .text import CONTROL, clean_line, unique

__all__ = [
    "HeaderFactory",
    "addresses",
    "clean_address",
    "date_utc",
    "decode_header",
    "first_msg_id",
    "msg_ids",
    "raw_headers_of",
]


_MSG_ID = re.compile(r"<([^<>\s]+)>")
_BARE_MSG_ID = re.compile(r"^[^<>\s@]+@[^<>\s@]+$")
_ADDRESS = re.compile(r"^[^\s@<>()\[\]\\,;:\"]+@[^\s@<>()\[\]\\,;:\"]+$")
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


def raw_headers_of(msg: Message) -> dict[str, str]:
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


def decode_header(name: str, value: str, factory: HeaderFactory = _POLICY.header_factory) -> str:
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
        decode_bytes(chunk, charset, [])[0] if isinstance(chunk, bytes) else chunk
        for chunk, charset in parts
    )


def addresses(
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
    return [(clean_line(display)[:200], clean_address(addr)) for display, addr in pairs]


def clean_address(addr: str) -> str:
    """``addr`` lower-case without angle brackets; "" unless it is a plain address."""
    addr = addr.strip().strip("<>").strip().lower()
    return addr if _ADDRESS.match(addr) and not CONTROL.search(addr) else ""


def first_msg_id(value: str | None) -> str | None:
    """RFC 5322 §3.6.4 msg-id, normalised to ``<left@right>``; None if there is none."""
    ids = msg_ids(value)
    return ids[0] if ids else None


def msg_ids(value: str | None) -> tuple[str, ...]:
    """Every msg-id in an In-Reply-To or References value, in order, each once."""
    if not value:
        return ()
    value = CONTROL.sub(" ", value)
    found = [f"<{m}>" for m in _MSG_ID.findall(value)]
    if not found:
        # Some clients omit the angle brackets RFC 5322 requires; accept a lone id@host.
        found = [f"<{token}>" for token in value.split() if _BARE_MSG_ID.match(token)]
    return unique(found)


def date_utc(value: str | None) -> datetime | None:
    """The Date header as an aware UTC datetime; None if missing or unreadable."""
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
