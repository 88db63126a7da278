"""Header fields: raw values, RFC 2047 decoding, addresses, Message-IDs and dates.

Header values are read raw and decoded here, because the ``email`` policy's lazy header
objects raise on some malformed input (a CR/LF inside an encoded display name, for one).
The policy's header factory parses a header once however often it is read
(``mentordesk.mime.READ``); unstructured headers without encoded words need no parsing
at all.

Limits come before the work: the email package's header parser takes time and memory
that grow with the square of the number of encoded words (20,000 in one Subject took
3.6 GB), so ``bounded`` cuts every raw value to ``MAX_RAW_HEADER_CHARS`` and before its
``MAX_ENCODED_WORDS + 1``-th encoded word before anything decodes it, and ``read_header``
gives the header classes no more than 4,000 characters and 50 comments of it (they take
some 1.3 KB a character, and recurse into nested comments); longer structured values are
read by hand.

A sender address comes only from a parsed addr-spec, as written, that ``clean_address``
accepts: an encoded word is one atom of a display name, so what it decodes to (a CR/LF,
a ":", another address) never decides who the mail is from.
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

from ..mime import READ, HeaderClasses
from .charsets import decode_bytes
from .text import CONTROL, clean_line, unique

__all__ = [
    "MAX_ENCODED_WORDS",
    "MAX_RAW_HEADER_CHARS",
    "HeaderFactory",
    "addresses",
    "bounded",
    "clean_address",
    "date_utc",
    "decode_header",
    "first_msg_id",
    "msg_ids",
    "raw_headers_of",
    "read_header",
]

# Per header value, before any decoding. Real mail stays far below both: a long thread's
# References is a few KB, a long CJK Subject some 60 encoded words.
MAX_RAW_HEADER_CHARS = 16_384
MAX_ENCODED_WORDS = 200
# Header objects for values up to this long are shared between messages (``READ``'s
# cache keeps 1,024 of them); longer ones are made for the one message and let go.
_SHARED_MAX_CHARS = 1_000
_UNSHARED = HeaderClasses()
# What the header classes are given: no more characters than a decoded value may keep,
# and few comments.
_MAX_PARSED_CHARS = 4_000
_MAX_PARENS = 50


_MSG_ID = re.compile(r"<([^<>\s]+)>")
_BARE_MSG_ID = re.compile(r"^[^<>\s@]+@[^<>\s@]+$")
# RFC 5322 §3.2.3 atext, lower-case (addresses are lowered first), and the letters and
# digits of other scripts (RFC 6532); RFC 5321 §4.5.3.1 lengths.
_WORD_CHAR = r"(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]|[^\W_\x00-\x7f])"
_LOCAL_PART = re.compile(rf"{_WORD_CHAR}+(?:\.{_WORD_CHAR}+)*")
# A host name label (RFC 1035 §2.3.1, RFC 5890 U-labels): letters, digits, inner hyphens.
_LABEL = re.compile(r"(?!-)(?:[a-z0-9-]|[^\W_\x00-\x7f]){1,63}(?<!-)")
_MAX_LOCAL_CHARS = 64
_MAX_ADDRESS_CHARS = 254
# An RFC 2047 encoded word as the email package reads one: "=?charset?B|Q?text?=".
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?]*\?=")
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


def bounded(value: str) -> tuple[str, bool]:
    """``value`` cut before any decoding, and whether it was cut.

    At most ``MAX_RAW_HEADER_CHARS`` characters (at a space where there is one near the
    end), and nothing from the ``MAX_ENCODED_WORDS + 1``-th "=?" on. Linear in the value.
    """
    cut = False
    if len(value) > MAX_RAW_HEADER_CHARS:
        end = value.rfind(" ", MAX_RAW_HEADER_CHARS - 200, MAX_RAW_HEADER_CHARS)
        value = value[: end if end > 0 else MAX_RAW_HEADER_CHARS]
        cut = True
    at = -1
    for _ in range(MAX_ENCODED_WORDS + 1):
        at = value.find("=?", at + 1)
        if at < 0:
            break
    if at >= 0:
        value = value[:at].rstrip()
        cut = True
    return value, cut


def read_header(name: str, value: str) -> Any:
    """The header object for ``name: value`` (a ``HeaderFactory``), value bounded first.

    Short values share ``READ``'s cache; long ones are parsed for this message only, so
    the cache never holds more than 1,024 short headers' parse trees.
    """
    value, _ = bounded(value)
    if _is_unstructured(name):
        if len(value) > _MAX_PARSED_CHARS:
            end = value.rfind(" ", _MAX_PARSED_CHARS // 2, _MAX_PARSED_CHARS)
            value = value[: end if end > 0 else _MAX_PARSED_CHARS]
    elif len(value) > _MAX_PARSED_CHARS or value.count("(") > _MAX_PARENS:
        # The header classes build a token object per word (some 1.3 KB a character of
        # dense input) and read nested comments by recursion (thousands of "(" cost a
        # RecursionError and megabytes of frames). Callers read such values by hand.
        raise ValueError(f"{name}: too long or too many comments for the header classes")
    if len(value) <= _SHARED_MAX_CHARS:
        return READ.header_factory(name, value)
    return _UNSHARED(name, value)


def raw_headers_of(msg: Message) -> dict[str, str]:
    """Lower-case name → first raw value, with 8-bit bytes decoded and folding undone.

    The first occurrence is the topmost, i.e. the one added last in transit, which for
    trace fields such as Authentication-Results is the one our own server wrote. Values
    are ``bounded``.
    """
    result: dict[str, str] = {}
    for name, value in msg.raw_items():
        key = str(name).strip().lower()
        if key and key not in result:
            raw, _ = bounded(str(value))
            # RFC 5322 §2.2.3: unfolding removes CRLF before whitespace.
            result[key] = re.sub(r"\r?\n(?=[ \t])", "", _from_surrogates(raw))
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
    """Decode RFC 2047 encoded-words; fall back to a lenient decoder the policy can't manage.

    ``value`` is ``bounded`` first: what the header classes are given stays small.
    """
    value, _ = bounded(value)
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
    """(display name, lower-case address) pairs; the address is "" when unusable.

    The address is the mailbox's addr-spec as parsed and as written in ``value``: never
    text decoded from an encoded word (RFC 2047 §5: none may stand in an addr-spec, but
    the header classes decode "<=?utf-8?q?victim?=@evil.test>" all the same), and only
    when ``clean_address`` accepts it.
    """
    if not value:
        return []
    value, _ = bounded(value)
    pairs: list[tuple[str, str]]
    plain = _plain_mailbox(value)
    if plain is not None:
        pairs = [plain]  # what the header class would read in it
    else:
        try:
            header = factory(name, value)
            pairs = [(a.display_name, a.addr_spec) for a in header.addresses]
        except Exception:  # e.g. an encoded CR/LF in a display name; RFC 5322 parse by hand
            pairs = _mailboxes(value)
    written = value.lower()
    return [
        (clean_line(display)[:200], addr if addr in written else "")
        for display, addr in ((display, clean_address(addr)) for display, addr in pairs)
    ]


# What ``_mailboxes`` splits a value into; comments are dropped as they are read.
_Token = tuple[str, str]  # (kind, text): word, encoded, quoted, angle, special, space


def _mailboxes(value: str) -> list[tuple[str, str]]:
    """(display name, addr-spec) of each mailbox in an RFC 5322 §3.4 address-list, read
    by hand for values the header classes refuse.

    An encoded word is one atom of a phrase (RFC 2047 §5(3)): a ":", "<" or "@" it holds
    is text, not syntax. Comments may nest; nothing here recurses.
    """
    found: list[tuple[str, str]] = []
    phrase: list[_Token] = []
    angle: str | None = None
    for kind, text in _address_tokens(value):
        if kind == "special" and text == ":" and angle is None:
            phrase = []  # "group name:" (RFC 5322 §3.4): the members follow
        elif kind == "special":  # "," or ";" end a mailbox
            if phrase or angle is not None:
                found.append(_mailbox(phrase, angle))
            phrase, angle = [], None
        elif kind == "angle":
            angle = text if angle is None else angle
        elif angle is None:
            phrase.append((kind, text))
    if phrase or angle is not None:
        found.append(_mailbox(phrase, angle))
    return found


def _mailbox(phrase: list[_Token], angle: str | None) -> tuple[str, str]:
    if angle is None:  # a bare addr-spec: what is written, without spaces or comments
        if any(kind in ("encoded", "quoted") for kind, _ in phrase):
            return "", ""
        return "", "".join(text for kind, text in phrase if kind != "space")
    # RFC 5322 §4.4: an obsolete route ("@relay:") before the addr-spec is dropped.
    addr = angle.rpartition(":")[2]
    words: list[str] = []
    for i, (kind, text) in enumerate(phrase):
        if kind == "space":
            # RFC 2047 §6.2: space between two encoded words is not displayed.
            between = 0 < i < len(phrase) - 1 and phrase[i - 1][0] == phrase[i + 1][0] == "encoded"
            words.append("" if between else " ")
        else:
            words.append(text)
    return "".join(words).strip(), addr


def _address_tokens(value: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, end = 0, len(value)
    while i < end:
        char = value[i]
        if char.isspace():
            while i < end and value[i].isspace():
                i += 1
            tokens.append(("space", " "))
        elif char == "(":
            i = _after_comment(value, i)
        elif char == '"':
            text, i = _quoted_string(value, i)
            tokens.append(("quoted", _decode_words(text) if "=?" in text else text))
        elif char == "<":
            close = value.find(">", i + 1)
            close = end if close < 0 else close
            tokens.append(("angle", value[i + 1 : close].strip()))
            i = close + 1
        elif char in ",;:":
            tokens.append(("special", char))
            i += 1
        elif (word := _ENCODED_WORD.match(value, i)) is not None:
            tokens.append(("encoded", _decode_words(word.group())))
            i = word.end()
        else:
            start = i
            while i < end and not value[i].isspace() and value[i] not in '()"<>,;:':
                i += 1
                if value.startswith("=?", i) and _ENCODED_WORD.match(value, i):
                    break
            i = max(i, start + 1)  # a stray ">" or ")" is one character of text
            tokens.append(("word", value[start:i]))
    return tokens


def _after_comment(value: str, i: int) -> int:
    """Where the comment opening at ``value[i]`` ends (RFC 5322 §3.2.2: comments nest)."""
    depth = 0
    while i < len(value):
        char = value[i]
        if char == "\\":
            i += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


def _quoted_string(value: str, i: int) -> tuple[str, int]:
    """The text of the quoted-string opening at ``value[i]`` and where it ends."""
    text: list[str] = []
    i += 1
    while i < len(value) and value[i] != '"':
        if value[i] == "\\" and i + 1 < len(value):
            i += 1
        text.append(value[i])
        i += 1
    return "".join(text), i + 1


def clean_address(addr: str) -> str:
    """``addr`` lower-case without angle brackets; "" unless it is a plain address.

    Plain means a dot-atom local part (RFC 5322 §3.4.1) at a host name of two or more
    labels, within RFC 5321's lengths: no quoted local part, no address literal, no
    control or space anywhere, nothing that looks like an encoded word.
    """
    addr = addr.strip().strip("<>").strip().lower()
    local, at, domain = addr.rpartition("@")
    if not at or len(addr) > _MAX_ADDRESS_CHARS or len(local) > _MAX_LOCAL_CHARS:
        return ""
    labels = domain.split(".")
    if len(labels) < 2 or not _LOCAL_PART.fullmatch(local) or "=?" in local:
        return ""  # "=?" is atext, but no one's address looks like an encoded word
    return addr if all(_LABEL.fullmatch(label) for label in labels) else ""


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
