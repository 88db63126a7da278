"""Timers: everything that happens because time passed (SPEC §3 flows 7–10, §3a, §5).

Nothing here keeps a one-shot job in memory. The daemon runs one APScheduler 3
``AsyncIOScheduler`` in its event loop with a frequent **sweep** (every
``[timers] sweep_interval``): each sweep reads the stored state and does whatever is
due by now. A restart therefore loses nothing and repeats nothing — what was done is
written down in the same transaction as the doing.

Three kinds of work plug in, each a *step*::

    fn(coordinator: Coordinator, now: datetime) -> int      # how many things it did

- ``register_sweep_step(name, fn)`` — runs on every sweep; ``fn`` looks at the state and
  acts on what is due (the ladder for unclaimed requests, mentor terms, session
  reminders, ...). It must record what it did so that the next sweep does not do it
  again.
- ``register_daily(name, fn, at=...)`` — once a day at a local time of the program's
  zone (default ``[timers] digest_time``): the coordinator's digest.
- ``register_yearly(name, fn, on=..., at=..., grace=...)`` — once a year on a month and
  day (default ``[timers] survey_date``) at a local time: the feedback round.

``at``, ``on`` and ``grace`` are functions of the Config, so a job follows the
configured value. Daily and yearly jobs are derived from stored state too: the
scheduler stores when each last ran (meta ``timers``) and runs a job when its latest
occurrence is later than that. A job seen for the first time starts counting then: it
never runs for an occurrence before it was registered (a daemon first started in June
does not start March's feedback round). Their APScheduler cron triggers only make the
sweep run on the minute the job is due.

**Late is not the same as on time** (SPEC §3a, Time). A step whose moment passed while
the daemon was down (or while the step kept failing) is done late only within its grace
window; otherwise it is skipped and written down as an audit event ``skipped: late``
(``skip_late``), which the next digest lists. A daily job runs late only on its own
local day (yesterday's digest is not sent this morning: today's covers the same
ground); a yearly job within ``grace(config)`` (the feedback round: ``[timers]
survey_grace``). The sweep steps apply their own windows (``flows/steps.py`` lists them).

Registering is done by ``mentordesk.flows.steps``, which names every step in the order a
sweep runs them; ``load_steps`` imports it when the scheduler starts. Names are unique;
registering the same function under the same name again (a re-import) is harmless.

How a step runs: on the store's writer thread (``StoreWriter.call``), inside its own
store transaction, with the sweep's single ``now`` (the daemon's injected clock). An
exception rolls that step's writes back, is logged with the step's name (the traceback
once, then a line per sweep while it keeps failing) and the sweep carries on with the
next step; the next sweep tries again. Steps run one at a time, in registration order,
and sweeps never overlap.

Tests and tools drive time themselves: build the daemon with a fake clock, advance it,
and ``await daemon.timers.sweep()``.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .config import Config
from .flows.words import span
from .state.store import Store, StoreWriter, from_iso, iso

if TYPE_CHECKING:
    from .core import Coordinator

__all__ = [
    "REGISTRY",
    "SKIPPED_LATE",
    "CalendarJob",
    "Registry",
    "Scheduler",
    "Step",
    "latest_occurrence",
    "load_steps",
    "register_daily",
    "register_sweep_step",
    "register_yearly",
    "skip_late",
    "too_late",
]

log = logging.getLogger(__name__)

Step = Callable[["Coordinator", datetime], int]
ConfigTime = Callable[[Config], time]
ConfigDay = Callable[[Config], tuple[int, int]]
ConfigGrace = Callable[[Config], timedelta]

# meta key holding {job name: ISO time it last ran (or was first seen)}.
META_KEY = "timers"
# The module that registers every step of the flows, in sweep order.
STEPS_MODULE = "mentordesk.flows.steps"
# The audit event of a step not done because its moment passed too long ago.
SKIPPED_LATE = "skipped: late"


def _digest_time(config: Config) -> time:
    return config.timers.digest_time


def _survey_date(config: Config) -> tuple[int, int]:
    return config.timers.survey_date


def _survey_grace(config: Config) -> timedelta:
    return config.timers.survey_grace


@dataclass(frozen=True)
class CalendarJob:
    """A step that runs once a day (``on`` is None) or once a year on month-day ``on``.

    ``grace``: how late an occurrence may still run; None means "on its own local day"
    (a daily job's rule).
    """

    name: str
    fn: Step
    at: ConfigTime
    on: ConfigDay | None = None
    grace: ConfigGrace | None = None

    @property
    def yearly(self) -> bool:
        return self.on is not None

    def latest(self, config: Config, now: datetime) -> datetime:
        """The latest occurrence at or before ``now`` (aware UTC)."""
        day = self.on(config) if self.on is not None else None
        return latest_occurrence(now, config.program.timezone, self.at(config), day)

    def late_until(self, config: Config, occurrence: datetime) -> datetime:
        """The last moment ``occurrence`` may still run (aware UTC)."""
        if self.grace is not None:
            return occurrence + self.grace(config)
        zone = ZoneInfo(config.program.timezone)
        day = occurrence.astimezone(zone).date() + timedelta(days=1)
        return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)

    def rule(self, config: Config) -> str:
        """The grace rule in words, for the record of a skipped occurrence."""
        if self.grace is None:
            return "a daily job runs late only on its own day"
        return f"done late only within {span(self.grace(config))}"


def latest_occurrence(
    now: datetime, zone: str, at: time, month_day: tuple[int, int] | None = None
) -> datetime:
    """The last moment at or before ``now`` when the clock in ``zone`` read ``at`` —
    on any day, or only on ``month_day`` (month, day) when given. Aware, in UTC."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)

    def on_day(day: date) -> datetime:
        return datetime.combine(day, at, tzinfo=tz).astimezone(now.tzinfo)

    if month_day is None:
        candidate = on_day(local.date())
        return candidate if candidate <= now else on_day(local.date() - timedelta(days=1))
    month, day_of_month = month_day
    candidate = on_day(date(local.year, month, day_of_month))
    return candidate if candidate <= now else on_day(date(local.year - 1, month, day_of_month))


class Registry:
    """The steps and jobs the scheduler runs, in registration order."""

    def __init__(self) -> None:
        self.sweep_steps: dict[str, Step] = {}
        self.calendar_jobs: dict[str, CalendarJob] = {}

    def register_sweep_step(self, name: str, fn: Step) -> Step:
        """Run ``fn`` on every sweep. Returns ``fn``."""
        self._check_name(name, fn)
        self.sweep_steps[name] = fn
        return fn

    def register_daily(self, name: str, fn: Step, *, at: ConfigTime = _digest_time) -> Step:
        """Run ``fn`` once a day when the program's clock reads ``at(config)``; a day's
        run missed by downtime happens later that day, or not at all."""
        self._check_name(name, fn)
        self.calendar_jobs[name] = CalendarJob(name, fn, at)
        return fn

    def register_yearly(
        self,
        name: str,
        fn: Step,
        *,
        on: ConfigDay = _survey_date,
        at: ConfigTime = _digest_time,
        grace: ConfigGrace = _survey_grace,
    ) -> Step:
        """Run ``fn`` once a year on month-day ``on(config)`` at ``at(config)``, local
        time; a run missed by downtime happens late only within ``grace(config)``."""
        self._check_name(name, fn)
        self.calendar_jobs[name] = CalendarJob(name, fn, at, on, grace)
        return fn

    def _check_name(self, name: str, fn: Step) -> None:
        if not name or name != name.strip():
            raise ValueError(f"a timer step needs a name without outer spaces, got {name!r}")
        known = self.sweep_steps.get(name) or (
            job.fn if (job := self.calendar_jobs.get(name)) else None
        )
        if known is not None and _same_function(known, fn):
            return
        if known is not None:
            raise ValueError(f"a timer step called {name!r} is registered already")


def _same_function(a: Step, b: Step) -> bool:
    """The same function, also across a re-import of its module."""
    return a is b or (
        getattr(a, "__module__", None) == getattr(b, "__module__", None)
        and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
    )


#: The registry the daemon uses unless told otherwise.
REGISTRY = Registry()
register_sweep_step = REGISTRY.register_sweep_step
register_daily = REGISTRY.register_daily
register_yearly = REGISTRY.register_yearly


def load_steps(module: str = STEPS_MODULE) -> Registry:
    """Import the module that registers the flows' steps (once); the registry."""
    importlib.import_module(module)
    return REGISTRY


# --- late steps (SPEC §3a, Time) -----------------------------------------------------------


def too_late(moment: datetime, now: datetime, grace: timedelta) -> bool:
    """Has ``moment`` passed longer ago than ``grace`` at ``now``? Then its step is
    skipped, not done late."""
    return now - moment > grace


def skip_late(
    store: Store,
    now: datetime,
    *,
    step: str,
    what: str,
    due: datetime,
    rule: str,
    **detail: Any,
) -> None:
    """Write down that ``step`` for ``what`` (a request's tag, a mentor; "" for a
    daily or yearly job) was not done: it was due at ``due``, and ``rule`` says how late
    it may be. The next digest lists it."""
    late = span(now - due)
    store.audit(
        SKIPPED_LATE, now=now, step=step, what=what, due=iso(due), late=late, rule=rule, **detail
    )
    log.info("timers: %s %s skipped, %s late (%s)", step, what, late, rule)


class Scheduler:
    """Runs the registered steps on the daemon's loop, against the stored state."""

    def __init__(
        self,
        config: Config,
        writer: StoreWriter,
        coordinator: Coordinator,
        clock: Callable[[], datetime],
        *,
        registry: Registry = REGISTRY,
        changed: Callable[[], None] = lambda: None,
        load: bool = True,
    ) -> None:
        self.config = config
        self.writer = writer
        self.coordinator = coordinator
        self.clock = clock
        self.registry = registry
        self.changed = changed  # called after a sweep that did something: mail may wait
        if load:
            load_steps()
        self._lock = asyncio.Lock()
        self._failing: dict[str, str] = {}  # step name → its last error, while failing
        self._scheduler: AsyncIOScheduler | None = None

    # Lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Schedule the sweep (now, then every sweep_interval) and the cron triggers."""
        zone = ZoneInfo(self.config.program.timezone)
        scheduler = AsyncIOScheduler(
            timezone=zone,
            event_loop=asyncio.get_running_loop(),
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        interval_s = max(1.0, self.config.timers.sweep_interval.total_seconds())
        scheduler.add_job(
            self._tick,
            IntervalTrigger(seconds=interval_s, timezone=zone),
            id="sweep",
            name="sweep",
            next_run_time=datetime.now(zone),
        )
        for job in self.registry.calendar_jobs.values():
            at = job.at(self.config)
            month_day = job.on(self.config) if job.on is not None else (None, None)
            scheduler.add_job(
                self._tick,
                CronTrigger(
                    month=month_day[0],
                    day=month_day[1],
                    hour=at.hour,
                    minute=at.minute,
                    timezone=zone,
                ),
                id=f"cron:{job.name}",
                name=job.name,
            )
        scheduler.start()
        self._scheduler = scheduler
        log.info(
            "timers: sweep every %ss (%s); %s",
            int(interval_s),
            ", ".join(self.registry.sweep_steps) or "no steps",
            ", ".join(
                f"{j.name} {'yearly' if j.yearly else 'daily'}"
                for j in self.registry.calendar_jobs.values()
            )
            or "no daily or yearly jobs",
        )

    async def stop(self) -> None:
        """No more sweeps; returns once a sweep under way has finished."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        async with self._lock:
            pass

    # Sweeping -------------------------------------------------------------------------

    async def sweep(self, now: datetime | None = None) -> dict[str, int]:
        """Run every sweep step, then every daily or yearly job that is due, at ``now``
        (default: the clock). Returns step name → actions, for the steps that ran."""
        async with self._lock:
            started = monotonic()
            moment = self.clock() if now is None else now
            done: dict[str, int] = {}
            for name, fn in list(self.registry.sweep_steps.items()):
                count = await self._guarded(name, self._run_step, fn, moment)
                if count is not None:
                    done[name] = count
            for job in list(self.registry.calendar_jobs.values()):
                count = await self._guarded(job.name, self._run_calendar_job, job, moment)
                if count is not None:
                    done[job.name] = count
            self.writer.metrics.swept(monotonic() - started)
            self.writer.health.fine("sweep")
        if any(done.values()):
            log.info(
                "sweep at %s: %s",
                iso(moment),
                ", ".join(f"{name} {count}" for name, count in done.items() if count),
            )
            self.changed()
        return done

    async def run_job(self, name: str, now: datetime | None = None) -> int:
        """Run the daily or yearly job ``name`` now, whether due or not, and record it."""
        job = self.registry.calendar_jobs[name]
        async with self._lock:
            moment = self.clock() if now is None else now
            count = await self._guarded(name, self._run_calendar_job, job, moment, True)
        if count:
            self.changed()
        return count or 0

    async def _tick(self) -> None:
        """The APScheduler job: a sweep that can never raise into the scheduler."""
        try:
            await self.sweep()
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover - sweep() guards every step already
            log.exception("timers: the sweep failed")

    async def _guarded(
        self, name: str, run: Callable[..., int | None], *args: object
    ) -> int | None:
        """Run ``run(*args)`` on the writer thread; log a failure under ``name``."""
        try:
            count = await self.writer.call(run, *args)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if self._failing.get(name) != error:
                log.exception("timer step %r failed; the next sweep tries again", name)
            else:
                log.error("timer step %r still failing: %s", name, error)
            self._failing[name] = error
            return None
        if self._failing.pop(name, None) is not None:
            log.info("timer step %r works again", name)
        return count

    # On the writer thread ------------------------------------------------------------

    def _run_step(self, fn: Step, now: datetime) -> int:
        with self.coordinator.store.transaction():
            return int(fn(self.coordinator, now))

    def _run_calendar_job(self, job: CalendarJob, now: datetime, force: bool = False) -> int | None:
        """Run ``job`` if its latest occurrence is after its last run and not too long
        ago; None if it did not run (not due, or skipped as too late)."""
        store = self.coordinator.store
        with store.transaction():
            marks = dict(store.meta(META_KEY, {}) or {})
            last = marks.get(job.name)
            if not force:
                if last is None:
                    # First sight: count from now, never for an occurrence before it.
                    marks[job.name] = iso(now)
                    store.set_meta(META_KEY, marks)
                    return None
                occurrence = job.latest(self.config, now)
                if from_iso(last) >= occurrence:
                    return None
                if now > job.late_until(self.config, occurrence):
                    # Missed while the daemon was down: skipped, and the digest says so.
                    skip_late(
                        store,
                        now,
                        step=job.name,
                        what="",
                        due=occurrence,
                        rule=job.rule(self.config),
                    )
                    marks[job.name] = iso(now)
                    store.set_meta(META_KEY, marks)
                    return None
            count = int(job.fn(self.coordinator, now))
            marks[job.name] = iso(now)
            store.set_meta(META_KEY, marks)
            return count
