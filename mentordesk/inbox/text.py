"""Small text helpers the parsing modules share: one line for a header, tidy body text.

Pure functions of their input; nothing here reads a message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["CONTROL", "MAX_DEPTH", "WHITESPACE", "clean_line", "tidy_body", "unique"]


MAX_DEPTH = 25  # MIME nesting we follow; deeper is an attack or a broken generator
# C0 and C1 controls, DEL, and the Unicode line/paragraph separators that some
# renderers treat as newlines — none may reach a header we write (header injection).
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
WHITESPACE = re.compile(r"\s+")


def unique(items: Iterable[str]) -> tuple[str, ...]:
    """``items`` without repeats, in the order first seen."""
    return tuple(dict.fromkeys(items))


def clean_line(value: str) -> str:
    """One line of text: controls dropped, whitespace runs collapsed (no header injection)."""
    return WHITESPACE.sub(" ", CONTROL.sub(" ", value)).strip()


def tidy_body(text: str) -> str:
    """Body text with LF line ends, no control characters or trailing spaces, and at
    most one blank line in a row."""
    text = re.sub(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]", "\n", text)
    text = _BODY_CONTROL.sub("", text)
    lines = [line.rstrip() for line in text.replace("\xa0", " ").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
