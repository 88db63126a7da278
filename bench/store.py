"""How the cost of one state write grows with the data: journalled TinyDB vs plain TinyDB.

Prints, and asserts nothing:

* per-write cost (mean, p50, p99 in µs) of single-document inserts and updates by id into
  a table already holding 1,000 / 10,000 / 50,000 documents (about 400 bytes, 10 fields,
  like a mentoring request), with fsync on and off, and the 50k/1k ratio (target ≤ 2×);
* the cost of a compaction at each size, spread over the writes between two compactions;
* plain TinyDB (JSONStorage, which rewrites the file and fsyncs on every write) at 1k
  and 20k documents, for comparison;
* the time to reopen (recover) 50k documents, as left by the run and in the worst case
  (a journal just short of the compaction threshold);
* peak RSS (getrusage) of a fresh process that opens 50k documents, searches and
  compacts them (target < 150 MB).

Run ``python bench/store.py --help`` for the options. The fsync figures are those of the
disk under ``--dir`` (on a tmpfs, fsync costs nothing).
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from tinydb import TinyDB

from mentordesk.state.db import Database

RSS_TARGET_MB = 150
RATIO_TARGET = 2.0

STATUSES = ["new", "open", "matched", "scheduled", "closed"]
TOPICS = [
    "Getting started with open source contributions",
    "Python packaging, testing and continuous integration",
    "Career change into data engineering, first steps",
    "Preparing a conference talk proposal and slides",
]


def make_doc(rng: random.Random, number: int) -> dict[str, Any]:
    """A document shaped like a stored mentoring request: 10 fields, about 400 bytes."""
    return {
        "kind": "request",
        "status": rng.choice(STATUSES),
        "mentee": f"mentee{number}@example.org",
        "mentor": f"mentor{number % 300}@example.org",
        "topic": rng.choice(TOPICS),
        "timezone": rng.choice(["Europe/Berlin", "America/New_York", "Asia/Kolkata"]),
        "created_utc": f"2024-05-{1 + number % 28:02d}T10:{number % 60:02d}:00+00:00",
        "message_id": f"<{number}.{rng.getrandbits(64):016x}@mail.example.org>",
        "attempts": number % 5,
        "notes": "Prefers weekday mornings; happy with video calls. " + "." * rng.randint(40, 80),
    }


class Timings:
    """Durations of repeated operations, in µs."""

    def __init__(self) -> None:
        self.us: list[float] = []

    def time(self, operation: Callable[[], object]) -> None:
        start = time.perf_counter_ns()
        operation()
        self.us.append((time.perf_counter_ns() - start) / 1000)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.us)

    def summary(self) -> str:
        ordered = sorted(self.us)
        p50 = ordered[len(ordered) // 2]
        p99 = ordered[min(len(ordered) - 1, round(len(ordered) * 0.99))]
        return f"mean {self.mean:9.1f}  p50 {p50:9.1f}  p99 {p99:9.1f}"


def journal_of(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


def populate(path: Path, size: int, *, fsync: bool) -> Database:
    rng = random.Random(size)
    db = Database(path, fsync=fsync)
    with db.transaction():
        db.table("requests").insert_multiple(make_doc(rng, n) for n in range(size))
    db.compact()  # measure from the steady state: a snapshot and an empty journal
    return db


def bench_journal(folder: Path, size: int, writes: int, *, fsync: bool) -> dict[str, float]:
    """Print insert/update costs at ``size`` documents; return the means and more."""
    path = folder / f"journal-{size}-{'fsync' if fsync else 'nofsync'}.json"
    db = populate(path, size, fsync=fsync)
    table = db.table("requests")
    rng = random.Random(1)
    inserts, updates = Timings(), Timings()
    for n in range(writes):
        doc = make_doc(rng, size + n)
        inserts.time(partial(table.insert, doc))
    record_bytes = journal_of(path).stat().st_size / writes
    for _ in range(writes):
        doc_id = rng.randint(1, size)
        fields = {"status": rng.choice(STATUSES), "attempts": rng.randint(0, 9)}
        updates.time(partial(table.update, fields, doc_ids=[doc_id]))
    snapshot_bytes = path.stat().st_size
    start = time.perf_counter()
    db.compact()
    compact_s = time.perf_counter() - start
    db.close()
    # A compaction comes once per max(snapshot, compact_min_bytes) bytes of journal.
    writes_between = max(snapshot_bytes, Database.compact_min_bytes) / record_bytes
    amortised_us = compact_s * 1e6 / writes_between
    mode = "fsync on " if fsync else "fsync off"
    print(f"  {size:>6,} docs, {mode}  insert  {inserts.summary()}")
    print(f"  {size:>6,} docs, {mode}  update  {updates.summary()}")
    print(
        f"  {'':>6}       {'':9}  compaction {compact_s * 1000:7.1f} ms once per "
        f"{writes_between:,.0f} writes = {amortised_us:.1f} µs per write amortised"
    )
    return {
        "insert": inserts.mean,
        "update": updates.mean,
        "insert + compaction": inserts.mean + amortised_us,
    }


def bench_plain(folder: Path, size: int, writes: int) -> float:
    path = folder / f"plain-{size}.json"
    rng = random.Random(size)
    db = TinyDB(path)
    db.table("requests").insert_multiple(make_doc(rng, n) for n in range(size))
    inserts = Timings()
    table = db.table("requests")
    for n in range(writes):
        doc = make_doc(rng, size + n)
        inserts.time(partial(table.insert, doc))
    db.close()
    print(f"  {size:>6,} docs, plain TinyDB  insert  {inserts.summary()}")
    return inserts.mean


def bench_reopen(folder: Path, size: int) -> None:
    path = folder / f"reopen-{size}.json"
    populate(path, size, fsync=False).close()

    def reopen() -> float:
        start = time.perf_counter()
        Database(path, fsync=False).close()
        return time.perf_counter() - start

    print(
        f"  {size:,} docs, snapshot {path.stat().st_size / 1e6:.1f} MB, empty journal: "
        f"{reopen() * 1000:.0f} ms"
    )
    # Worst case: the journal has grown just short of the compaction threshold.
    db = Database(path, fsync=False)
    db.compact_min_bytes = 1 << 62  # hold compaction off while filling the journal
    table, rng = db.table("requests"), random.Random(2)
    limit = max(path.stat().st_size, Database.compact_min_bytes)
    writes = 0
    while journal_of(path).stat().st_size < limit:
        for _ in range(1000):
            table.update({"attempts": rng.randint(0, 9)}, doc_ids=[rng.randint(1, size)])
        writes += 1000
    db.close()
    print(
        f"  {size:,} docs + journal of {journal_of(path).stat().st_size / 1e6:.1f} MB "
        f"({writes:,} records, the most before a compaction): {reopen() * 1000:.0f} ms"
    )


MAKE_STATE = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from store import populate
db = populate(Path(sys.argv[2]), int(sys.argv[3]), fsync=False)
for doc_id in range(1, 1001):  # and a journal to replay
    db.table("requests").update({"attempts": 9}, doc_ids=[doc_id])
db.close()
"""

