"""The daemons' own instruments (docs/metrics.md): counted in the process that does the work and
served on its metrics port. Each observation is a lock and an addition: no database round trip.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

from multiflexi_web.memory import rss_mb

if TYPE_CHECKING:
    from multiflexi_web.services.jobs.claim import ClaimedJob
    from multiflexi_web.services.jobs.output import OutputSink

# One registry per process, apart from prometheus_client's global one (which a library could
# fill): a daemon's port serves exactly this.
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_open_fds, ...

FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
DURATION = (0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0)

# -- every daemon -----------------------------------------------------------------------------
DAEMON = Gauge(
    "multiflexi_daemon_info", "1: this daemon's kind and worker id", ["kind", "worker"],
    registry=REGISTRY,
)  # fmt: skip
RSS = Gauge("multiflexi_daemon_rss_bytes", "Resident memory of this daemon", registry=REGISTRY)
RSS.set_function(lambda: rss_mb() * 1024 * 1024)
HEARTBEAT_AGE = Gauge(
    "multiflexi_daemon_heartbeat_age_seconds",
    "Seconds since this daemon's heartbeat last reached the database",
    registry=REGISTRY,
)

# -- scheduler --------------------------------------------------------------------------------
SLOT_LAG = Histogram(
    "multiflexi_scheduler_slot_lag_seconds",
    "From a slot's planned time to its job being enqueued",
    buckets=LAG, registry=REGISTRY,
)  # fmt: skip
ENQUEUED = Counter(
    "multiflexi_scheduler_jobs_enqueued", "Slot jobs written by this scheduler", registry=REGISTRY
)
SKIPPED = Counter(
    "multiflexi_scheduler_slots_skipped",
    "Slots recorded as skipped (misfire policy)",
    registry=REGISTRY,
)
TICK = Histogram(
    "multiflexi_scheduler_tick_seconds", "One scheduler tick", buckets=FAST, registry=REGISTRY
)

# -- eventor ----------------------------------------------------------------------------------
EVENTS_RECEIVED = Counter(
    "multiflexi_eventor_events_received",
    "New events stored by this eventor's consumers (broker, folder, changes-db), by source id",
    ["source"], registry=REGISTRY,
)  # fmt: skip
EVENTS_PROCESSED = Counter(
    "multiflexi_eventor_events_processed",
    "Stored events (webhooks included) this eventor handled, by source id and result: "
    "jobs, no_match or failed",
    ["source", "result"], registry=REGISTRY,
)  # fmt: skip

# -- executor ---------------------------------------------------------------------------------
CLAIM = Histogram(
    "multiflexi_executor_claim_seconds",
    "One claim of the main loop: write lock, UPDATE ... RETURNING, commit",
    buckets=FAST, registry=REGISTRY,
)  # fmt: skip
CLAIMED = Counter(
    "multiflexi_executor_jobs_claimed", "Jobs claimed by this executor", registry=REGISTRY
)
START_LAG = Histogram(
    "multiflexi_job_start_lag_seconds",
    "From a job's planned time (enqueue, or later when planned so) to its claim",
    buckets=LAG, registry=REGISTRY,
)  # fmt: skip
DURATION_SECONDS = Histogram(
    "multiflexi_job_duration_seconds",
    "Jobs run by this executor, claim to finish, by application id",
    ["app"], buckets=DURATION, registry=REGISTRY,
)  # fmt: skip
FINISHED = Counter(
    "multiflexi_executor_jobs_finished",
    "Jobs run to an end by this executor, by application id and status",
    ["app", "status"], registry=REGISTRY,
)  # fmt: skip
OUTPUT_STORED = Counter(
    "multiflexi_executor_output_stored_bytes",
    "Job output bytes kept in the database, by stream",
    ["stream"], registry=REGISTRY,
)  # fmt: skip
OUTPUT_DROPPED = Counter(
    "multiflexi_executor_output_dropped_bytes",
    "Job output bytes dropped from the middle past MULTIFLEXI_OUTPUT_CAP_MB, by stream",
    ["stream"], registry=REGISTRY,
)  # fmt: skip
LOST = Counter(
    "multiflexi_executor_jobs_lost",
    "Jobs this executor's reaper marked lost (their executor died or their claim was orphaned)",
    registry=REGISTRY,
)
DEAD_WORKERS = Counter(
    "multiflexi_executor_workers_dead",
    "Daemons this executor's reaper judged dead by their heartbeat",
    registry=REGISTRY,
)


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
    TICK.observe(seconds)
    ENQUEUED.inc(inserted)
    SKIPPED.inc(skipped)
    for lag, jobs in lags:
        for _ in range(jobs):
            SLOT_LAG.observe(lag)


def claimed(jobs: list[ClaimedJob]) -> None:
    """Jobs an executor claimed: counted, and each one's wait past its planned time."""
    CLAIMED.inc(len(jobs))
    for job in jobs:
        START_LAG.observe(seconds_since(job.started_at, job.planned))


def job_ran(app_id: int, status: str, seconds: float, sink: OutputSink) -> None:
    """A job's end on its slot: duration and status by application, output kept and dropped."""
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
