"""``/healthz`` and ``/metrics`` of a daemon running over the real Dovecot and SMTP sink.

/healthz turns 503 with the reason when Dovecot stops (or the SMTP server, while emails
wait) and 200 again once it is back; /metrics is read with prometheus_client's own
parser and its counts match what the test did. The time limits are checked on the
``Health`` class itself with a clock the test moves.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mentordesk.health import Health, HealthRules, OutboxFacts
from mentordesk.state.store import Store, StoreWriter
from tests.desk import Desk, mail
from tests.forms import press
from tests.servers import PROGRAM_PASSWORD, PROGRAM_USER
from tests.test_claims import REQUEST, TEAM, links, seed

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: aiohttp.ClientSession, desk: Desk) -> Samples:
    async with http.get(f"http://127.0.0.1:{desk.web_port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def health(http: aiohttp.ClientSession, desk: Desk) -> tuple[int, dict[str, Any]]:
    async with http.get(f"http://127.0.0.1:{desk.web_port}/healthz") as response:
        return response.status, await response.json()


async def until_scraped(
    http: aiohttp.ClientSession, desk: Desk, name: str, value: float, timeout_s: float = 30
) -> Samples:
    """Scrape /metrics until the total of ``name`` is ``value``; the last scrape."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while total(samples := await scrape(http, desk), name) != value:
        assert asyncio.get_running_loop().time() < deadline, (name, total(samples, name))
        await asyncio.sleep(0.1)
    return samples


