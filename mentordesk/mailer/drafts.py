"""Emails stored as drafts and written when they are sent.

Most emails are a template and a context of plain data (names, numbers, links). The
outbox stores those as a *draft* — template, context, the header fields — and the sender
writes the bytes just before it sends them (``DraftWriter``). The journal then holds a
few hundred bytes per email instead of its ~6 KB of MIME (a third as many compactions),
and rendering, about a quarter of what a decision costs, leaves the store's writer
thread: a decision's job is shorter, and the pages and clicks that queue behind it
wait less.

A draft is written from what was stored, so it must say everything the email does: its
context is copied as JSON would give it back (``plain``), and its header fields (From,
To, Subject, Date, Message-ID, threading) are written when it is stored, which checks
them then, and kept with it. Its calendar parts and attachments (an invitation's
``invite.ics``), bytes already, are kept as written. Writing it again after a restart
gives the same email; only the MIME boundary, random as always, differs. An email whose
context holds anything else (records with methods), or with a part the direct writer
leaves to the email package, is rendered at once and stored as bytes, as all emails
were before.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import Any, cast

from .. import foreground
from ..config import ProgramConfig
from ..state.outbox_records import DRAFT
from .compose import Renderer, message_under_head

__all__ = [
    "DraftWriter",
    "NotPlain",
    "context_of",
    "new_draft",
    "plain",
    "stored_email",
    "write_draft",
]


class NotPlain(ValueError):
    """A context that JSON would not give back as it is: it is rendered at once."""


# Exact types only: a subclass (Markup, an enum, a named tuple, a record with methods)
# renders otherwise once JSON has made it a plain str, int, list or dict.
_LEAVES = frozenset({str, int, bool, type(None)})
_MAPPINGS = frozenset({dict, MappingProxyType})
_SEQUENCES = frozenset({list, tuple})


def plain(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples as lists, mappings as dicts); raises
    NotPlain for anything else, such as a record whose template calls its methods."""
    kind = type(value)
    if kind in _LEAVES:
        return value
    if kind in _MAPPINGS:
        copy = {}
        for key, item in value.items():
            if type(key) is not str:
                raise NotPlain("a mapping with keys that are not text")
            copy[key] = item if type(item) in _LEAVES else plain(item)
        return copy
    if kind in _SEQUENCES:
        return [item if type(item) in _LEAVES else plain(item) for item in value]
    if kind is float and math.isfinite(value):
        return value
    raise NotPlain(f"a {kind.__name__}")


def new_draft(
    template: str,
    context: Mapping[str, Any],
    head: bytes,
    alternatives: Sequence[bytes] = (),
    attachments: Sequence[bytes] = (),
) -> dict[str, Any]:
    """What the outbox stores of an email written later: ``context`` (``plain``) as one
    JSON text, which the store copies and journals as the string it is; its header
    fields, and its calendar parts as written (``mime_body.parts_bytes``), as they are."""
    draft: dict[str, Any] = {
        "template": template,
        "context": json.dumps(context, ensure_ascii=False, separators=(",", ":")),
        "head": head.decode("latin-1"),  # latin-1: lossless bytes in JSON
    }
    if alternatives:
        draft["alternatives"] = [part.decode("latin-1") for part in alternatives]
    if attachments:
        draft["attachments"] = [part.decode("latin-1") for part in attachments]
    return draft


def context_of(draft: Mapping[str, Any]) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(draft["context"]))


def write_draft(renderer: Renderer, program: ProgramConfig, draft: Mapping[str, Any]) -> bytes:
    """The bytes of a stored draft: its template rendered with its context, under the
    header fields written when it was stored. Raises what rendering raises (a template
    error) and ValueError."""
    rendered = renderer.render(draft["template"], {"program": program, **context_of(draft)})
    head = str(draft["head"]).encode("latin-1")
    alternatives, attachments = (
        [str(part).encode("latin-1") for part in draft.get(kind, ())]
        for kind in ("alternatives", "attachments")
    )
    return message_under_head(head, rendered.text, rendered.html, alternatives, attachments)


def _write_in_background(
    renderer: Renderer, program: ProgramConfig, draft: Mapping[str, Any]
) -> bytes:
    """``write_draft`` on the drafts' thread: nobody waits for this one email yet, so it
    makes way for pages first (``foreground.py``)."""
    with foreground.background():
        foreground.make_way()
        return write_draft(renderer, program, draft)


class DraftWriter:
    """Writes drafts for the sender: on the event loop for one email, on a thread of its
    own for a backlog (``busy``: a request's invitations, a claim's introductions), so
    that a burst of rendering shares the interpreter with the pages in slices instead
    of holding the loop for each email.

    A worker process instead of the thread was tried and measured (bench/intake.py,
    bench/claims.py): with the mail servers on the same two cores it cost about 5 ms
    more CPU per request (pickling, a second interpreter) for no more throughput."""

    def __init__(self, renderer: Renderer, program: ProgramConfig) -> None:
        self.renderer = renderer
        self.program = program
        self._thread: ThreadPoolExecutor | None = None

    async def bytes_of(self, draft: Mapping[str, Any], *, busy: bool = False) -> bytes:
        if not busy:
            return write_draft(self.renderer, self.program, draft)
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drafts")
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, _write_in_background, self.renderer, self.program, draft
        )

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True, cancel_futures=True)
            self._thread = None


def stored_email(
    doc: Mapping[str, Any], program: ProgramConfig, renderer: Renderer | None = None
) -> bytes:
    """An outbox record's email as it is sent: its bytes, or its draft written now.
    (For a record still holding either: a sent email's are let go.)"""
    if "data" in doc:
        return str(doc["data"]).encode("latin-1")
    return write_draft(renderer or _default_renderer(), program, doc[DRAFT])


@functools.cache
def _default_renderer() -> Renderer:
    """One Renderer (its templates compiled once) for ``stored_email``'s callers."""
    return Renderer()
