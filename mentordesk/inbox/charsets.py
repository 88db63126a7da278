"""Bytes → text for mail as people send it: mislabelled, unlabelled or unknown charsets.

``decode_bytes`` never raises; each guess it had to make becomes a note for
``ParsedMessage.defects``.
"""

from __future__ import annotations

import codecs

from .text import clean_line

__all__ = ["decode_bytes"]


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


def decode_bytes(data: bytes, label: str | None, notes: list[str]) -> tuple[str, str]:
    """Decode ``data`` declared as ``label``; returns (text, codec used). Never raises.

    Mislabelled mail is common: "us-ascii" or no label on UTF-8 text, "iso-8859-1" on
    UTF-8 or Windows-1252 text. Non-ASCII bytes that form valid UTF-8 are UTF-8 with near
    certainty, so UTF-8 is tried first, then the label, then the label with replacement.
    """
    codec = _codec(label)
    if label and codec is None:
        notes.append(f"unknown charset {clean_line(label)[:40]!r}; guessed the text encoding")
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
