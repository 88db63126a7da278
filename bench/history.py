"""History benchmark: does mentordesk stay flat as a program's history grows?

    .venv/bin/python bench/history.py                       # everything (a few minutes)
    .venv/bin/python bench/history.py --only events --sessions 1000,50000
    .venv/bin/python bench/history.py --docs 100000         # a shorter history

Four parts (issue 11), each printed next to its target:

- ``grow``: five years of a 2,000-mentor program, written through the store's own API as
  the daemon writes it — per request an inbound message, the request, its claim emails
  and their thread links (sent, so their bytes are dropped), the claim, a session and the
  mentor's calendar answer, the audit events, then held, asked about afterwards and
  closed — until ``--docs`` documents (default 500,000) were written. After each request
  the daemon's archive step runs as its sweep would (``flows/archiving.py``: one batch
  of history past its time to the archive on disk). It reports
  the longest single write (the writer's stall: a commit plus any compaction it
  triggered, or one archive batch; fsync off while growing) and the time one compaction
  of the grown state takes with fsync on, which the writer waits for unless compaction
  is off its path.
- ``open``: a fresh process opens the grown state: time to open and its resident memory
  (targets < 2 s, < 200 MB).
- ``events``: the cost of one event at several sizes of history (``--sessions``: states
  with that many past sessions, their requests closed, at a 2,000-mentor program's pace,
  so a larger state reaches further back; older than ``[state] archive_after`` is
  archived first, as the daemon would have): a claim through the real desks
  (booking a session, the introductions and "taken" notices), an inbound email (a new
  request, matched against 2,000 mentors) and a sweep of every timer step. Target: the
  largest history costs at most 1.5× the smallest, per event.
- ``sweep``: the steady sweep over 100,000 open requests (bench/sweep.py's state),
  median of ``--rounds`` sweeps a minute apart (target < 200 ms).

The machine may be shared: compare the ratios within one run, and run it more than once.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from mentordesk import event_loop  # noqa: E402
from mentordesk.config import Config, StateConfig, load_config  # noqa: E402
from mentordesk.core import Coordinator  # noqa: E402
from mentordesk.flows.archiving import BATCH, MAIL_KEPT, archive_once  # noqa: E402
from mentordesk.flows.steps import register_steps  # noqa: E402
from mentordesk.inbox.source import RawMessage  # noqa: E402
from mentordesk.mailer.compose import Renderer  # noqa: E402
from mentordesk.state.archive import ARCHIVED_TABLES  # noqa: E402
from mentordesk.state.db import Database  # noqa: E402
from mentordesk.state.store import Store, StoreWriter, iso  # noqa: E402
from mentordesk.timers import Registry, Scheduler  # noqa: E402

TARGET_RSS_MB = 200.0
TARGET_OPEN_S = 2.0
TARGET_STALL_MS = 50.0
TARGET_EVENT_RATIO = 1.5
TARGET_SWEEP_MS = 200.0
SKILLS = ["python", "javascript", "career advice", "devops", "data science", "design"]
NOW = datetime(2025, 6, 2, 14, 0, tzinfo=UTC)  # a Monday; no digest or survey due
EMAIL_BYTES = b"x" * 5000
WARM_UP = 3  # events run before the timed ones at each size
ARCHIVE_AFTER = StateConfig.archive_after  # the default [state] archive_after
STEADY_REQUESTS = 300  # requests' lives written after growing, fsync on
# A 2,000-mentor program's pace (grow's: ~27,700 requests in five years). The per-event
# states keep it, and reach back as far as their size needs: a larger state has a longer
# history, not a busier last quarter (ranking reads the mentors claimed lately).
PACE = timedelta(days=5 * 365) / 27_666


def verdict(figure: str, target: str, baseline: str, ok: bool) -> None:
    print(f"  {figure:<44} target {target:<12} {baseline:<30} {'MET' if ok else 'MISSED'}")


def config_in(folder: Path, *, fsync: bool) -> Config:
    path = folder / "config.toml"
    path.write_text(
        '[program]\nname = "Bench"\naddress = "mentors@program.test"\n'
        'coordinator = "coord@program.test"\nescalation = ["boss@program.test"]\n'
        f'timezone = "America/New_York"\n[state]\npath = "{folder / "state.json"}"\n'
        f"fsync = {str(fsync).lower()}\n[matching]\ninvite_count = 3\n",
        encoding="utf-8",
    )
    return load_config(path, environ={"MENTORDESK_SECRET": "bench-" * 4})


def mentor_doc(n: int, now: datetime) -> dict[str, Any]:
    return {
        "email": f"mentor{n}@example.com",
        "name": f"Mentor {n}",
        "skills": [SKILLS[n % len(SKILLS)], SKILLS[(n * 7 + 1) % len(SKILLS)]],
        "timezone": "Europe/Berlin",
        "availability": [[1, 1080, 1200], [3, 600, 720]],
        "capacity": 1000,
        "about": "",
        "status": "active",
        "term_end": iso(now + timedelta(days=3650)),
        "enrolled": iso(now - timedelta(days=1900)),
        "updated": iso(now),
    }


def request_doc(number: int, at: datetime, mentors: int) -> dict[str, Any]:
    return {
        "number": number,
        "mentee": f"mentee{number}@example.net",
        "name": f"Mentee {number}",
        "skills": [SKILLS[number % len(SKILLS)]],
        "details": "I would like a review of my first project and some advice. " * 3,
        "timezone": "America/New_York",
        "availability": [[1, 720, 840], [3, 720, 840]],
        "status": "open",
        "created": iso(at),
        "opened": iso(at),
        "updated": iso(at),
        "subject": "Mentor request",
        "source": f"<req-{number}@client.test>",
        "invited": [
            {
                "email": f"mentor{(number * 3 + k) % mentors}@example.com",
                "at": iso(at),
                "message_id": f"<inv-{number}-{k}@program.test>",
            }
            for k in range(3)
        ],
    }


def session_doc(
    number: int, mentor: str, mentee: str, at: datetime, *, created: datetime, **fields: Any
) -> dict[str, Any]:
    """Request ``number``'s 30-minute session three days after ``at``; ``fields`` (its
    status, and what happened to it) on top."""
    return {
        "uid": f"s{number}@program.test",
        "request": number,
        "mentor": mentor,
        "mentee": mentee,
        "sequence": 0,
        "created": iso(created),
        "start": iso(at + timedelta(days=3)),
        "end": iso(at + timedelta(days=3, minutes=30)),
        "answers": {},
        "declined_starts": [],
        "reminded": None,
        **fields,
    }


def past_request(store: Store, number: int, at: datetime, mentors: int) -> None:
    """One request's whole life, written as the daemon writes it (18 documents)."""
    request = request_doc(number, at, mentors)
    holder = request["invited"][0]["email"]
    with store.transaction():  # intake: the request email, matched
        store.record_message(
            f"<req-{number}@client.test>",
            key=f"imap:1:{number}",
            kind="request",
            now=at,
            request=number,
        )
        store.save_request(request)
        ids = []
        for k, invite in enumerate(request["invited"]):
            ids.append(
                store.enqueue(
                    message_id=invite["message_id"],
                    sender="mentors@program.test",
                    recipients=[invite["email"]],
                    data=EMAIL_BYTES,
                    kind="claim_invite",
                    now=at,
                    request=number,
                )
            )
            store.link_thread(invite["message_id"], kind="claim", ref={"number": number, "k": k})
        ids.append(
            store.enqueue(
                message_id=f"<ack-{number}@program.test>",
                sender="mentors@program.test",
                recipients=[request["mentee"]],
                data=EMAIL_BYTES,
                kind="ack",
                now=at,
                request=number,
            )
        )
        store.link_thread(f"<ack-{number}@program.test>", kind="request", ref=number)
        store.audit("request received", now=at, request=number)
        store.audit(
            "mentors invited",
            now=at,
            request=number,
            mentors=[i["email"] for i in request["invited"]],
        )
    store.mark_all_sent(ids, at)
    claimed_at = at + timedelta(hours=5)
    with store.transaction():  # the claim, introductions, the session proposed
        request.update(status="booked", claimed_by=holder, claimed_at=iso(claimed_at))
        store.save_request(request)
        store.audit("claimed", now=claimed_at, request=number, mentor=holder, via="link")
        ids = [
            store.enqueue(
                message_id=f"<{kind}-{number}@program.test>",
                sender="mentors@program.test",
                recipients=[holder],
                data=EMAIL_BYTES,
                kind=kind,
                now=claimed_at,
                request=number,
            )
            for kind in ("intro_mentor", "intro_mentee", "invite")
        ]
        store.save_session(
            session_doc(
                number, holder, request["mentee"], at, created=claimed_at, status="accepted"
            )
        )
    store.mark_all_sent(ids, claimed_at)
    store.record_message(
        f"<cal-{number}@client.test>",
        key=f"imap:1:c{number}",
        kind="calendar",
        now=claimed_at,
        request=number,
    )
    done = at + timedelta(days=5)
    with store.transaction():  # held, asked about afterwards, closed
        session = store.session(f"s{number}@program.test") or {}
        session.update(status="held", followup_asked=iso(done), reminded=iso(done))
        store.save_session(session)
        request.update(status="closed", updated=iso(done))
        store.save_request(request)


