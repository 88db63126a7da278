"""The web endpoint's limits on slow and numerous clients (time, size, count).

aiohttp waits for a request head as long as a client takes to send it and accepts every
connection it is offered; 1,143 connections that sent half a head and stalled took every
file descriptor, so neither the pages nor the mailbox could be served, and the errors
filled the log. ``ConnectionGuard`` sits between the listening socket and aiohttp:

* a connection must deliver a complete request head within ``header_timeout_s`` of
  connecting (or of its previous request ending, for keep-alive) or it is closed;
* a request's body must arrive within ``body_timeout_s`` once its head is in (``read_body``)
  and be at most ``max_body_bytes`` (``web.Application(client_max_size=…)``);
* at most ``max_connections`` are open: a new one beyond that closes the connection
  that has waited longest for its request head (a stalled client, not a person whose
  page is being served), or is refused when every open one is busy with a request;
* what it closes is logged as one line at most per ``log_interval_s``, with counts.

The guard is the listening socket's protocol factory: it wraps aiohttp's own protocol
and forwards every event to it. It learns when a request head is complete from its
middleware, which aiohttp runs for each request once the head is parsed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from aiohttp import web

from . import foreground

__all__ = ["WEB_LIMITS", "ConnectionGuard", "SlowRequestBody", "WebLimits"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class WebLimits:
    """How long, how big and how many, for the web endpoint's clients."""

    #: From connecting (or the end of the previous request) to a complete request head.
    header_timeout_s: float = 15.0
    #: From a complete head to a complete body.
    body_timeout_s: float = 30.0
    #: The largest request body accepted (the forms are a few hundred bytes).
    max_body_bytes: int = 64 * 1024
    #: After refusing a body (too big, too slow), how long the rest of it is read and
    #: dropped before the connection closes, so that the client can read the answer.
    linger_s: float = 1.0
    #: Open connections at most; well under the usual 1,024 file descriptors, so that
    #: the mailbox, the SMTP relay and the state always have some.
    max_connections: int = 256
    #: At most one log line per this many seconds about connections closed by force.
    log_interval_s: float = 60.0


WEB_LIMITS = WebLimits()

# Why a connection was closed; "idle" (a keep-alive connection or a browser's spare one
# that sent nothing) is ordinary and not logged.
_IDLE = "idle"
_SLOW_HEAD = "stalled in a request head"
_SLOW_BODY = "stalled in a request body"
_EVICTED = "closed for a newer connection at the cap"
_REFUSED = "refused at the cap, all busy"


class SlowRequestBody(Exception):
    """A request body did not arrive within ``body_timeout_s``; the connection closes."""


