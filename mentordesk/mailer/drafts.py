"""Emails stored as drafts and written when they are sent.

Most emails are a template and a context of plain data (names, numbers, links). The
outbox stores those as a *draft* — template, context, the header fields — and the sender
writes the bytes just before it sends them (``DraftWriter``), in a process of its own
when the machine has a second core. The journal then holds a few hundred bytes per email
instead of its ~6 KB of MIME, and rendering, about a third of what a decision costs,
leaves the store's writer thread and the interpreter it shares with the web pages.

A draft is written from what was stored, so it must say everything the email does: its
context is copied as JSON would give it back (``plain``), and its header fields (From,
To, Subject, Date, Message-ID, threading) are written when it is stored, which checks
them then, and kept with it. Writing it again after a restart gives the same email; only
the MIME boundary, random as always, differs. An email whose context holds anything
else (records with methods, calendar parts, attachments) is rendered at once and stored
as bytes, as all emails were before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import MappingProxyType
from typing import Any, cast

from ..config import ProgramConfig
from .compose import Renderer, message_under_head

__all__ = [
    "DraftWriter",
    "NotPlain",
    "context_of",
    "default_processes",
    "new_draft",
    "plain",
    "stored_email",
    "write_draft",
]

log = logging.getLogger(__name__)


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


def new_draft(template: str, context: Mapping[str, Any], head: bytes) -> dict[str, str]:
    """What the outbox stores of an email written later: ``context`` (``plain``) as one
    JSON text, which the store copies and journals as the string it is."""
    return {
        "template": template,
        "context": json.dumps(context, ensure_ascii=False, separators=(",", ":")),
        "head": head.decode("latin-1"),  # latin-1: lossless bytes in JSON
    }


def context_of(draft: Mapping[str, Any]) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(draft["context"]))


def write_draft(renderer: Renderer, program: ProgramConfig, draft: Mapping[str, Any]) -> bytes:
    """The bytes of a stored draft: its template rendered with its context, under the
    header fields written when it was stored. Raises what rendering raises (a template
    error) and ValueError."""
    rendered = renderer.render(draft["template"], {"program": program, **context_of(draft)})
    head = str(draft["head"]).encode("latin-1")
    return message_under_head(head, rendered.text, rendered.html)


# --- the worker process ------------------------------------------------------------------

_worker: tuple[Renderer, ProgramConfig] | None = None
# How often a worker checks that the daemon that started it is still there.
PARENT_CHECK_S = 1.0


def _start_worker(program: ProgramConfig) -> None:
    global _worker
    _worker = (Renderer(), program)
    threading.Thread(target=_end_with_parent, args=(os.getppid(),), daemon=True).start()


def _end_with_parent(parent: int) -> None:
    """A daemon killed (kill -9, a crash) cannot stop its worker: the worker notices
    that it was handed to another parent and ends, rather than wait forever."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def _write_in_worker(draft: Mapping[str, Any]) -> bytes:
    assert _worker is not None, "the worker was not started"
    renderer, program = _worker
    return write_draft(renderer, program, draft)


class DraftWriter:
    """Writes drafts for the sender: here, or in a worker process when ``processes`` is
    1 and the sender has a backlog (``busy``). A single email is written here at once,
    sooner than a message to another process and back; a burst (a request's
    invitations, a claim's introductions) goes to the second core. A worker that dies is
    replaced; its draft is written here meanwhile."""

    def __init__(self, renderer: Renderer, program: ProgramConfig, *, processes: int) -> None:
        self.renderer = renderer
        self.program = program
        self.processes = processes
        self._pool: Executor | None = None

    async def bytes_of(self, draft: Mapping[str, Any], *, busy: bool = False) -> bytes:
        if self.processes and busy:
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(self._executor(), _write_in_worker, draft)
            except BrokenProcessPool:
                log.warning("the process writing emails stopped; starting another")
                self._drop_pool()
        return write_draft(self.renderer, self.program, draft)

    def _executor(self) -> Executor:
        if self._pool is None:
            # "spawn": the daemon has threads, which a fork would copy mid-step.
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self.program,),
            )
        return self._pool

    def _drop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def default_processes() -> int:
    """One worker process where there is a second core to run it on, else none."""
    return 1 if (os.cpu_count() or 1) > 1 else 0


def stored_email(
    doc: Mapping[str, Any], program: ProgramConfig, renderer: Renderer | None = None
) -> bytes:
    """An outbox record's email as it is sent: its bytes, or its draft written now.
    (For a record still holding either: a sent email's are let go.)"""
    if "data" in doc:
        return str(doc["data"]).encode("latin-1")
    return write_draft(renderer or Renderer(), program, doc["draft"])