@contextmanager
def timed_appends() -> Iterator[list[float]]:
    """Every journal commit made inside, timed on its own (seconds, in order)."""
    appends: list[float] = []
    append = Database._append

    def timed_append(db: Database, ops: Any, undo: Any) -> None:
        began = time.perf_counter()
        append(db, ops, undo)
        appends.append(time.perf_counter() - began)

    Database._append = timed_append  # type: ignore[method-assign]
    try:
        yield appends
    finally:
        Database._append = append  # type: ignore[method-assign]


def grow(folder: Path, docs: int, mentors: int) -> dict[str, Any]:
    """Write five years of history until ``docs`` documents; the longest write."""
    store = Store(folder / "state.json", fsync=False)
    compactions: list[float] = []
    compact = Database.compact

    def timed_compact(db: Database) -> None:
        began = time.perf_counter()
        compact(db)
        compactions.append(time.perf_counter() - began)

    # Each commit timed on its own: the append, and any compaction it starts or ends.
    Database.compact = timed_compact  # type: ignore[method-assign]
    try:
        with timed_appends() as appends:
            with store.transaction():
                for n in range(mentors):
                    store.save_mentor(mentor_doc(n, NOW))
            per_request = 18
            count = max(1, (docs - mentors) // per_request)
            start = NOW - timedelta(days=5 * 365)
            step = (NOW - start) / count
            appends.clear()
            archiving: list[float] = []
            began = time.perf_counter()
            for number in range(1, count + 1):
                at = start + step * number
                past_request(store, number, at, mentors)
                # The sweep's archive step (each request here is ~1.6 hours of the program's
                # time; the daemon sweeps every minute, so it moves at least as much).
                t0 = time.perf_counter()
                archive_once(store, at, ARCHIVE_AFTER)
                archiving.append(time.perf_counter() - t0)
            elapsed = time.perf_counter() - began
            longest = max([*appends, *archiving], default=0.0)
            stored = sum(len(store.db.table(name)) for name in store.db.tinydb.tables())
            archived = sum(store.archive.count(name) for name in ARCHIVED_TABLES)
            store.set_meta("next_request", count + 1)
    finally:
        Database.compact = compact  # type: ignore[method-assign]
        store.close()
    full_compaction, during = compaction_with_fsync(folder)
    steady = steady_writes(folder, count, mentors, start + step * count, step)
    return {
        "steady": steady,
        "written": count * per_request + mentors,
        "stored": stored,
        "archived": archived,
        "longest_archive": max(archiving, default=0.0),
        "requests": count,
        "seconds": elapsed,
        "longest_write": longest,
        "compactions": len(compactions),
        "longest_compaction": max(compactions, default=0.0),
        "full_compaction": full_compaction,
        "during": during,
    }


def steady_writes(
    folder: Path, done: int, mentors: int, at: datetime, step: timedelta
) -> dict[str, float]:
    """The grown program goes on, as the daemon runs it: fsync on, the state frozen for
    the collector after opening (``StoreWriter.start``), and per request its writes and
    then the sweep's archive batch. Each write and each batch is timed on its own: the
    writer's stalls at this size. (While growing, five years pass in minutes with fsync
    off: the disk's write-back, not the writer, sets the longest write there.)"""
    # Grown with fsync off, the files' pages still wait to be written; a daemon's (fsync
    # on) would not. Written now, so that the first sync below does not pay for years.
    os.sync()
    store = Store(folder / "state.json", fsync=True)
    gc.freeze()
    batches: list[float] = []
    try:
        with timed_appends() as appends:
            for k in range(1, STEADY_REQUESTS + 1):
                now = at + step * k
                past_request(store, done + k, now, mentors)
                began = time.perf_counter()
                archive_once(store, now, ARCHIVE_AFTER)
                batches.append(time.perf_counter() - began)
    finally:
        store.close()
        gc.unfreeze()
    writes = sorted(appends + batches)
    bare = bare_appends(folder, len(writes))
    return {
        "writes": len(writes),
        "median": statistics.median(writes),
        "p99": writes[int(len(writes) * 0.99)],
        "longest": writes[-1],
        "longest_batch": max(batches),
        "bare_p99": bare[int(len(bare) * 0.99)],
        "bare_longest": bare[-1],
    }


def bare_appends(folder: Path, count: int) -> list[float]:
    """The same-run baseline of the writer's stalls: ``count`` appends of a journal
    record's size, each made durable with fdatasync, to a file in the same folder; the
    time each took, sorted. What the disk alone does to the longest write."""
    took: list[float] = []
    record = b"x" * 600 + b"\n"
    path = folder / "bare.appends"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(count):
            began = time.perf_counter()
            os.write(fd, record)
            os.fdatasync(fd)
            took.append(time.perf_counter() - began)
    finally:
        os.close(fd)
        path.unlink()
    return sorted(took)


def compaction_with_fsync(folder: Path) -> tuple[float, float]:
    """One compaction of the grown state with fsync on, and the longest write while it
    runs: (seconds it takes, the longest write meanwhile, the freeze included). Where
    compaction runs on the writer's path, the writer waits for all of it."""
    store = Store(folder / "state.json", fsync=True)
    db = store.db
    try:
        began = time.perf_counter()
        if not hasattr(db, "_start_compaction"):
            db.compact()
            took = time.perf_counter() - began
            return took, took
        if db._last_compaction is not None:
            db._last_compaction.wait()  # the backup opening started
            began = time.perf_counter()
        db._start_compaction()
        freeze = time.perf_counter() - began
        writes = []
        while db._compaction is not None:
            t0 = time.perf_counter()
            store.audit("tick", now=NOW)  # a write: the commit swaps it in once written
            writes.append(time.perf_counter() - t0)
        print(
            f"  while a compaction ran (fsync on): freeze {freeze * 1000:.0f} ms, "
            f"{len(writes)} commits, median {statistics.median(writes) * 1000:.1f} ms, "
            f"longest {max(writes) * 1000:.0f} ms (the swap included)"
        )
        return time.perf_counter() - began, max([freeze, *writes])
    finally:
        store.close()


OPEN_PROBE = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
def rss():
    for line in open("/proc/self/status"):
        if line.startswith(("VmRSS", "VmHWM")):
            yield line.split()[0][:-1], int(line.split()[1]) / 1024
from mentordesk.state.store import Store
before = dict(rss())["VmRSS"]
began = time.perf_counter()
store = Store(sys.argv[2], fsync=True)
opened = time.perf_counter() - began
after = dict(rss())
store.close()
print(json.dumps({"open": opened, "rss": after["VmRSS"], "peak": after["VmHWM"], "base": before}))
"""


def open_in_fresh_process(folder: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", OPEN_PROBE, str(ROOT), str(folder / "state.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise RuntimeError(f"opening the grown state failed:\n{out.stderr}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def history_state(store: Store, sessions: int, mentors: int, open_requests: int) -> None:
    """``sessions`` past sessions (requests closed), one every ``PACE`` up to ten days
    ago, then ``open_requests`` open ones."""
    with store.transaction():
        for n in range(mentors):
            store.save_mentor(mentor_doc(n, NOW))
    for first in range(1, sessions + 1, 1000):
        with store.transaction():
            for number in range(first, min(first + 1000, sessions + 1)):
                at = NOW - timedelta(days=10) - PACE * (sessions - number)
                request = request_doc(number, at, mentors)
                holder = request["invited"][0]["email"]
                request.update(
                    status="closed", claimed_by=holder, claimed_at=iso(at + timedelta(hours=5))
                )
                store.save_request(request)
                store.save_session(
                    session_doc(
                        number,
                        holder,
                        request["mentee"],
                        at,
                        created=at,
                        status="held",
                        reminded=iso(at),
                        followup_asked=iso(at + timedelta(days=4)),
                    )
                )
                store.audit("claimed", now=at, request=number, mentor=holder, via="link")
    with store.transaction():
        for number in range(sessions + 1, sessions + open_requests + 1):
            at = NOW - timedelta(hours=2) + timedelta(seconds=number - sessions)
            store.save_request(request_doc(number, at, mentors))
        store.set_meta("next_request", sessions + open_requests + 1)


async def events_at(size: int, mentors: int, rounds: int) -> dict[str, float]:
    from intake import request_mail  # the intake benchmark's request email

    with tempfile.TemporaryDirectory(prefix="md-history-") as tmp:
        folder = Path(tmp)
        config = config_in(folder, fsync=True)
        seeding = Store(config.state.path, fsync=False)
        history_state(seeding, size, mentors, rounds + WARM_UP)
        # A program this old has archived what is past [state] archive_after already,
        # a batch per sweep: the events are timed in that steady state.
        while archive_once(seeding, NOW, config.state.archive_after):
            pass
        seeding.close()
        writer = StoreWriter(lambda: Store(config.state.path, fsync=True))
        await writer.start()
        store = writer.store
        assert store is not None
        coordinator = Coordinator(config, store, Renderer())
        clock = [NOW]
        scheduler = Scheduler(
            config,
            writer,
            coordinator,
            lambda: clock[0],
            registry=register_steps(Registry()),
            load=False,
        )
        await scheduler.sweep()  # the first: daily and yearly jobs take their baseline

        async def timed(fn: Callable[[], object]) -> float:
            began = time.perf_counter()
            await writer.call(fn)
            return time.perf_counter() - began

        claims, inbound, sweeps = [], [], []
        for k in range(rounds + WARM_UP):
            if k == WARM_UP:  # the first events fill caches: not timed
                claims, inbound, sweeps = [], [], []
            number = size + 1 + k
            request = store.request(number) or {}
            holder = request["invited"][k % 3]["email"]
            claims.append(
                await timed(
                    lambda n=number, h=holder: coordinator.claims.claim(n, h, NOW, via="link")
                )
            )
            raw = RawMessage(f"imap:9:{k}", request_mail(k, f"h{size}"))
            inbound.append(await timed(lambda r=raw: coordinator.handle(r, NOW)))
            clock[0] += timedelta(minutes=1)
            began = time.perf_counter()
            await scheduler.sweep()
            sweeps.append(time.perf_counter() - began)
        won = sum(
            1
            for k in range(rounds + WARM_UP)
            if (store.request(size + 1 + k) or {}).get("claimed_by")
        )
        await writer.close()
    if won != rounds + WARM_UP:
        raise RuntimeError(f"only {won} of {rounds + WARM_UP} claims won at {size} sessions")
    return {
        "claim": statistics.median(claims),
        "inbound email": statistics.median(inbound),
        "sweep": statistics.median(sweeps),
    }


async def sweep_over_open(requests: int, rounds: int) -> dict[str, float]:
    import sweep as sweep_bench

    with tempfile.TemporaryDirectory(prefix="md-history-") as tmp:
        config = config_in(Path(tmp), fsync=True)
        writer = StoreWriter(lambda: Store(config.state.path, fsync=True))
        await writer.start()
        store = writer.store
        assert store is not None
        args = argparse.Namespace(mentors=2000, requests=requests, spread=20)
        await writer.call(sweep_bench.seed, store, config, args, NOW)
        coordinator = Coordinator(config, store, Renderer())
        clock = [NOW]
        scheduler = Scheduler(
            config,
            writer,
            coordinator,
            lambda: clock[0],
            registry=register_steps(Registry()),
            load=False,
        )
        await scheduler.sweep()
        walls = []
        for _ in range(rounds):
            clock[0] += timedelta(minutes=1)
            began = time.perf_counter()
            await scheduler.sweep()
            walls.append(time.perf_counter() - began)
        await writer.close()
    return {"median": statistics.median(walls), "max": max(walls)}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=500_000, help="documents to write (grow)")
    parser.add_argument("--mentors", type=int, default=2_000)
    parser.add_argument(
        "--sessions",
        default="1000,10000,50000",
        help="sizes of history for the per-event costs (comma-separated)",
    )
    parser.add_argument("--events", type=int, default=15, help="events timed at each size")
    parser.add_argument("--open-requests", type=int, default=100_000, help="for the sweep")
    parser.add_argument("--rounds", type=int, default=10, help="sweeps timed (sweep part)")
    parser.add_argument(
        "--only",
        choices=("grow", "events", "sweep"),
        default=None,
        help="run one part (grow includes open)",
    )
    args = parser.parse_args()
    ok = True
    print("History benchmark (issue 11); same-run baselines where there are any")
    if args.only in (None, "grow"):
        with tempfile.TemporaryDirectory(prefix="md-history-") as tmp:
            grown = grow(Path(tmp), args.docs, args.mentors)
            opened = open_in_fresh_process(Path(tmp))
            files = sum(f.stat().st_size for f in Path(tmp).iterdir() if f.is_file())
        print(
            f"\ngrow: {int(grown['written']):,} documents written for "
            f"{int(grown['requests']):,} requests over five years in {grown['seconds']:.0f} s; "
            f"{int(grown['stored']):,} held in memory, {int(grown['archived']):,} in the "
            f"archive; files {files / 2**20:.0f} MiB"
        )
        print(
            f"  longest archive batch {grown['longest_archive'] * 1000:.0f} ms "
            f"(requests finished {ARCHIVE_AFTER.days} days ago, mail after "
            f"{MAIL_KEPT.days} days; {BATCH} documents at most)"
        )
        print(
            f"  compactions on the writer's path while growing: {int(grown['compactions'])}, "
            f"longest {grown['longest_compaction'] * 1000:.0f} ms; longest write while "
            f"growing {grown['longest_write'] * 1000:.0f} ms (fsync off, years in minutes)"
        )
        steady = grown["steady"]
        print(
            f"  then {STEADY_REQUESTS} more requests, fsync on: {int(steady['writes'])} "
            f"writes and archive batches, median {steady['median'] * 1000:.1f} ms, p99 "
            f"{steady['p99'] * 1000:.1f} ms, longest {steady['longest'] * 1000:.0f} ms "
            f"(longest archive batch {steady['longest_batch'] * 1000:.0f} ms)"
        )
        print(
            f"  bare append + fdatasync in the same folder, as many times: p99 "
            f"{steady['bare_p99'] * 1000:.1f} ms, longest {steady['bare_longest'] * 1000:.1f} ms"
        )
        stall = max(steady["longest"], grown["during"])
        verdict(
            f"longest writer stall {stall * 1000:.0f} ms",
            f"< {TARGET_STALL_MS:g} ms",
            f"(a compaction, fsync on: {grown['full_compaction'] * 1000:.0f} ms)",
            stall * 1000 < TARGET_STALL_MS,
        )
        verdict(
            f"open in a fresh process {opened['open']:.2f} s",
            f"< {TARGET_OPEN_S:g} s",
            "",
            opened["open"] < TARGET_OPEN_S,
        )
        verdict(
            f"resident memory after open {opened['rss']:.0f} MB",
            f"< {TARGET_RSS_MB:g} MB",
            f"(peak {opened['peak']:.0f}; bare {opened['base']:.0f} MB)",
            opened["rss"] < TARGET_RSS_MB,
        )
        ok = ok and stall * 1000 < TARGET_STALL_MS and opened["open"] < TARGET_OPEN_S
        ok = ok and opened["rss"] < TARGET_RSS_MB
    if args.only in (None, "events"):
        sizes = [int(s) for s in args.sessions.split(",")]
        costs = {size: event_loop.run(events_at(size, args.mentors, args.events)) for size in sizes}
        print(f"\nper-event cost (median of {args.events}) by past sessions stored:")
        print(f"  {'event':<16}" + "".join(f"{size:>12,}" for size in sizes) + "   ratio")
        for event in costs[sizes[0]]:
            row = [costs[size][event] * 1000 for size in sizes]
            ratio = row[-1] / row[0] if row[0] else 0.0
            print(f"  {event:<16}" + "".join(f"{ms:>9.1f} ms" for ms in row) + f"   {ratio:.2f}×")
            verdict(
                f"{event}: {sizes[-1]:,} vs {sizes[0]:,} sessions {ratio:.2f}×",
                f"≤ {TARGET_EVENT_RATIO:g}×",
                f"(baseline {row[0]:.1f} ms)",
                ratio <= TARGET_EVENT_RATIO,
            )
            ok = ok and ratio <= TARGET_EVENT_RATIO
    if args.only in (None, "sweep"):
        swept = event_loop.run(sweep_over_open(args.open_requests, args.rounds))
        print(f"\nsweep over {args.open_requests:,} open requests, {args.rounds} rounds:")
        verdict(
            f"median {swept['median'] * 1000:.0f} ms",
            f"< {TARGET_SWEEP_MS:g} ms",
            f"(max {swept['max'] * 1000:.0f} ms)",
            swept["median"] * 1000 < TARGET_SWEEP_MS,
        )
        ok = ok and swept["median"] * 1000 < TARGET_SWEEP_MS
    print("\nALL MET" if ok else "\nSOME MISSED")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
