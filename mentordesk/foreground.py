"""Pages first: work nobody is waiting for makes way for a person waiting on a page.

The web's pages (on the event loop), the store's writer and the drafts' thread share
one interpreter, and Python gives its threads no priorities: while a claim's emails
were composed on the writer, each step of every page being served waited its turn for
the interpreter. In bench/claims.py the claim page's p99 was 46–75 ms while the clicks
came and 116–150 ms while their emails followed them; with this, 83–94 ms (69–78 once
invitations too were written when sent).

So background work yields by itself. The web counts the pages it is serving
(``serving``); the writer marks the deferred jobs it runs and the drafts' thread the
emails it writes ahead as background (``background``); and such work calls
``make_way`` before each email it composes or writes, which pauses it for ``PAUSE_S``
while a page is being served. A page is then served with the interpreter to itself
for most of that pause; the background work goes on between pages and, under endless
pages, at one email per pause.

And the interpreter's turns are short only while someone may be waiting on them: a
thread holding the interpreter gives it up after a switch interval, 5 ms by default.
While anyone is connected to the web (``web_guard.py``, ``hold_short_turns``), that is
too long for each step of a page — reading its request, answering it — to wait behind
a thread composing mail. With nobody there, the longer turn costs less: a handover
every 0.5 ms took some 10% more of the interpreter per request in bench/intake.py.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = [
    "PAUSE_S",
    "SHORT_TURN_S",
    "background",
    "hold_short_turns",
    "in_background",
    "make_way",
    "pages_served",
    "release_short_turns",
    "serving",
    "short_turns",
]

#: How long background work pauses, at each ``make_way``, while a page is served: a few
#: of a page's steps (one takes about 0.5 ms here), less than an email costs to compose.
PAUSE_S = 0.002

# Pages being served now. Changed on the event loop only; read from any thread (an
# int read is atomic in CPython, and a stale read costs one pause at most).
_pages = 0
_thread = threading.local()

#: The interpreter's switch interval while someone waits on its turns (``short_turns``).
SHORT_TURN_S = 0.0005

# Who needs short turns now, and the switch interval to go back to when nobody does.
_short_turns = 0
_long_turn_s = sys.getswitchinterval()
_turns = threading.Lock()


@contextmanager
def serving() -> Iterator[None]:
    """Around one page being served (the web's middleware, on the event loop)."""
    global _pages
    _pages += 1
    try:
        yield
    finally:
        _pages -= 1


def hold_short_turns() -> None:
    """From now until ``release_short_turns`` (any thread; they nest), no thread holds
    the interpreter longer than ``SHORT_TURN_S`` when another wants it."""
    global _short_turns, _long_turn_s
    with _turns:
        if _short_turns == 0:
            _long_turn_s = sys.getswitchinterval()
            sys.setswitchinterval(min(_long_turn_s, SHORT_TURN_S))
        _short_turns += 1


def release_short_turns() -> None:
    """Undo one ``hold_short_turns``; the long turn is back once none is held."""
    global _short_turns
    with _turns:
        _short_turns -= 1
        if _short_turns == 0:
            sys.setswitchinterval(_long_turn_s)


@contextmanager
def short_turns() -> Iterator[None]:
    """Short turns while this runs: the writer's commits beside a compaction do not wait
    a long turn for the interpreter after each of their system calls."""
    hold_short_turns()
    try:
        yield
    finally:
        release_short_turns()


def pages_served() -> int:
    """How many pages are being served now."""
    return _pages


@contextmanager
def background() -> Iterator[None]:
    """Around work on this thread that nobody is waiting for (nests)."""
    was = in_background()
    _thread.background = True
    try:
        yield
    finally:
        _thread.background = was


def in_background() -> bool:
    return bool(getattr(_thread, "background", False))


def make_way() -> bool:
    """In background work while a page is being served: pause ``PAUSE_S`` (a sleep lets
    the interpreter go). Returns whether it paused."""
    if _pages and in_background():
        _pause(PAUSE_S)
        return True
    return False


_pause: Callable[[float], None] = time.sleep  # (tests count the pauses)