async def until_health(
    http: aiohttp.ClientSession, desk: Desk, status: int, part: str = "", timeout_s: float = 30
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        code, body = await health(http, desk)
        if code == status and (not part or part in body):
            return body
        assert asyncio.get_running_loop().time() < deadline, (code, body)
        await asyncio.sleep(0.1)


async def quiet_outbox(desk: Desk) -> int:
    """Wait until no more emails arrive for a while; how many the sink holds."""
    previous = -1
    while previous != len(desk.sink.messages):
        previous = len(desk.sink.messages)
        await asyncio.sleep(0.5)
    return previous


async def test_healthz_follows_the_mailbox_and_metrics_count_what_happened(
    desk: Desk, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    seed(desk, TEAM)
    await desk.start()
    for n in range(2):
        desk.send(mail(f"Mentee {n} <mentee{n}@example.net>", "Mentor request", REQUEST))
    await desk.processed(2)
    sent = await quiet_outbox(desk)
    assert await until_health(http, desk, 200) == {"status": "ok"}

    samples = await scrape(http, desk)
    assert total(samples, "mentordesk_messages_total") == 2
    assert total(samples, "mentordesk_messages_total", kind="request", outcome="done") == 2
    assert total(samples, "mentordesk_emails_sent_total") == sent
    assert total(samples, "mentordesk_emails_sent_total", kind="request_ack") == 2
    assert total(samples, "mentordesk_emails_failed_total") == 0
    assert total(samples, "mentordesk_outbox_depth") == 0
    assert total(samples, "mentordesk_outbox_oldest_due_age_seconds") == 0
    assert total(samples, "mentordesk_mailbox_reconnects_total") == 0
    assert total(samples, "mentordesk_sweep_duration_seconds_count") >= 1
    assert total(samples, "mentordesk_claim_latency_seconds_count") == 0

    # A claim shows in the latency histogram.
    invite = await desk.mail_to("ada@example.com", "would like help")
    with caplog.at_level(logging.INFO, logger="mentordesk"):
        async with press(http, links(invite, "claim")[0]) as response:
            assert response.status == 200
    assert "claimed MD-0001 by ada@example.com (via web)" in caplog.messages
    samples = await scrape(http, desk)
    assert total(samples, "mentordesk_claim_latency_seconds_count") == 1
    assert total(samples, "mentordesk_claim_latency_seconds_bucket", le="+Inf") == 1
    assert total(samples, "mentordesk_claim_latency_seconds_bucket", le="600.0") == 1

    # The mailbox goes away: 503 with the reason, then 200 once it is back.
    desk.dovecot.stop()
    body = await until_health(http, desk, 503, "inbox")
    assert body["status"] == "degraded"
    assert "IMAP 127.0.0.1:" in body["inbox"]
    desk.dovecot.start()
    assert await until_health(http, desk, 200) == {"status": "ok"}
    desk.send(mail("Mentee 9 <mentee9@example.net>", "Mentor request", REQUEST))
    await desk.processed(3)
    samples = await scrape(http, desk)
    assert total(samples, "mentordesk_mailbox_reconnects_total") == 1
    assert total(samples, "mentordesk_messages_total", kind="request") == 3


async def test_a_refused_login_is_503_until_the_password_works(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    desk.dovecot.add_user(PROGRAM_USER, "changed-by-the-admin")  # ours is now wrong
    await desk.start()
    body = await until_health(http, desk, 503, "inbox")
    assert "login as 'mentors@program.test' failed: [AUTHENTICATIONFAILED]" in body["inbox"]
    assert PROGRAM_PASSWORD not in json.dumps(body)
    desk.dovecot.add_user(PROGRAM_USER, PROGRAM_PASSWORD)
    assert await until_health(http, desk, 200) == {"status": "ok"}


async def test_healthz_says_when_mail_waits_for_a_server_that_is_down(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    seed(desk, TEAM)
    await desk.start()
    assert await until_health(http, desk, 200) == {"status": "ok"}
    desk.sink.stop()
    desk.send(mail("Mentee <mentee@example.net>", "Mentor request", REQUEST))
    await desk.processed(1)
    body = await until_health(http, desk, 503, "smtp")
    assert "cannot deliver through 127.0.0.1:" in body["smtp"]
    samples = await scrape(http, desk)
    assert total(samples, "mentordesk_emails_retried_total") >= 1
    assert total(samples, "mentordesk_outbox_depth") >= 1
    desk.sink.start()
    assert await until_health(http, desk, 200) == {"status": "ok"}
    # Health turns once the server answers again; the rest of the queue follows.
    samples = await until_scraped(http, desk, "mentordesk_outbox_depth", 0)
    assert total(samples, "mentordesk_emails_sent_total") == len(desk.sink.messages)


def test_two_daemons_count_apart(tmp_path: Path) -> None:
    """Each daemon has its own registry: one's counts never show in the other's."""
    first = StoreWriter(lambda: Store(tmp_path / "a" / "s.db", fsync=False))
    second = StoreWriter(lambda: Store(tmp_path / "b" / "s.db", fsync=False))
    first.metrics.mailbox_connected()
    first.metrics.mailbox_connected()
    assert first.metrics.registry.get_sample_value("mentordesk_mailbox_reconnects_total") == 1
    assert second.metrics.registry.get_sample_value("mentordesk_mailbox_reconnects_total") == 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


RULES = HealthRules(
    mailbox_quiet=timedelta(seconds=100),
    sweep_quiet=timedelta(seconds=200),
    outbox_age=timedelta(seconds=300),
)
NOTHING_WAITS = OutboxFacts(pending=0, due=0, oldest_due_age=timedelta(0))


def reasons(health: Health, outbox: OutboxFacts = NOTHING_WAITS) -> Mapping[str, str]:
    return health.reasons(outbox)


def test_each_part_must_have_worked_recently() -> None:
    clock = Clock()
    health = Health(monotonic=clock)
    health.expect(RULES)
    assert reasons(health) == {}
    clock.now += 101  # nothing read the mailbox since the start
    assert list(reasons(health)) == ["inbox"]
    assert reasons(health)["inbox"] == "the mailbox was not reached for 101s (limit 100s)"
    health.fine("inbox")
    health.fine("sweep")
    assert reasons(health) == {}
    clock.now += 201
    health.fine("inbox")
    assert reasons(health) == {"sweep": "the timers' sweep has not run for 201s (limit 200s)"}
    health.fine("sweep")
    old = OutboxFacts(pending=3, due=2, oldest_due_age=timedelta(seconds=301))
    assert reasons(health, old) == {"outbox": "2 emails due, the oldest for 301s (limit 300s)"}


def test_smtp_trouble_counts_only_while_emails_wait() -> None:
    health = Health(monotonic=Clock())
    health.expect(RULES)
    health.trouble("smtp", "cannot deliver through 127.0.0.1:25: refused")
    assert reasons(health) == {}
    waiting = OutboxFacts(pending=1, due=1, oldest_due_age=timedelta(seconds=5))
    assert reasons(health, waiting) == {"smtp": "cannot deliver through 127.0.0.1:25: refused"}
    health.fine("smtp")
    assert reasons(health, waiting) == {}
    assert health.response(store_open=True, outbox=waiting) == {
        "data": {"status": "ok"},
        "status": 200,
    }


def test_limits_follow_the_config_intervals(desk: Desk) -> None:
    config = desk.config
    rules = HealthRules.from_config(config)
    poll = config.inbox.poll_interval
    assert rules.mailbox_quiet == 2 * poll + timedelta(seconds=75)
    assert rules.sweep_quiet == 3 * config.timers.sweep_interval + timedelta(minutes=1)
    assert rules.outbox_age > 2 * config.smtp.max_retry_after
