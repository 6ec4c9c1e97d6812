"""multiflexi-scheduler: every tick, due RunTemplates get their slot's job and a new next run.

Options: `--once` runs one tick and exits (tests, benchmarks, cron); `--interval SECONDS` is the
pause between ticks (default 1 s); `--batch N` templates per transaction (default 10,000);
`--lanes N` batches written side by side on PostgreSQL (default 2).
Several schedulers may run against one PostgreSQL database: they split the due templates
(SKIP LOCKED) and the unique (runtemplate, slot) index keeps every slot to one job.

MULTIFLEXI_FAKE_CLOCK="<ISO start>,<unix epoch>,<speed>" makes the daemon's clock read
start + (time() - epoch) * speed: for tests and benchmarks that need slots to pass quickly.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from daemons.runtime import Runtime, boot
from multiflexi_web.extensions import db
from multiflexi_web.metrics import instruments as metrics
from multiflexi_web.models import utcnow
from multiflexi_web.services.housekeeping.prune import prune
from multiflexi_web.services.scheduling.batches import (
    DEFAULT_BATCH,
    DEFAULT_LANES,
    TickResult,
    tick,
)

EXIT_MEMORY = 3  # passed MULTIFLEXI_MEMORY_LIMIT_MB


def clock() -> Callable[[], datetime]:
    """The daemon's clock: real UTC time, or the fake one of MULTIFLEXI_FAKE_CLOCK."""
    spec = os.environ.get("MULTIFLEXI_FAKE_CLOCK", "").strip()
    if not spec:
        return utcnow
    try:
        start_s, epoch_s, speed_s = spec.split(",")
        start = datetime.fromisoformat(start_s.replace("Z", "+00:00")).astimezone(UTC)
        epoch, speed = float(epoch_s), float(speed_s)
    except ValueError as exc:
        msg = f"MULTIFLEXI_FAKE_CLOCK: expected '<ISO start>,<epoch>,<speed>' ({exc})"
        raise SystemExit(msg) from None
    return lambda: start + timedelta(seconds=(time.time() - epoch) * speed)


def housekeeping(rt: Runtime, last: float) -> float:
    """A retention pass once every MULTIFLEXI_HOUSEKEEPING_INTERVAL (between ticks; it deletes
    in short batches and stops early when the daemon is asked to stop); when it last ran."""
    every = rt.settings.housekeeping_interval
    if every <= 0 or time.monotonic() - last < every:
        return last

    def one_pass() -> dict[str, object]:
        with rt.app.app_context():
            return prune(db.session(), rt.settings, utcnow(), stop=rt.stop.is_set).as_dict()

    removed = rt.retry_db(one_pass).get("removed") or {}
    rt.log("housekeeping", **(removed if isinstance(removed, dict) else {}))
    return time.monotonic()


def run(rt: Runtime, *, interval: float, batch: int, lanes: int, once: bool) -> int:
    """The daemon loop: tick, then wait out the interval unless asked to stop; the exit code."""
    now_fn = clock()
    # The first pass waits one interval: a fleet restarted together does not prune at once.
    last_pass = time.monotonic()

    def one_tick() -> TickResult:
        with rt.app.app_context():
            return tick(now_fn(), batch=batch, lanes=lanes, should_stop=rt.stop.is_set)

    while not rt.stop.is_set():
        result = rt.retry_db(one_tick)
        metrics.record_tick(result.seconds, result.inserted, result.planned_skips, result.lags)
        if result.templates:
            rt.log(
                "tick",
                templates=result.templates,
                jobs=result.inserted,
                skipped=result.planned_skips,
                seconds=f"{result.seconds:.3f}",
            )
        for rt_id in result.invalid:
            rt.log("schedule_invalid", runtemplate=rt_id)
        if rt.over_memory_limit():
            # Exit non-zero between ticks: systemd starts a fresh process (Restart=always).
            rt.log("memory_limit", limit_mb=rt.settings.memory_limit_mb)
            return EXIT_MEMORY
        if once:
            return 0
        last_pass = housekeeping(rt, last_pass)
        rt.stop.wait(max(0.0, interval - result.seconds))
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="multiflexi-scheduler", description=__doc__.splitlines()[0])
    p.add_argument("--once", action="store_true", help="run one tick and exit")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between ticks")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="templates per transaction")
    p.add_argument(
        "--lanes",
        type=int,
        default=DEFAULT_LANES,
        help="concurrent batch writers (PostgreSQL only)",
    )
    args = p.parse_args(argv)
    if args.interval <= 0 or args.batch <= 0 or args.lanes <= 0:
        p.error("--interval, --batch and --lanes must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rt = boot("scheduler")
    rt.register()
    rt.start_heartbeat()
    try:
        code = run(rt, interval=args.interval, batch=args.batch, lanes=args.lanes, once=args.once)
    finally:
        rt.unregister()
    sys.exit(code)


if __name__ == "__main__":
    main()
