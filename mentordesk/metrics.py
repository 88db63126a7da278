"""What ``GET /metrics`` shows, in Prometheus' text format (``prometheus_client``).

Each daemon has its own ``CollectorRegistry`` (never the process-wide default one), so
several daemons in one process — tests do that — count apart. The events are counted
where they happen, by small calls into ``Metrics`` (``message_handled``, ``email_sent``,
``email_retried``, ``email_failed``, ``mailbox_connected``, ``swept``); what the state
holds — the outbox's depth and oldest due email, how long requests waited for their
claim — is read from the store at each scrape (``update_from_store``, on the writer
thread), so it is right after a restart too.

The same calls write the INFO lines people read in the log: one per message handled and
one per email sent, each with the request's reference (MD-0042) when there is one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from .views import tag

if TYPE_CHECKING:  # the store creates Metrics (StoreWriter): no import at run time
    from .state.store import OutboxItem, Store

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
log = logging.getLogger("mentordesk.activity")

# Claims take hours to days: buckets from ten minutes to a month.
CLAIM_BUCKETS_S = (
    600,
    3600,
    4 * 3600,
    12 * 3600,
    86400,
    2 * 86400,
    3 * 86400,
    5 * 86400,
    7 * 86400,
    10 * 86400,
    14 * 86400,
    30 * 86400,
)
SWEEP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def reference(request: int | None) -> str:
    """The reference people see (views.tag), or "-" for mail about no request."""
    return tag(request) if request is not None else "-"


class Metrics:
    """One daemon's counters and the collector of its state's figures."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages = Counter(
            "mentordesk_messages",
            "Inbound messages handled, by what they were and what became of them",
            ["kind", "outcome"],
            registry=r,
        )
        self.emails_sent = Counter(
            "mentordesk_emails_sent", "Emails the mail server accepted", ["kind"], registry=r
        )
        self.emails_failed = Counter(
            "mentordesk_emails_failed", "Emails refused for good", ["kind"], registry=r
        )
        self.emails_retried = Counter(
            "mentordesk_emails_retried",
            "Temporary delivery failures; each plans another attempt",
            ["kind"],
            registry=r,
        )
        self.mailbox_reconnects = Counter(
            "mentordesk_mailbox_reconnects",
            "Connections to the mailbox after the first one",
            registry=r,
        )
        self.sweep_duration = Histogram(
            "mentordesk_sweep_duration_seconds",
            "How long each sweep of the timers took",
            buckets=SWEEP_BUCKETS_S,
            registry=r,
        )
        self.state = _StateCollector()
        r.register(self.state)
        self._mailbox_connections = 0
        self._lock = threading.Lock()

    # --- events (any thread) ------------------------------------------------------------

    def message_handled(self, key: str, status: str, kind: str, request: int | None) -> None:
        self.messages.labels(kind or "unknown", status).inc()
        log.info("message %s: %s %s (%s)", key, kind or "unknown", reference(request), status)

    def email_sent(self, item: OutboxItem) -> None:
        self.emails_sent.labels(item.kind).inc()
        log.info(
            "sent %s %s to %s (%s)",
            item.kind,
            reference(item.request),
            ", ".join(item.recipients),
            item.message_id,
        )

    def email_retried(self, item: OutboxItem) -> None:
        self.emails_retried.labels(item.kind).inc()

    def email_failed(self, item: OutboxItem) -> None:
        self.emails_failed.labels(item.kind).inc()

    def mailbox_connected(self) -> None:
        with self._lock:
            self._mailbox_connections += 1
            if self._mailbox_connections > 1:
                self.mailbox_reconnects.inc()

    def swept(self, seconds: float) -> None:
        self.sweep_duration.observe(seconds)

    # --- scraping -----------------------------------------------------------------------

    def scrape(self, store: Store, now: datetime) -> bytes:
        """The text /metrics answers; runs on the store's writer thread."""
        self.state.update(store, now)
        return bytes(generate_latest(self.registry))


class _StateCollector(Collector):
    """Figures read from the state at each scrape."""

    def __init__(self) -> None:
        self._families: list[Metric] = []

    def describe(self) -> Iterable[Metric]:
        return []  # built at collect time from the store

    def update(self, store: Store, now: datetime) -> None:
        facts = store.outbox_facts(now)
        pending = GaugeMetricFamily(
            "mentordesk_outbox_depth", "Emails waiting to be sent (due or not)"
        )
        pending.add_metric([], facts.pending)
        due = GaugeMetricFamily("mentordesk_outbox_due", "Emails due now and not yet sent")
        due.add_metric([], facts.due)
        oldest = GaugeMetricFamily(
            "mentordesk_outbox_oldest_due_age_seconds",
            "How long the oldest email due has waited (0 when none is due)",
        )
        oldest.add_metric([], facts.oldest_due_age.total_seconds())
        claimed = store.requests_where(lambda doc: bool(doc.get("claimed_at")))
        self._families = [pending, due, oldest, _claim_latency(claimed)]

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def _claim_latency(requests: Sequence[Mapping[str, Any]]) -> HistogramMetricFamily:
    """Seconds from each request to its claim, over every claimed request in the state."""
    latencies = []
    for request in requests:
        created, claimed = request.get("created"), request.get("claimed_at")
        if isinstance(created, str) and isinstance(claimed, str):
            waited = datetime.fromisoformat(claimed) - datetime.fromisoformat(created)
            latencies.append(max(0.0, waited.total_seconds()))
    buckets = []
    for bound in CLAIM_BUCKETS_S:
        buckets.append((str(float(bound)), float(sum(1 for s in latencies if s <= bound))))
    buckets.append(("+Inf", float(len(latencies))))
    family = HistogramMetricFamily(
        "mentordesk_claim_latency_seconds",
        "Time from a request to its claim by a mentor, over the requests in the state",
    )
    family.add_metric([], buckets, sum_value=sum(latencies))
    return family
