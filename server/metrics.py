"""Prometheus metrics at ``/metrics``.

Per-request work is one histogram observation per decision; everything that can be read
when Prometheus scrapes (ledger batch size and commit latency, queue length, in-flight
requests, refusals) is read then, by a collector, at no cost to requests.

With several workers (``frontline serve --workers N``) every scrape, whichever worker answers
it, is the same one view of them all:

    counters, histograms ──▶ memory-mapped files, one per worker, in <data dir>/metrics/
      (prometheus_client's multiprocess mode; cleared when the server starts)
                             ─▶ summed over the workers at each scrape: one total
    live figures (ledger, admission, alerts, timers), labelled instance=<instance>-<n>
                             ─▶ the answering worker's read at the scrape; every other
                                worker's as it wrote them at most PUBLISH_EVERY ago
                                (live-<pid>.json beside the files)

One worker keeps everything in memory, as prometheus_client does by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from litestar import Request, Response, get
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from audit.indexer import lag as index_lag

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
SHARED_DIR = "metrics"  # under the data directory, with several workers
PUBLISH_EVERY = 1.0  # seconds between a worker's writes of its live figures
STALE_AFTER = 10.0  # live figures older than this are a stopped worker's: left out


def share_between_workers(data_dir: Path) -> Path:
    """Before the workers start: an empty ``<data dir>/metrics`` for their files, named to
    them (and to prometheus_client, which reads it when imported) by
    ``PROMETHEUS_MULTIPROC_DIR``. Counters start from zero with the server, as they do with
    one worker."""
    path = data_dir / SHARED_DIR
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


class Metrics:
    """The service's metrics, in a registry of their own (one per process); ``shared`` is
    the directory the workers share (``share_between_workers``), None with one worker."""

    def __init__(self, instance: str, shared: Path | None = None) -> None:
        self.registry = CollectorRegistry()
        self.instance = instance
        self.shared = shared
        self.live: list[Collector] = []
        self.decisions = Histogram(
            "frontline_decision_seconds",
            "Time to evaluate a decision and record it durably, by ruleset and revision",
            ["ruleset", "revision"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.context_lookups = Counter(
            "frontline_context_lookups_total",
            "Cached-context lookups by decisions: hit (a context was cached) or miss",
            ["result"],
            registry=self.registry,
        )
        self.ruleset_changes = Counter(
            "frontline_ruleset_changes_total",
            "Deploys, activations, rollbacks, canaries and shadows recorded",
            ["action"],
            registry=self.registry,
        )
        self.problems = Counter(
            "frontline_problems_total",
            "Requests answered with a problem (4xx/5xx), by status",
            ["status"],
            registry=self.registry,
        )

        self._decided: dict[tuple[str, int | None], Any] = {}
        self._lookups = {
            True: self.context_lookups.labels("hit"),
            False: self.context_lookups.labels("miss"),
        }

    def decided(self, ruleset: str, revision: int | None, seconds: float) -> None:
        """Observe one decision's time (the labelled child is looked up once per revision:
        ``labels()`` costs more than the observation)."""
        child = self._decided.get((ruleset, revision))
        if child is None:
            child = self._decided[(ruleset, revision)] = self.decisions.labels(
                ruleset, str(revision)
            )
        child.observe(seconds)

    def context_lookup(self, hit: bool) -> None:
        self._lookups[hit].inc()

    def watch(self, collector: Collector) -> None:
        """Read ``collector`` at every scrape (a live figure: the ledger's, the gate's...)."""
        self.live.append(collector)
        self.registry.register(collector)

    def exposition(self) -> bytes:
        """What ``/metrics`` answers: this process's registry, or with several workers the
        one view of them all."""
        if self.shared is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.shared))  # type: ignore[no-untyped-call]
        registry.register(_Workers(self))
        return generate_latest(registry)

    def _live_families(self) -> list[Metric]:
        return [family for collector in self.live for family in collector.collect()]

    def publish(self, families: list[Metric] | None = None) -> None:
        """Write this worker's live figures where the other workers' scrapes read them
        (whole: a scrape never reads half a file)."""
        assert self.shared is not None
        if families is None:
            families = self._live_families()
        data = [
            [f.name, f.documentation, f.type, [[s.name, s.labels, s.value] for s in f.samples]]
            for f in families
        ]
        target = self.shared / f"live-{os.getpid()}.json"
        scratch = target.with_suffix(".tmp")
        scratch.write_text(json.dumps(data), encoding="utf-8")
        os.replace(scratch, target)

    async def publish_forever(self) -> None:
        """Every ``PUBLISH_EVERY`` seconds, ``publish``, in a thread: reading the index's lag
        and writing the file take milliseconds the event loop does not wait for. A failed
        one (a write refused, a tally changed while read) is simply done again."""
        while True:
            with contextlib.suppress(OSError, RuntimeError):
                await asyncio.to_thread(self.publish)
            await asyncio.sleep(PUBLISH_EVERY)

    def withdraw(self) -> None:
        """At shutdown: this worker's live figures are no longer live."""
        if self.shared is not None:
            (self.shared / f"live-{os.getpid()}.json").unlink(missing_ok=True)