RSS_PROBE = """
import resource, sys
from tinydb import Query
from mentordesk.state.db import Database
db = Database(sys.argv[1], fsync=False)
after_open = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
found = db.table("requests").search(Query().status == "open")
db.compact()
after_more = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(after_open, after_more, len(found))
"""


def bench_rss(folder: Path, size: int) -> str:
    """Peak RSS of a fresh process opening ``size`` documents, as a line to print.

    Call it while this process is still small: Linux carries ru_maxrss over fork and
    exec, so a child started from a big parent reports the parent's peak. The data is
    made in another child for the same reason.
    """
    path = folder / f"rss-{size}.json"
    bench_dir = str(Path(__file__).resolve().parent)
    run = partial(subprocess.run, capture_output=True, text=True, check=True)
    run([sys.executable, "-c", MAKE_STATE, bench_dir, str(path), str(size)])
    output = run([sys.executable, "-c", RSS_PROBE, str(path)]).stdout
    after_open_kb, after_more_kb, found = (int(field) for field in output.split())
    after_more = after_more_kb / 1024  # Linux reports KiB
    verdict = "ok" if after_more < RSS_TARGET_MB else "OVER TARGET"
    return (
        f"  {size:,} docs (+1,000 journal records): peak RSS {after_open_kb / 1024:.0f} MB "
        f"after opening, {after_more:.0f} MB after a search returning {found:,} documents "
        f"and a compaction (target < {RSS_TARGET_MB} MB: {verdict})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Defaults take about a minute on 2 cores.",
    )
    parser.add_argument(
        "--sizes",
        default="1000,10000,50000",
        help="table sizes to measure, comma-separated; the first and last give the ratio "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--writes",
        type=int,
        default=1000,
        help="inserts and as many updates measured per size and fsync mode (default: %(default)s)",
    )
    parser.add_argument(
        "--plain-sizes",
        default="1000,20000",
        help="table sizes for plain TinyDB, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--plain-writes",
        type=int,
        default=100,
        help="inserts measured per plain TinyDB size (default: %(default)s)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        help="where to put the files; the disk decides what fsync costs "
        "(default: a temporary folder, removed afterwards)",
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    plain_sizes = [int(size) for size in args.plain_sizes.split(",")]

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="mentordesk-bench-") as tmp:
        folder = Path(tmp)
        memory = bench_rss(folder, sizes[-1])  # first, while this process is small
        print(f"files in {folder}; costs in µs per write\n")
        for fsync in (True, False):
            print(f"journalled TinyDB, fsync {'on' if fsync else 'off'}:")
            results = {
                size: bench_journal(folder, size, args.writes, fsync=fsync) for size in sizes
            }
            first, last = results[sizes[0]], results[sizes[-1]]
            for kind in first:
                ratio = last[kind] / first[kind]
                verdict = "ok" if ratio <= RATIO_TARGET else "OVER TARGET"
                print(
                    f"  ratio {sizes[-1]:,}/{sizes[0]:,} {kind:>19} (mean): {ratio:5.2f}× "
                    f"(target ≤ {RATIO_TARGET:g}×: {verdict})"
                )
            print()
        print("plain TinyDB (JSONStorage: rewrites the file and fsyncs on every write):")
        for size in plain_sizes:
            bench_plain(folder, size, args.plain_writes)
        print("\nreopen (recover):")
        bench_reopen(folder, sizes[-1])
        print("\nmemory (a fresh process):")
        print(memory)


if __name__ == "__main__":
    main()
