"""The daemon's event loop (event_loop.py): uvloop's, which the tests run on too; and
asyncio's where uvloop is not installed."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from mentordesk import event_loop


async def test_the_tests_run_on_the_daemons_event_loop() -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    assert event_loop.loop_name() == "uvloop"


def test_the_daemon_runs_on_uvloop() -> None:
    async def which() -> type:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop())

    assert event_loop.run(which()) is uvloop.Loop


def test_without_uvloop_the_daemon_runs_on_asyncios_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop: ImportError

    async def which() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    assert event_loop.loop_name() == "asyncio"
    assert not isinstance(event_loop.run(which()), uvloop.Loop)