class _Workers(Collector):
    """The live figures of every worker: this one's read now (and published, so the others'
    next scrapes have them too), the others' from their last ``publish``; families of the
    same name merged into one."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        metrics = self.metrics
        assert metrics.shared is not None
        own = metrics._live_families()
        with contextlib.suppress(OSError):  # this scrape still answers all the same
            metrics.publish(own)
        merged = {family.name: family for family in own}
        mine = f"live-{os.getpid()}.json"
        oldest = time.time() - STALE_AFTER
        for path in metrics.shared.glob("live-*.json"):
            if path.name == mine:
                continue
            try:
                if path.stat().st_mtime < oldest:
                    continue
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):  # it went away, or is being replaced
                continue
            for name, documentation, kind, samples in data:
                family = merged.get(name)
                if family is None:
                    family = merged[name] = Metric(name, documentation, kind)
                for sample, labels, value in samples:
                    family.add_sample(sample, labels, value)
        yield from merged.values()


class LedgerCollector(Collector):
    """Reads the ledger writer's counters at scrape time."""

    def __init__(
        self,
        writer: Any,
        admission: Any,
        instance: str,
        shipper: Any = None,
        ledger_dir: Path | None = None,
    ) -> None:
        self.writer = writer
        self.admission = admission
        self.instance = instance
        self.shipper = shipper
        self.ledger_dir = ledger_dir

    def collect(self) -> Iterator[GaugeMetricFamily]:
        w = self.writer
        values: tuple[tuple[str, str, float], ...] = (
            ("frontline_ledger_records", "Records committed since start", w.records),
            ("frontline_ledger_batches", "Batches committed since start", w.batches),
            ("frontline_ledger_last_batch_size", "Records in the last batch", w.last_batch_size),
            (
                "frontline_ledger_last_commit_seconds",
                "Seal, write and fsync time of the last batch",
                w.last_commit_seconds,
            ),
            ("frontline_ledger_pending", "Records waiting to be committed", w.pending),
        )
        if self.ledger_dir is not None:
            behind, seconds = index_lag(self.ledger_dir, w.store, w.head[0])
            values += (
                (
                    "frontline_ledger_index_lag_records",
                    "Records not yet in the query index",
                    behind,
                ),
                (
                    "frontline_ledger_index_lag_seconds",
                    "Age of the oldest record not yet in the query index",
                    seconds,
                ),
            )
        for name, text, value in values:
            family = GaugeMetricFamily(name, text, labels=["instance"])
            family.add_metric([self.instance], float(value))
            yield family
        if self.shipper is not None:
            status = self.shipper.status()
            for name, text, value in (
                ("frontline_ledger_unshipped", "Records not yet in PostgreSQL", status.lag),
                (
                    "frontline_ledger_shipping_connected",
                    "1 when the shipper is connected to PostgreSQL",
                    int(status.connected),
                ),
            ):
                family = GaugeMetricFamily(name, text, labels=["instance"])
                family.add_metric([self.instance], float(value))
                yield family
        gate = self.admission
        if gate is not None:
            for name, text, value in (
                ("frontline_requests_in_flight", "HTTP requests in flight", gate.in_flight),
                (
                    "frontline_requests_refused",
                    "Requests refused by admission control since start",
                    gate.refused,
                ),
                (
                    "frontline_event_loop_delay_seconds",
                    "How late the event loop last ran a timer: how long a request waits",
                    gate.delay,
                ),
                (
                    "frontline_admission_shedding",
                    "1 while new requests are refused because they would wait",
                    int(gate.shedding),
                ),
            ):
                family = GaugeMetricFamily(name, text, labels=["instance"])
                family.add_metric([self.instance], float(value))
                yield family


