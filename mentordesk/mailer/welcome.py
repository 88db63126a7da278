"""Welcome emails written by the program in Markdown: read, checked, filled in, rendered.

A program keeps its orientation texts next to its config (``[orientation]``); each is
Markdown with a few placeholders — ``{name}``, ``{first_name}``, ``{program}``,
``{address}`` — and ``{{``/``}}`` for a literal brace. A first line ``# Title`` is the
subject too. The HTML part is CommonMark (markdown-it-py) with raw HTML turned off, so
whatever a program's file (or a person's name) holds, tags are shown as text and
``javascript:`` links are not made; the text part is the Markdown itself, filled in.
Pure functions; ``read_welcome`` is the only one that touches a file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

__all__ = [
    "MAX_WELCOME_BYTES",
    "WELCOME_PLACEHOLDERS",
    "Welcome",
    "read_welcome",
    "render_welcome",
]

MAX_WELCOME_BYTES = 64_000
WELCOME_PLACEHOLDERS = ("name", "first_name", "program", "address")
_FIELD = re.compile(r"\{\{|\}\}|\{([^{}\n]{0,40})\}")
_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# "commonmark" with raw HTML off: <script> in a file or a name is shown, never run.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


@dataclass(frozen=True)
class Welcome:
    """One welcome email, filled in for one person."""

    subject: str
    text: str
    html: str


def read_welcome(path: Path) -> str:
    """The Markdown in ``path``, checked; ValueError saying what is wrong."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_WELCOME_BYTES + 1)
    except FileNotFoundError:
        raise ValueError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a folder, not a Markdown file") from None
    except OSError as exc:
        raise ValueError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_WELCOME_BYTES:
        raise ValueError(f"{path} is longer than {MAX_WELCOME_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    if not text.strip():
        raise ValueError(f"{path} is empty")
    for found in _FIELD.finditer(text):
        name = found.group(1)
        if name is not None and name not in WELCOME_PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in WELCOME_PLACEHOLDERS)
            raise ValueError(
                f"{path} has an unknown placeholder {{{name}}} (known: {known}; "
                "write {{ and }} for a brace)"
            )
    return text.replace("\r\n", "\n")


def _fill(text: str, values: Mapping[str, str], escape: bool) -> str:
    def value(found: re.Match[str]) -> str:
        whole, name = found.group(0), found.group(1)
        if name is None:
            return whole[0]  # {{ → {, }} → }
        filled = values.get(name, whole)
        # A name like "*Ann*" or "<b>" is text, not Markdown, in the HTML part.
        return _MARKDOWN_PUNCTUATION.sub(r"\\\1", filled) if escape else filled

    return _FIELD.sub(value, text)


def render_welcome(markdown: str, values: Mapping[str, str], default_subject: str) -> Welcome:
    """``markdown`` (from ``read_welcome``) filled in with ``values`` for one person.

    The subject is a first line ``# Title`` (filled in, on one line, at most 150
    characters), else ``default_subject``."""
    text = _fill(markdown, values, escape=False).strip() + "\n"
    first = text.split("\n", 1)[0]
    subject = default_subject
    if first.startswith("# "):
        subject = " ".join(first[2:].strip().strip("#").split())[:150] or default_subject
    html = _MARKDOWN.render(_fill(markdown, values, escape=True))
    return Welcome(subject=subject, text=text, html=html)
