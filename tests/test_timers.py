"""The scheduler: sweep steps, daily and yearly jobs derived from stored state, failures
that stay contained, and APScheduler driving the sweep in the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from mentordesk.core import Coordinator
from mentordesk.flows.ladder import ladder_step
from mentordesk.flows.steps import register_steps
from mentordesk.flows.terms import terms_step
from mentordesk.state.store import iso
from mentordesk.timers import REGISTRY, Registry, Step, latest_occurrence, load_steps

from .timetravel import T0, Harness

NY = "America/New_York"


def test_latest_occurrence_daily_and_yearly_in_local_time() -> None:
    eight = time(8, 0)
    # T0 is Monday 17 March 2025, 10:00 in New York (UTC-4 since 9 March).
    assert latest_occurrence(T0, NY, eight) == datetime(2025, 3, 17, 12, 0, tzinfo=UTC)
    early = datetime(2025, 3, 17, 11, 59, tzinfo=UTC)  # 07:59 local
    assert latest_occurrence(early, NY, eight) == datetime(2025, 3, 16, 12, 0, tzinfo=UTC)
    # Across the spring change: 08:00 local was 13:00 UTC the day before it.
    change = datetime(2025, 3, 9, 11, 0, tzinfo=UTC)  # 07:00 EDT on the change day
    assert latest_occurrence(change, NY, eight) == datetime(2025, 3, 8, 13, 0, tzinfo=UTC)
    assert latest_occurrence(T0, NY, eight, (3, 1)) == datetime(2025, 3, 1, 13, 0, tzinfo=UTC)
    assert latest_occurrence(T0, NY, eight, (12, 24)) == datetime(2024, 12, 24, 13, 0, tzinfo=UTC)


def test_names_are_unique_and_reimports_harmless() -> None:
    registry = Registry()

    def step(coordinator: Coordinator, now: datetime) -> int:
        return 0

    def other(coordinator: Coordinator, now: datetime) -> int:
        return 0

    registry.register_sweep_step("one", step)
    registry.register_sweep_step("one", step)  # the module imported again
    with pytest.raises(ValueError, match="registered already"):
        registry.register_sweep_step("one", other)
    with pytest.raises(ValueError, match="registered already"):
        registry.register_daily("one", other)
    with pytest.raises(ValueError, match="name"):
        registry.register_yearly(" padded", other)
    assert list(registry.sweep_steps) == ["one"]


def test_the_flows_steps_are_registered_in_sweep_order() -> None:
    assert load_steps() is REGISTRY
    assert REGISTRY.sweep_steps["ladder"] is ladder_step
    assert REGISTRY.sweep_steps["terms"] is terms_step
    # A session is held before it is asked about; a term that ended hands its requests
    # back before the expiry and the ladder look at them.
    assert list(register_steps(Registry()).sweep_steps) == [
        "claim effects",  # a claim's mail left by a crash goes out before anything else
        "session reminders",
        "sessions done",
        "after the session",
        "terms",
        "pairings",
        "expiry",
        "ladder",
        "feedback round reminder",
        "archive",  # after every step that may still change what it would move
    ]
    assert list(REGISTRY.sweep_steps) == list(register_steps(Registry()).sweep_steps)
    assert {name: job.yearly for name, job in REGISTRY.calendar_jobs.items()} == {
        "digest": False,
        "feedback round": True,
    }


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    registry = Registry()
    desk = await Harness(tmp_path, registry).open()
    yield desk
    await desk.close()


def counter(name: str) -> tuple[list[datetime], Step]:
    """A step that records each run in the store (meta ``name``) and in a list."""
    runs: list[datetime] = []

    def step(coordinator: Coordinator, now: datetime) -> int:
        store = coordinator.store
        store.set_meta(name, int(store.meta(name, 0)) + 1)
        runs.append(now)
        return 1

    return runs, step


async def test_a_failing_step_is_logged_rolled_back_and_the_rest_runs(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def broken(coordinator: Coordinator, now: datetime) -> int:
        coordinator.store.set_meta("broken wrote", True)
        calls.append(now)
        raise KeyError("no such thing")

    runs, step = counter("after")
    harness.registry.register_sweep_step("broken step", broken)
    harness.registry.register_sweep_step("after", step)
    caplog.set_level(logging.INFO, logger="mentordesk.timers")
    assert await harness.sweep(minutes=1) == {"after": 1}
    assert await harness.call(harness.store.meta, "broken wrote") is None  # rolled back
    assert await harness.call(harness.store.meta, "after") == 1
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1 and "'broken step' failed" in failures[0].getMessage()
    assert failures[0].exc_info is not None  # the traceback, once
    # Still broken: one line per sweep, the rest goes on.
    caplog.clear()
    assert await harness.sweep(minutes=1) == {"after": 1}
    [again] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "still failing: KeyError" in again.getMessage() and again.exc_info is None
    assert len(calls) == 2 and len(runs) == 2


async def test_a_daily_job_runs_once_a_day_and_catches_up_once(harness: Harness) -> None:
    runs, step = counter("digest")
    harness.registry.register_daily(
        "digest",
        step,
        at=lambda config: time(8, 0),
    )
    assert await harness.sweep() == {}  # first sight, 10:00: counts from now
    harness.clock.now = T0.replace(hour=11, minute=59) + timedelta(days=1)  # 07:59 local
    assert await harness.sweep() == {}
    assert await harness.sweep(minutes=1) == {"digest": 1}
    assert await harness.sweep(minutes=1) == {}
    assert await harness.sweep(hours=12) == {}
    await harness.restart()
    assert await harness.sweep(hours=1) == {}
    harness.clock.advance(days=3)  # down for three days: one digest, not three
    await harness.restart()
    assert await harness.sweep() == {"digest": 1}
    assert await harness.sweep(minutes=5) == {}
    caught_up = harness.clock() - timedelta(minutes=5)
    assert runs == [T0.replace(hour=12, minute=0) + timedelta(days=1), caught_up]
    assert await harness.call(harness.store.meta, "timers") == {"digest": iso(caught_up)}


async def test_a_yearly_job_runs_on_its_day_and_never_for_one_before_it(
    harness: Harness,
) -> None:
    round_runs, round_step = counter("round")
    late_runs, late_step = counter("late")
    harness.registry.register_yearly(
        "round",
        round_step,
        on=lambda config: (3, 20),
        at=lambda config: time(9, 0),
    )
    # survey_date (03-01) is before T0: a daemon first started now waits for next year.
    harness.registry.register_yearly("late", late_step)
    assert await harness.sweep() == {}
    harness.clock.now = datetime(2025, 3, 20, 12, 59, tzinfo=UTC)  # 08:59 local
    assert await harness.sweep() == {}
    assert await harness.sweep(minutes=1) == {"round": 1}
    for days in (1, 100, 200):
        assert await harness.sweep(days=days) == {}
    harness.clock.now = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)  # 08:00 local, 1 March
    assert await harness.sweep() == {"late": 1}
    harness.clock.now = datetime(2026, 3, 21, tzinfo=UTC)
    assert await harness.sweep() == {"round": 1}
    assert len(round_runs) == 2 and len(late_runs) == 1
    # run_job forces one (the coordinator asked for it), and it counts as run.
    assert await harness.scheduler.run_job("late") == 1
    assert await harness.sweep(days=1) == {}


async def test_apscheduler_sweeps_in_the_loop_and_stops(harness: Harness) -> None:
    runs, step = counter("ticks")
    harness.registry.register_sweep_step("ticks", step)
    harness.registry.register_daily("digest", step)
    harness.registry.register_yearly("round", step)
    scheduler = harness.scheduler
    scheduler.start()
    try:
        jobs = {job.id: job for job in scheduler._scheduler.get_jobs()}  # type: ignore[union-attr]
        assert set(jobs) == {"sweep", "cron:digest", "cron:round"}
        assert str(jobs["cron:digest"].trigger).startswith("cron[")
        assert "hour='8', minute='0'" in str(jobs["cron:digest"].trigger)
        assert "month='3', day='1'" in str(jobs["cron:round"].trigger)
        # The first sweep runs at once (with the injected clock's time).
        deadline = asyncio.get_running_loop().time() + 10
        while not runs:
            assert asyncio.get_running_loop().time() < deadline, "no sweep ran"
            await asyncio.sleep(0.01)
        assert runs == [T0]
    finally:
        await scheduler.stop()
    assert scheduler._scheduler is None
