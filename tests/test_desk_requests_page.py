"""The desk's requests page over a real store: the status index picks the candidates, and
only the rows shown are made, newest first, with the count of every match."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from mentordesk.desk_views import MAX_ROWS, RequestFilter, request_rows
from mentordesk.state.records import NOT_FINISHED
from mentordesk.state.store import Store, iso

from .timetravel import T0, write_config

STATUSES = ["open", "claimed", "closed", "expired", "met", "incomplete"]


def test_rows_are_the_newest_matches_and_the_count_is_every_match(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    store = Store(tmp_path / "state.json", fsync=False)
    try:
        with store.transaction():
            for n in range(1, 601):
                store.save_request(
                    {
                        "number": n,
                        "mentee": f"m{n}@example.net",
                        "name": f"Mentee {n}",
                        "status": STATUSES[n % len(STATUSES)],
                        "skills": ["python"] if n % 2 else ["go"],
                        "created": iso(T0 - timedelta(days=n % 30)),
                    }
                )
        every = store.requests()
        waiting = [d for d in every if d["status"] in {s.value for s in NOT_FINISHED}]
        for wanted, expected in (
            (RequestFilter("waiting"), waiting),
            (RequestFilter("all"), every),
            (
                RequestFilter("open", "python"),
                [d for d in every if d["status"] == "open" and d["skills"] == ["python"]],
            ),
            (RequestFilter("all", "", 20), [d for d in every if d["number"] % 30 >= 20]),
        ):
            rows, count = request_rows(store, config, wanted, T0)
            numbers = sorted((int(d["number"]) for d in expected), reverse=True)
            assert count == len(numbers)
            assert [r["number"] for r in rows] == numbers[:MAX_ROWS]
            by_number = {int(d["number"]): d for d in expected}
            for row in rows:
                doc = by_number[row["number"]]
                assert (row["name"], row["status"]) == (doc["name"], doc["status"])
        assert len(request_rows(store, config, RequestFilter("all"), T0)[0]) == MAX_ROWS < 600
    finally:
        store.close()
