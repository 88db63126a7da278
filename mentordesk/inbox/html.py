"""HTML → the plain text a reader sees (``<blockquote>`` becomes "> " quoting)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from .text import MAX_DEPTH, WHITESPACE, tidy_body

__all__ = ["html_to_text"]


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
            self._write(WHITESPACE.sub(" ", data), keep_space=False)

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
            self._prefix = "> " * min(self._quote, MAX_DEPTH)
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
        return tidy_body(re.sub(r"<[^>]*>", " ", html))
