"""``mentordesk report`` and ``mentordesk export --csv`` on a known state, read while
another process holds the state open for writing (as the running daemon does)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mentordesk.cli import main
from mentordesk.config import Config
from mentordesk.errors import MentordeskError
from mentordesk.reports import format_duration, percentile, render_report
from mentordesk.state.store import Store, iso

from .timetravel import SECRET, mentor_doc, write_config

NOW = datetime(2025, 3, 15, 16, 0, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def at(day: str, hour: int = 15) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00")


def request(number: int, mentee: str, name: str, created: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "number": number,
        "mentee": mentee,
        "name": name,
        "skills": ["python"],
        "details": "A review of my first project, please.",
        "status": "open",
        "created": iso(created),
        "opened": iso(created),
        "updated": iso(created),
        **extra,
    }


def known_state(store: Store) -> None:
    """Six requests over three months, three mentors, four claims, one release."""
    jordan, sam, kim, lee = (f"{n}@example.net" for n in ("jordan", "sam", "kim", "lee"))
    with store.transaction():
        store.save_mentor(mentor_doc("ada@example.com", "Ada Lovelace", ["python"]))
        store.save_mentor(mentor_doc("bea@example.com", "Bea Brown", ["python"]))
        store.save_mentor(
            mentor_doc("cyd@example.com", "Cyd Charisse", ["python"], status="paused")
        )
        one, two = at("2025-01-05"), at("2025-01-20")
        store.save_request(
            request(
                1,
                jordan,
                "Jordan Lee",
                one,
                status="claimed",
                claimed_by="ada@example.com",
                claimed_at=iso(one + HOUR),
            )
        )
        store.save_request(
            request(
                2,
                jordan,
                "Jordan Lee",
                two,
                status="done",
                claimed_by="bea@example.com",
                claimed_at=iso(two + 2 * DAY),
            )
        )
        store.save_request(request(3, sam, "Sam Sun", at("2025-02-03"), status="withdrawn"))
        four = at("2025-02-10")
        store.save_request(
            request(
                4,
                kim,
                "Kim Park",
                four,
                status="claimed",
                claimed_by="ada@example.com",
                claimed_at=iso(four + 10 * DAY),
                ladder={"escalate": iso(four + 10 * DAY)},
            )
        )
        # Never completed, and expired since (SPEC §3a).
        incomplete = request(5, lee, "Lee Ray", at("2025-02-11"), status="expired")
        del incomplete["opened"]
        store.save_request(incomplete)
        store.save_request(
            request(
                6,
                jordan,
                "Jordan Lee",
                at("2025-03-01"),
                details='=HYPERLINK("http://evil.test","click")',
                invited=[{"email": "ada@example.com", "at": iso(at("2025-03-01"))}],
            )
        )
        for number, mentor, moment in (
            (1, "ada@example.com", one + HOUR),
            (2, "bea@example.com", two + 2 * DAY),
            (4, "bea@example.com", four + DAY),
            (4, "ada@example.com", four + 10 * DAY),
        ):
            store.audit("claimed", now=moment, request=number, mentor=mentor, via="web")
        store.audit(
            "released",
            now=four + 2 * DAY,
            request=4,
            mentor="bea@example.com",
            by="bea@example.com",
        )
        store.enqueue(
            message_id="<m1@program.test>",
            sender="mentors@program.test",
            recipients=["ada@example.com"],
            data=b"Subject: hi\r\n\r\nSECRET BODY",
            kind="claim_invite",
            now=one,
            request=1,
        )
        store.save_session(
            {
                "uid": "s1",
                "request": 1,
                "mentor": "ada@example.com",
                "mentee": jordan,
                "start": iso(one + 3 * DAY),
                "status": "done",
            }
        )


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Config, Store]]:
    """The config, and the state held open for writing the whole time (the 'daemon')."""
    monkeypatch.setenv("MD_TEST_SECRET", SECRET)
    config = write_config(tmp_path)
    daemon_store = Store(config.state.path, fsync=False)
    known_state(daemon_store)
    try:
        yield config, daemon_store
    finally:
        daemon_store.close()


def test_figures() -> None:
    assert percentile([5.0], 0.9) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 0.9) == 9.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    with pytest.raises(ValueError):
        percentile([], 0.9)
    assert format_duration(timedelta(days=2, hours=4, minutes=5)) == "2d 4h"
    assert format_duration(timedelta(days=3)) == "3d"
    assert format_duration(timedelta(hours=5, minutes=10)) == "5h 10m"
    assert format_duration(timedelta(minutes=12)) == "12m"


def test_overview_on_a_known_state(state: tuple[Config, Store]) -> None:
    config, _ = state
    reader = Store(config.state.path, fsync=False, read_only=True)
    try:
        report = render_report(reader, config, NOW)
    finally:
        reader.close()
    lines = [line.rstrip() for line in report.splitlines()]
    assert lines[0] == "Test Mentors: report of 2025-03-15 12:00 (America/New_York)"
    start = lines.index("Requests per month (by the day they came in)")
    assert lines[start + 1].split() == [
        "month",
        "received",
        "complete",
        "claimed",
        "withdrawn",
        "expired",
        "still",
        "open",
        "escalated",
        "median",
        "to",
        "claim",
        "p90",
        "to",
        "claim",
    ]
    rows = [line.split() for line in lines[start + 3 : start + 7]]
    assert rows == [
        ["2025-01", "2", "2", "2", "0", "0", "0", "0", "1d", "2d"],
        ["2025-02", "3", "2", "1", "1", "1", "0", "1", "10d", "10d"],
        ["2025-03", "1", "1", "0", "0", "0", "1", "0", "-", "-"],
        ["all", "6", "5", "3", "1", "1", "1", "1", "2d", "10d"],
    ]
    assert "(3 claimed)" in lines[start + 7]

    start = lines.index("Claims per mentor")
    rows = [line.split() for line in lines[start + 3 : start + 6]]
    assert rows == [
        ["Ada", "Lovelace", "ada@example.com", "active", "2", "2", "0", "2", "2025-02-20"],
        ["Bea", "Brown", "bea@example.com", "active", "2", "2", "1", "0", "2025-02-11"],
        ["Cyd", "Charisse", "cyd@example.com", "paused", "0", "0", "0", "0", "-"],
    ]

    start = lines.index("Repeat requesters (1 of 4 mentees asked more than once)")
    assert lines[start + 3].split() == [
        "Jordan",
        "Lee",
        "jordan@example.net",
        "3",
        "2",
        "2025-01-05",
        "2025-03-01",
        "MD-0001",
        "MD-0002",
        "MD-0006",
    ]
    assert len(lines) == start + 4


def test_report_and_export_commands_while_the_daemon_holds_the_state(
    state: tuple[Config, Store], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, daemon_store = state
    assert main(["report", "--config", str(config.source)]) == 0
    out = capsys.readouterr().out
    assert "Requests per month" in out and "Repeat requesters" in out
    assert main(["report", "nonsense", "--config", str(config.source)]) == 2
    assert "no report called 'nonsense'; known reports: " in capsys.readouterr().err

    folder = tmp_path / "export"
    assert main(["export", "--csv", str(folder), "--config", str(config.source)]) == 0
    out = capsys.readouterr().out
    assert f"{folder / 'requests.csv'}: 6 rows" in out
    files = sorted(p.name for p in folder.iterdir())
    for name in ("mentors", "requests", "sessions", "outbox", "audit", "messages", "addresses"):
        assert f"{name}.csv" in files
    assert not {"meta.csv", "threads.csv", "rates.csv"} & set(files)

    def rows(name: str) -> list[dict[str, str]]:
        with (folder / f"{name}.csv").open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))

    requests = rows("requests")
    assert [r["number"] for r in requests] == ["1", "2", "3", "4", "5", "6"]
    assert requests[0]["claimed_by"] == "ada@example.com"
    assert requests[5]["details"] == '\'=HYPERLINK("http://evil.test","click")'
    assert (
        requests[5]["invited"]
        == '[{"email": "ada@example.com", "at": "2025-03-01T15:00:00+00:00"}]'
    )
    assert requests[0]["skills"] == '["python"]'
    [outbox] = rows("outbox")
    assert "data" not in outbox and "draft" not in outbox and outbox["kind"] == "claim_invite"
    assert "SECRET BODY" not in (folder / "outbox.csv").read_text("utf-8")
    assert [(a["event"], a["mentor"]) for a in rows("audit")][-1] == ("released", "bea@example.com")
    assert len(rows("mentors")) == 3 and len(rows("sessions")) == 1
    assert rows("messages") == []
    # The daemon's store never noticed: it still writes.
    daemon_store.set_meta("still writable", True)


def test_an_unknown_report_names_the_known_ones(state: tuple[Config, Store]) -> None:
    config, _ = state
    reader = Store(config.state.path, fsync=False, read_only=True)
    try:
        with pytest.raises(MentordeskError, match="overview"):
            render_report(reader, config, NOW, "nonsense")
    finally:
        reader.close()
