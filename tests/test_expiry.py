"""Requests nobody took expire after ``[timers] request_max_age`` (SPEC §3a).

Reported: "requests waiting 729 days never close". They expire now: the mentee is told
once, in their request's thread, and may write again; nothing more is sent about it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mentordesk.config import load_config
from mentordesk.errors import ConfigError
from mentordesk.flows.expiry import expired, expiry_step, waiting_since
from mentordesk.flows.steps import register_steps
from mentordesk.state.store import iso
from mentordesk.timers import Registry

from .desk import mail
from .followup_state import request
from .timetravel import SECRET, T0, Harness, mentor_doc, text_of, write_config

JORDAN = "jordan@example.net"
DAY = timedelta(days=1)
MAX_AGE = timedelta(days=60)


def doc(status: str = "open", **times: datetime) -> dict[str, Any]:
    return {"status": status, **{key: iso(value) for key, value in times.items()}}


def test_the_age_counts_from_the_latest_start_of_the_wait() -> None:
    assert waiting_since(doc(created=T0)) == T0
    assert waiting_since(doc(created=T0, opened=T0 + DAY)) == T0 + DAY
    assert waiting_since(doc(created=T0, opened=T0 + DAY, reopened=T0 + 9 * DAY)) == T0 + 9 * DAY
    later = T0 + MAX_AGE
    assert expired(doc(created=T0, opened=T0), later, MAX_AGE)
    assert not expired(doc(created=T0, opened=T0), later - timedelta(seconds=1), MAX_AGE)
    assert expired(doc("incomplete", created=T0), later, MAX_AGE)
    # Given back ten days ago: a new wait, not an old request.
    assert not expired(doc(created=T0, opened=T0, reopened=later - 10 * DAY), later, MAX_AGE)
    # Someone holds it, or it ended already: never.
    for status in ("claimed", "booked", "met", "closed", "withdrawn", "expired"):
        assert not expired(doc(status, created=T0, opened=T0), T0 + 1000 * DAY, MAX_AGE)
    assert not expired({"status": "open"}, later, MAX_AGE)  # no time at all: nothing to go by


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await Harness(tmp_path, register_steps(Registry())).open()
    await harness.seed(mentor_doc("ada@example.com", "Ada Lovelace", ["python"]))
    yield harness
    await harness.close()


async def save(desk: Harness, *docs: dict[str, Any]) -> None:
    def write() -> None:
        with desk.store.transaction():
            for d in docs:
                desk.store.save_request(d)
            desk.store.set_meta("next_request", len(docs) + 1)

    await desk.call(write)


async def test_a_request_waiting_729_days_expires_and_the_mentee_is_told_once(
    desk: Harness,
) -> None:
    await save(desk, request(1, JORDAN, "Jordan Lee", T0 - 729 * DAY))
    assert (await desk.sweep())["expiry"] == 1
    stored = await desk.request(1)
    assert stored["status"] == "expired"
    [told] = await desk.sent("request_expired", JORDAN)
    assert told["Subject"] == "[MD-0001] Closing your request for now"
    assert "has waited 2 months without a mentor free to take it" in " ".join(text_of(told).split())
    assert ("request expired", 1) in [
        (e["event"], e.get("request")) for e in await desk.call(desk.store.audit_log)
    ]
    # Nothing more: no second notice, no ladder step for it.
    for days in (1, 30):
        assert (await desk.sweep(days=days))["expiry"] == 0
    assert len(await desk.sent("request_expired")) == 1
    ladder = ("request_bump", "request_update", "request_escalated")
    assert not [kind for kind, _ in await desk.kinds() if kind in ladder]


async def test_only_old_unclaimed_requests_expire(desk: Harness) -> None:
    await save(
        desk,
        request(1, "a@example.net", "A", T0 - 59 * DAY),  # not yet
        request(2, "b@example.net", "B", T0 - 61 * DAY, status="incomplete"),
        request(3, "c@example.net", "C", T0 - 90 * DAY, reopened=iso(T0 - 5 * DAY)),
        request(
            4,
            "d@example.net",
            "D",
            T0 - 90 * DAY,
            status="claimed",
            claimed_by="ada@example.com",
            claimed_at=iso(T0 - 89 * DAY),
        ),
    )
    assert (await desk.sweep())["expiry"] == 1
    statuses = [(await desk.request(n))["status"] for n in (1, 2, 3, 4)]
    assert statuses == ["open", "expired", "open", "claimed"]
    assert (await desk.sweep(days=1, minutes=1))["expiry"] == 1  # the first, a day on
    assert (await desk.request(1))["status"] == "expired"


async def test_after_expiry_the_mentee_may_write_again(desk: Harness) -> None:
    await save(desk, request(1, JORDAN, "Jordan Lee", T0 - 100 * DAY))
    await desk.sweep()
    # The claim link of an expired request leads nowhere.
    result = await desk.call(
        desk.coordinator.claims.claim, 1, "ada@example.com", desk.clock(), via="web"
    )
    assert result.outcome == "closed"
    await desk.receive(
        mail(
            "Jordan Lee <jordan@example.net>",
            "Mentor request",
            "Name: Jordan Lee\nSkills: python\nTimezone: America/New_York\n"
            "Details: I am learning Python and would love a review of my first project.\n",
        )
    )
    assert (await desk.request(2))["status"] == "open"


async def test_the_age_is_configured(tmp_path: Path) -> None:
    registry = Registry()
    registry.register_sweep_step("expiry", expiry_step)
    desk = await Harness(tmp_path, registry, timers={"request_max_age": "10d"}).open()
    try:
        await save(desk, request(1, JORDAN, "Jordan Lee", T0 - 11 * DAY))
        assert await desk.sweep() == {"expiry": 1}
    finally:
        await desk.close()


@pytest.mark.parametrize(("value", "why"), [("0d", "longer than nothing"), ("soon", "duration")])
def test_a_bad_max_age_is_named(tmp_path: Path, value: str, why: str) -> None:
    write_config(tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(path.read_text("utf-8") + f'[timers]\nrequest_max_age = "{value}"\n', "utf-8")
    with pytest.raises(ConfigError, match=rf"\[timers\] request_max_age: .*{why}"):
        load_config(path, environ={"MD_TEST_SECRET": SECRET})
