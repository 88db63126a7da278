"""The store's one writer thread: every store call runs there, off the event loop."""

from __future__ import annotations

import asyncio
import functools
import gc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from ..health import Health
from ..metrics import Metrics

if TYPE_CHECKING:
    from .store import Store

__all__ = ["StoreWriter"]

P = ParamSpec("P")
T = TypeVar("T")


class StoreWriter:
    """Runs every store call on one dedicated thread: one writer, off the event loop.

    It is what the daemon's parts share, so it also carries their ``health`` (shown on
    /healthz by the web endpoint).
    """

    def __init__(self, open_store: Callable[[], Store]) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._open_store = open_store
        self.store: Store | None = None
        self.health = Health()
        self.metrics = Metrics()  # what /metrics shows

    async def start(self) -> None:
        self.store = await self.call(lambda: self._open_store())
        # The state just loaded lives as long as the process: the cyclic collector need
        # not walk its documents on every full collection, a pause that would grow with
        # the program's history. (They are plain data, freed by reference counting.)
        gc.freeze()

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def submit(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]:
        """Queue ``fn`` now without waiting for it: it runs after every call queued
        before it and before every call queued after it."""
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def close(self) -> None:
        if self.store is not None:
            await self.call(self.store.close)
            self.store = None
        self._executor.shutdown(wait=True)