class ConnectionGuard:
    """Times, counts and sheds the connections of one web endpoint (see the module)."""

    def __init__(self, limits: WebLimits) -> None:
        self.limits = limits
        self._open: set[_GuardedConnection] = set()
        # Connections waiting for a request head, the longest-waiting first.
        self._waiting: OrderedDict[_GuardedConnection, None] = OrderedDict()
        self.peak = 0  # the most connections open at once
        self._tally: Counter[str] = Counter()
        self._next_log = 0.0
        self._flush_handle: asyncio.TimerHandle | None = None

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def protocol_factory(
        self, make_protocol: Callable[[], asyncio.Protocol]
    ) -> Callable[[], asyncio.Protocol]:
        """What ``loop.create_server`` needs: aiohttp's protocol, guarded."""
        return lambda: _GuardedConnection(self, make_protocol)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Mark the connection busy while aiohttp handles a request on it (and count the
        page as being served: background work makes way, ``foreground.py``)."""
        connection = _connection_of(request)
        if connection is not None:
            connection.busy()
        try:
            with foreground.serving():
                return await handler(request)
        finally:
            if connection is not None:
                connection.idle()

    async def read_body(self, request: web.Request) -> None:
        """Read the whole body (aiohttp keeps it for ``post()``) within ``body_timeout_s``.

        Raises SlowRequestBody (the connection is closed after the answer) or aiohttp's
        HTTPRequestEntityTooLarge.
        """
        if not request.body_exists:
            return
        try:
            async with asyncio.timeout(self.limits.body_timeout_s):
                await request.read()
        except TimeoutError:
            self.note(_SLOW_BODY)
            raise SlowRequestBody(
                f"no complete body within {self.limits.body_timeout_s}s"
            ) from None

    def close(self) -> None:
        """Log what is still uncounted; called when the endpoint stops."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()

    # --- bookkeeping (called by the connections) --------------------------------------

    def admit(self, connection: _GuardedConnection) -> bool:
        """Make room for ``connection`` or refuse it (False)."""
        if len(self._open) >= self.limits.max_connections:
            if not self._waiting:
                self.note(_REFUSED)
                return False
            oldest = next(iter(self._waiting))
            oldest.shed(_EVICTED)
        if not self._open:  # someone is here: short turns (foreground.py)
            foreground.hold_short_turns()
        self._open.add(connection)
        self.peak = max(self.peak, len(self._open))
        return True

    def waiting(self, connection: _GuardedConnection, is_waiting: bool) -> None:
        if is_waiting:
            self._waiting[connection] = None
            self._waiting.move_to_end(connection)
        else:
            self._waiting.pop(connection, None)

    def forget(self, connection: _GuardedConnection) -> None:
        if connection in self._open:
            self._open.discard(connection)
            if not self._open:
                foreground.release_short_turns()
        self._waiting.pop(connection, None)

    def note(self, reason: str) -> None:
        """Count a forced close; log at once if the last line is old enough, else later."""
        if reason == _IDLE:
            return
        self._tally[reason] += 1
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_log:
            self._flush()
        elif self._flush_handle is None:
            self._flush_handle = loop.call_at(self._next_log, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        if not self._tally:
            return
        total = sum(self._tally.values())
        reasons = ", ".join(f"{count} {why}" for why, count in sorted(self._tally.items()))
        log.warning(
            "web: closed %d connection%s (%s); %d open, at most %d; next report in %.0fs at "
            "the earliest",
            total,
            "" if total == 1 else "s",
            reasons,
            len(self._open),
            self.limits.max_connections,
            self.limits.log_interval_s,
        )
        self._tally.clear()
        try:
            self._next_log = asyncio.get_running_loop().time() + self.limits.log_interval_s
        except RuntimeError:  # closing after the loop stopped
            self._next_log = 0.0


class _GuardedConnection(asyncio.Protocol):
    """One accepted connection: aiohttp's protocol inside, a head timer outside."""

    def __init__(
        self, guard: ConnectionGuard, make_protocol: Callable[[], asyncio.Protocol]
    ) -> None:
        self._guard = guard
        self._make_protocol = make_protocol
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._partial = False  # bytes of a request head came since the last request

    # asyncio's protocol events, forwarded to aiohttp ------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # a TCP listener's: a stream
        self._transport = transport
        if not self._guard.admit(self):
            transport.abort()
            return
        self._inner = self._make_protocol()
        self._inner.connection_made(transport)
        self.idle()

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            if self._timer is not None:
                self._partial = True
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._guard.forget(self)
        if self._inner is not None:
            inner, self._inner = self._inner, None
            inner.connection_lost(exc)

    # what the guard and its middleware do -------------------------------------------------

    def busy(self) -> None:
        """A request head is complete: no head timer while it is handled."""
        self._cancel_timer()
        self._partial = False
        self._guard.waiting(self, False)

    def idle(self) -> None:
        """Waiting for the next request head, for ``header_timeout_s`` at most."""
        if self._inner is None or self._transport is None or self._transport.is_closing():
            return
        self._cancel_timer()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._guard.limits.header_timeout_s, self._too_slow)
        self._guard.waiting(self, True)

    def shed(self, reason: str) -> None:
        """Close now, counting why."""
        self._cancel_timer()
        self._guard.forget(self)
        self._guard.note(reason)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()

    def _too_slow(self) -> None:
        self._timer = None
        self.shed(_SLOW_HEAD if self._partial else _IDLE)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _connection_of(request: web.Request) -> _GuardedConnection | None:
    transport = request.transport
    protocol = transport.get_protocol() if transport is not None else None
    return protocol if isinstance(protocol, _GuardedConnection) else None
