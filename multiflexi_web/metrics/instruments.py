"""The daemons' own instruments (docs/metrics.md): counted in the process that does the work and
served on its metrics port. Each observation is a lock and an addition: no database round trip.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from multiflexi_web.memory import rss_mb

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    from multiflexi_web.services.jobs.claim import ClaimedJob
    from multiflexi_web.services.jobs.output import OutputSink


class _Off:
    """Every instrument until enable(): a daemon without a metrics port has no reader for them,
    so it neither counts nor imports prometheus_client (~1.5 MiB with what it imports)."""

    def labels(self, *_values: str) -> _Off:
        return self

    def inc(self, _amount: float = 1) -> None:
        return

    def observe(self, _amount: float) -> None:
        return

    def set(self, _value: float) -> None:
        return

    def set_function(self, _fn: Callable[[], float]) -> None:
        return


_OFF: Any = _Off()
REGISTRY: CollectorRegistry = _OFF
DAEMON: Gauge = _OFF
RSS: Gauge = _OFF
HEARTBEAT_AGE: Gauge = _OFF
SLOT_LAG: Histogram = _OFF
ENQUEUED: Counter = _OFF
SKIPPED: Counter = _OFF
TICK: Histogram = _OFF
EVENTS_RECEIVED: Counter = _OFF
EVENTS_PROCESSED: Counter = _OFF
CLAIM: Histogram = _OFF
CLAIMED: Counter = _OFF
START_LAG: Histogram = _OFF
DURATION_SECONDS: Histogram = _OFF
FINISHED: Counter = _OFF
OUTPUT_STORED: Counter = _OFF
OUTPUT_DROPPED: Counter = _OFF
LOST: Counter = _OFF
DEAD_WORKERS: Counter = _OFF

FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
DURATION = (0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0)


def enabled() -> bool:
    return REGISTRY is not _OFF


def enable() -> CollectorRegistry:
    """Build the instruments (once, before a metrics port serves them); their registry."""
    global REGISTRY, DAEMON, RSS, HEARTBEAT_AGE, SLOT_LAG, ENQUEUED, SKIPPED, TICK
    global EVENTS_RECEIVED, EVENTS_PROCESSED, CLAIM, CLAIMED, START_LAG, DURATION_SECONDS
    global FINISHED, OUTPUT_STORED, OUTPUT_DROPPED, LOST, DEAD_WORKERS
    if enabled():
        return REGISTRY
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.process_collector import ProcessCollector

    # One registry per process, apart from prometheus_client's global one (which a library
    # could fill): a daemon's port serves exactly this.
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)  # process_cpu_seconds_total, process_open_fds, ...
    # -- every daemon ------------------------------------------------------------------------------
    DAEMON = Gauge(
        "multiflexi_daemon_info", "1: this daemon's kind and worker id", ["kind", "worker"],
        registry=registry,
    )  # fmt: skip
    RSS = Gauge("multiflexi_daemon_rss_bytes", "Resident memory of this daemon", registry=registry)
    RSS.set_function(lambda: rss_mb() * 1024 * 1024)
    HEARTBEAT_AGE = Gauge(
        "multiflexi_daemon_heartbeat_age_seconds",
        "Seconds since this daemon's heartbeat last reached the database",
        registry=registry,
    )

    # -- scheduler ---------------------------------------------------------------------------------
    SLOT_LAG = Histogram(
        "multiflexi_scheduler_slot_lag_seconds",
        "From a slot's planned time to its job being enqueued",
        buckets=LAG, registry=registry,
    )  # fmt: skip
    ENQUEUED = Counter(
        "multiflexi_scheduler_jobs_enqueued",
        "Slot jobs written by this scheduler",
        registry=registry,
    )
    SKIPPED = Counter(
        "multiflexi_scheduler_slots_skipped",
        "Slots recorded as skipped (misfire policy)",
        registry=registry,
    )
    TICK = Histogram(
        "multiflexi_scheduler_tick_seconds", "One scheduler tick", buckets=FAST, registry=registry
    )

    # -- eventor -----------------------------------------------------------------------------------
    EVENTS_RECEIVED = Counter(
        "multiflexi_eventor_events_received",
        "New events stored by this eventor's consumers (broker, folder, changes-db), by source id",
        ["source"], registry=registry,
    )  # fmt: skip
    EVENTS_PROCESSED = Counter(
        "multiflexi_eventor_events_processed",
        "Stored events (webhooks included) this eventor handled, by source id and result: "
        "jobs, no_match or failed",
        ["source", "result"], registry=registry,
    )  # fmt: skip

    # -- executor ----------------------------------------------------------------------------------
    CLAIM = Histogram(
        "multiflexi_executor_claim_seconds",
        "One claim of the main loop: write lock, UPDATE ... RETURNING, commit",
        buckets=FAST, registry=registry,
    )  # fmt: skip
    CLAIMED = Counter(
        "multiflexi_executor_jobs_claimed", "Jobs claimed by this executor", registry=registry
    )
    START_LAG = Histogram(
        "multiflexi_job_start_lag_seconds",
        "From a job's planned time (enqueue, or later when planned so) to its claim",
        buckets=LAG, registry=registry,
    )  # fmt: skip
    DURATION_SECONDS = Histogram(
        "multiflexi_job_duration_seconds",
        "Jobs run by this executor, claim to finish, by application id",
        ["app"], buckets=DURATION, registry=registry,
    )  # fmt: skip
    FINISHED = Counter(
        "multiflexi_executor_jobs_finished",
        "Jobs run to an end by this executor, by application id and status",
        ["app", "status"], registry=registry,
    )  # fmt: skip
    OUTPUT_STORED = Counter(
        "multiflexi_executor_output_stored_bytes",
        "Job output bytes kept in the database, by stream",
        ["stream"], registry=registry,
    )  # fmt: skip
    OUTPUT_DROPPED = Counter(
        "multiflexi_executor_output_dropped_bytes",
        "Job output bytes dropped from the middle past MULTIFLEXI_OUTPUT_CAP_MB, by stream",
        ["stream"], registry=registry,
    )  # fmt: skip
    LOST = Counter(
        "multiflexi_executor_jobs_lost",
        "Jobs this executor's reaper marked lost (their executor died or their claim was orphaned)",
        registry=registry,
    )
    DEAD_WORKERS = Counter(
        "multiflexi_executor_workers_dead",
        "Daemons this executor's reaper judged dead by their heartbeat",
        registry=registry,
    )
    _per_app.cache_clear()  # no stale no-op children
    REGISTRY = registry  # last: enabled() is true only once every instrument exists
    return registry


def bind_daemon(kind: str, worker_id: int | None, heartbeat_age: Callable[[], float]) -> None:
    """This process's daemon: its identity and where its heartbeat's age comes from."""
    DAEMON.labels(kind, str(worker_id or 0)).set(1)
    HEARTBEAT_AGE.set_function(heartbeat_age)


def seconds_since(now: datetime, then: datetime | str | None) -> float:
    """`now - then`; a raw SQLite row holds naive UTC text."""
    if then is None:
        return 0.0
    if isinstance(then, str):
        then = datetime.fromisoformat(then)
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return max(0.0, (now - then).total_seconds())


def record_tick(seconds: float, inserted: int, skipped: int, lags: list[tuple[float, int]]) -> None:
    """A scheduler tick: its time, its jobs and each slot job's lag (about 1 µs per job)."""
    if not enabled():
        return
    TICK.observe(seconds)
    ENQUEUED.inc(inserted)
    SKIPPED.inc(skipped)
    for lag, jobs in lags:
        for _ in range(jobs):
            SLOT_LAG.observe(lag)


def claimed(jobs: list[ClaimedJob]) -> None:
    """Jobs an executor claimed: counted, and each one's wait past its planned time."""
    if not enabled():
        return
    CLAIMED.inc(len(jobs))
    for job in jobs:
        START_LAG.observe(seconds_since(job.started_at, job.planned))


def job_ran(app_id: int, status: str, seconds: float, sink: OutputSink) -> None:
    """A job's end on its slot: duration and status by application, output kept and dropped."""
    if not enabled():
        return
    duration, finished = _per_app(app_id, status)
    duration.observe(seconds)
    finished.inc()
    for stream, st in sink.streams.items():
        if st.total:
            OUTPUT_STORED.labels(stream).inc(st.total - st.dropped)
        if st.dropped:
            OUTPUT_DROPPED.labels(stream).inc(st.dropped)


@cache
def _per_app(app_id: int, status: str) -> tuple[Histogram, Counter]:
    # labels() validates and locks on every call: its children are looked up once per pair.
    app = str(app_id)
    return DURATION_SECONDS.labels(app), FINISHED.labels(app, status)
