"""Prometheus metrics: per-source and per-queue gauges read at scrape time, plus HTTP metrics.

Each app has its own :class:`~prometheus_client.CollectorRegistry` (never the global one), so
several apps in one process (tests, two listeners) do not collide.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jobbridge.model import Counters
from jobbridge.service import JobService, SourceRead
from jobbridge.web.shared_state import SharedState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class SourceCollector(Collector):
    """Turns the readings of the current scrape into gauge families."""

    def __init__(self) -> None:
        #: every source's counters as of the current scrape
        self.readings: Sequence[SourceRead[Counters]] = ()

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "jobbridge_source_up",
            "1 when the source's Redis answered this scrape.",
            labels=["source", "system"],
        )
        timed_out = GaugeMetricFamily(
            "jobbridge_source_timed_out",
            "1 when the source's Redis did not answer this scrape within the read timeout "
            "(slow, not refusing).",
            labels=["source"],
        )
        per_source = {
            "enqueued": "Jobs waiting in the source's queues.",
            "scheduled": "Jobs due later (scheduled and retry backoffs).",
            "running": "Jobs a worker has taken.",
            "completed_24h": "Jobs completed in the last 24 hours (absent where the system "
            "cannot count that window: see completed_kept).",
            "failed_7d": "Jobs terminally failed in the last 7 days (absent where the system "
            "cannot count that window: see failed_kept).",
            "completed_kept": "Completed jobs the system still keeps, whatever their age.",
            "failed_kept": "Failed jobs the system still keeps, whatever their age.",
            "canceled": "Jobs the system keeps as canceled (RQ's canceled registries).",
            "blocked": "Jobs parked by a full concurrency group, or waiting on a dependency.",
            "running_overdue": "Running jobs past their claim's deadline (worker likely gone).",
        }
        families = {
            name: GaugeMetricFamily(f"jobbridge_jobs_{name}", text, labels=["source"])
            for name, text in per_source.items()
        }
        oldest = GaugeMetricFamily(
            "jobbridge_oldest_enqueued_age_seconds",
            "Age of the oldest waiting job across the source's queues (queue latency).",
            labels=["source"],
        )
        queue_enqueued = GaugeMetricFamily(
            "jobbridge_queue_jobs_enqueued",
            "Jobs waiting in one queue.",
            labels=["source", "queue"],
        )
        queue_oldest = GaugeMetricFamily(
            "jobbridge_queue_oldest_enqueued_age_seconds",
            "Age of the oldest waiting job of one queue.",
            labels=["source", "queue"],
        )
        for reading in self.readings:
            name = reading.name
            counters = reading.value
            up.add_metric([name, reading.system], 0 if counters is None else 1)
            timed_out.add_metric([name], 1 if reading.slow else 0)
            if counters is None:
                continue
            for field, family in families.items():
                value = getattr(counters, field)
                # None: the system cannot count this window (RQ); no sample beats a wrong one.
                if value is not None:
                    family.add_metric([name], float(value))
            if counters.oldest_enqueued_age_s is not None:
                oldest.add_metric([name], counters.oldest_enqueued_age_s)
            for queue in counters.queues:
                queue_enqueued.add_metric([name, queue.name], float(queue.enqueued))
                if queue.oldest_enqueued_age_s is not None:
                    queue_oldest.add_metric([name, queue.name], queue.oldest_enqueued_age_s)
        problems = GaugeMetricFamily(
            "jobbridge_source_problems",
            "Parts of the source that could not be read (a key of the wrong type, queues "
            "left out); its counts leave them out.",
            labels=["source"],
        )
        for reading in self.readings:
            if reading.value is not None:
                problems.add_metric([reading.name], len(reading.value.problems))
        yield up
        yield timed_out
        yield problems
        yield from families.values()
        yield oldest
        yield queue_enqueued
        yield queue_oldest


class SharedStateCollector(Collector):
    """Whether the replicas' shared state is reachable, and how many replicas share it."""

    def __init__(self) -> None:
        self.shared: SharedState | None = None

    def collect(self) -> Iterable[Metric]:
        shared = self.shared
        if shared is None or shared.client is None:
            return
        yield GaugeMetricFamily(
            "jobbridge_shared_state_up",
            "1 when the Redis the replicas share sign-outs and failed sign-ins in answers.",
            value=1.0 if shared.up else 0.0,
        )
        yield GaugeMetricFamily(
            "jobbridge_replicas",
            "Live jobbridge processes sharing that state, this one included.",
            value=float(shared.replicas),
        )
        yield GaugeMetricFamily(
            "jobbridge_replicas_disagreeing",
            "Other live processes that sign sessions with another key than this one "
            "(their sessions are refused here): give them all the same session_secret.",
            value=float(shared.disagreeing),
        )


class Metrics:
    """The app's registry: HTTP request metrics and the source gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "jobbridge_http_requests",
            "HTTP requests served, by route name, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "jobbridge_http_request_duration_seconds",
            "Time to serve HTTP requests, by route name, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.sources = SourceCollector()
        self.registry.register(self.sources)
        self.shared = SharedStateCollector()
        self.registry.register(self.shared)
        self._lock = asyncio.Lock()

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method, str(status)).observe(seconds)

    async def render(self, service: JobService, shared: SharedState | None = None) -> bytes:
        """Read every source's counters now, then expose the whole registry as text."""
        self.shared.shared = shared
        async with self._lock:
            # No deadline of its own: every read has the service's (``read_timeout_s``).
            self.sources.readings = await service.every_counters()
            return generate_latest(self.registry)