class AlertCollector(Collector):
    """Reads the alert bus's counters at scrape time."""

    def __init__(self, alerting: Any, instance: str, timers: Any = None) -> None:
        self.alerting = alerting
        self.instance = instance
        self.timers = timers

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        yield from self._totals()
        yield from self._per_rule()
        if self.timers is not None:
            yield from self._timers()

    def _timers(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        """Timer rules run on this instance, and how late each run was against its due time."""
        timers = self.timers
        runs = CounterMetricFamily(
            "frontline_timer_evaluations",
            "Timer rule evaluations of a live interaction on this instance",
            labels=["instance"],
        )
        runs.add_metric([self.instance], float(timers.evaluated))
        yield runs
        late = HistogramMetricFamily(
            "frontline_timer_lateness_seconds",
            "How long after it was due each timer evaluation started",
            labels=["instance"],
        )
        bounds = [*(str(b) for b in timers.late_seconds), "+Inf"]
        late.add_metric(
            [self.instance],
            list(zip(bounds, (float(c) for c in timers.late_buckets), strict=True)),
            timers.late_sum,
        )
        yield late

    def _totals(self) -> Iterator[CounterMetricFamily]:
        bus = self.alerting.bus
        for name, text, value in (
            ("frontline_alerts_raised", "Alerts raised on this instance", self.alerting.raised),
            (
                "frontline_escalations_raised",
                "Escalation rules raised in live interactions on this instance (on a timer)",
                self.alerting.escalations,
            ),
            ("frontline_alerts_published", "Alerts handed to the alert bus", bus.published),
            (
                "frontline_alerts_dropped",
                "Alerts a desktop stream could not keep (each one logged with its id)",
                bus.dropped,
            ),
        ):
            family = CounterMetricFamily(name, text, labels=["instance"])
            family.add_metric([self.instance], float(value))
            yield family

    def _per_rule(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        """Per ruleset and alert rule: raised, delivered to a desktop, held back (by reason:
        repeat, quiet, topic, limit), acknowledged, escalated; and the time to acknowledge."""
        tally = self.alerting.tally
        labels = ["instance", "ruleset", "rule"]
        families = {
            what: CounterMetricFamily(f"frontline_alert_rule_{what}", text, labels=labels)
            for what, text in (
                ("raised", "Alerts raised, by rule"),
                ("delivered", "Alerts sent to a desktop stream, by rule"),
                ("acknowledged", "Alerts an agent answered (any outcome), by rule"),
                ("escalated", "Alerts re-raised to a supervisor, unacknowledged, by rule"),
            )
        }
        suppressed = CounterMetricFamily(
            "frontline_alert_rule_suppressed",
            "Alerts held back, by rule and reason (repeat, quiet, topic, limit)",
            labels=[*labels, "reason"],
        )
        for (ruleset, rule, what), n in sorted(tally.counts.items()):
            if what.startswith("suppressed:"):
                suppressed.add_metric(
                    [self.instance, ruleset, rule, what.split(":", 1)[1]], float(n)
                )
            elif what == "repeat":
                suppressed.add_metric([self.instance, ruleset, rule, "repeat"], float(n))
            else:
                families[what].add_metric([self.instance, ruleset, rule], float(n))
        yield from families.values()
        yield suppressed
        waited = HistogramMetricFamily(
            "frontline_alert_time_to_ack_seconds",
            "From an alert raised to the agent's answer, by rule",
            labels=labels,
        )
        for (ruleset, rule), counts in sorted(tally.ack_buckets.items()):
            bounds = [*(str(b) for b in self.alerting.ack_seconds), "+Inf"]
            waited.add_metric(
                [self.instance, ruleset, rule],
                list(zip(bounds, (float(c) for c in counts), strict=True)),
                tally.ack_sum[(ruleset, rule)],
            )
        yield waited


@get("/metrics", tags=["operations"], include_in_schema=False)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text format."""
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
