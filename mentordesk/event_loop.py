"""The event loop the daemon runs on: uvloop's where it is installed, else asyncio's.

The pages, the store's writer and the drafts' thread share one interpreter (see
foreground.py), so what the event loop itself costs per request is taken from all of
them. uvloop's transports and loop are written in C: in bench/claims.py, with the claims'
emails being written meanwhile, the claim page served about twice as many pages a second
(1,359–1,651 against 755–792) and its p99 fell from 73–77 to 33–41 ms. It behaves as
asyncio's loop does (a drop-in ``AbstractEventLoop``); it is not built for Windows,
where asyncio's loop is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["loop_factory", "loop_name", "run"]

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes the daemon's event loop."""
    try:
        import uvloop
    except ImportError:  # not installed (Windows): asyncio's own
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def loop_name() -> str:
    """The loop's module, for the start-up log line and the benchmarks' reports."""
    return "uvloop" if loop_factory() is not asyncio.new_event_loop else "asyncio"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the daemon's event loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
