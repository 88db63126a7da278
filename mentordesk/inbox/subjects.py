"""Subject lines: reply and forward prefixes, the request tag, the subject we answer with.

Mail clients put "Re:" or "Fwd:" in front of a subject in their user's language (RFC 5322
§3.6.5 names only "Re:"), some with a count ("Re[2]:", "Re^2:", "Re(2):"), some with a
full-width colon ("回复："). ``PREFIXES`` is the one table of them: reading a subject
(``strip_prefixes``, ``bare_subject``, ``prefix_kind``) and writing one
(``reply_subject``) both go through it, so the two cannot drift apart. Pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from ..views import tag
from .text import clean_line

__all__ = [
    "PREFIXES",
    "PrefixKind",
    "bare_subject",
    "is_forward",
    "prefix_kind",
    "reply_subject",
    "request_tag",
    "strip_prefixes",
]


class PrefixKind(StrEnum):
    """What a subject prefix says the message is."""

    REPLY = "reply"
    FORWARD = "forward"


_R, _F = PrefixKind.REPLY, PrefixKind.FORWARD

# As clients write them; matched ignoring case. Where one word is a reply in one language
# and a forward in another (Finnish "VS", vastaus, is a reply; Danish and Norwegian "VS",
# videresendt, a forward), it counts as a forward: that only keeps more of the body.
PREFIXES: Mapping[str, PrefixKind] = MappingProxyType(
    {
        # English, and what most clients write whatever their language
        "Re": _R, "Fw": _F, "Fwd": _F,
        # German
        "AW": _R, "WG": _F,
        # Dutch
        "Antw": _R, "Doorst": _F,
        # Danish, Norwegian, Swedish, Finnish, Icelandic
        "SV": _R, "Svar": _R, "VS": _F, "VB": _F, "VL": _F, "FS": _F,
        # Spanish, Portuguese
        "RV": _F, "RES": _R, "ENC": _F,
        # French
        "TR": _F, "REF": _R, "RÉF": _R,
        # Italian
        "R": _R, "RIF": _R, "I": _F,
        # Polish, Czech
        "Odp": _R, "PD": _F,
        # Turkish (both spellings of the capital i)
        "YNT": _R, "İLT": _F, "ILT": _F,
        # Hungarian
        "Vá": _R, "Továbbítás": _F,
        # Greek
        "ΑΠ": _R, "ΣΧΕΤ": _R, "ΠΡΘ": _F,
        # Hebrew
        "תגובה": _R, "הועבר": _F,
        # Chinese (simplified and traditional)
        "回复": _R, "答复": _R, "回覆": _R, "答覆": _R, "转发": _F, "轉寄": _F, "轉發": _F,
        # Japanese
        "返信": _R, "転送": _F,
        # Korean
        "회신": _R, "전달": _F,
    }
)  # fmt: skip

_KINDS = {word.casefold(): kind for word, kind in PREFIXES.items()}
_WORDS = "|".join(re.escape(word) for word in sorted(PREFIXES, key=len, reverse=True))
# One prefix: a word, an optional count, a colon (ASCII or full-width). Possessive
# quantifiers keep a long run of spaces from backtracking.
_ONE = rf"\s*+({_WORDS})\s*+(?:\[\d{{1,4}}\]|\(\d{{1,4}}\)|\^\d{{1,4}})?\s*+[:：]"
_PREFIX = re.compile(_ONE, re.IGNORECASE)
_PREFIXES = re.compile(rf"(?:{_ONE})++\s*+", re.IGNORECASE)
# The request reference, "[MD-42]", "[ md-0042 ]" or a bare "MD-0042".
_TAG = re.compile(r"\[\s*MD-(\d{1,9})\s*\]|\bMD-(\d{1,9})\b", re.IGNORECASE)


def strip_prefixes(subject: str) -> str:
    """``subject`` without the reply/forward prefixes in front of it, however many."""
    match = _PREFIXES.match(subject)
    return (subject[match.end() :] if match else subject).strip()


def prefix_kind(subject: str) -> PrefixKind | None:
    """What the first prefix of ``subject`` makes it (a reply or a forward), or None."""
    match = _PREFIX.match(subject)
    return _KINDS.get(match.group(1).casefold(), _R) if match else None


def is_forward(subject: str) -> bool:
    """Whether ``subject`` starts with a forward prefix ("Fwd:", "WG:", "TR:", …)."""
    return prefix_kind(subject) is PrefixKind.FORWARD


def request_tag(subject: str) -> int | None:
    """The request number in "[MD-42]" or "MD-0042" in ``subject``, or None."""
    match = _TAG.search(subject)
    return int(match.group(1) or match.group(2)) if match else None


def bare_subject(subject: str) -> str:
    """The subject as its writer typed it: one line, no prefixes, no ``[MD-n]`` tags.

    Prefixes and tags go in any order ("Re: [MD-3] AW: claim" → "claim").
    """
    previous = None
    text = clean_line(subject)
    while text != previous:
        previous, text = text, clean_line(_TAG.sub(" ", strip_prefixes(text)))
    return text


def reply_subject(subject: str, number: int | None = None) -> str:
    """'Re: [MD-0042] <their subject>' without piling up prefixes or tags.

    One line whatever ``subject`` holds (no header injection), and answering our own
    reply gives the same subject again.
    """
    base = bare_subject(subject) or "Your message"
    if number is not None:
        base = f"[{tag(number)}] {base}"
    return f"Re: {base}"
