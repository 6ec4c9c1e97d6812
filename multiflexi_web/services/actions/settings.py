"""The post-job action settings (MULTIFLEXI_ACTION_*, MULTIFLEXI_CHAIN_MAX_DEPTH, base URL)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from multiflexi_web.actions import destinations
from multiflexi_web.config import (
    _non_negative_float,
    _non_negative_int,
    _parse,
    _positive_int,
    read_sources,
)
from multiflexi_web.executors.base import RunAs


@dataclass(frozen=True)
class ActionSettings:
    timeout: float = 30.0  # per attempt
    max_attempts: int = 5
    backoff: float = 10.0  # before the first retry; doubles each time
    backoff_max: float = 3600.0
    lease: float = 90.0  # a running delivery older than this is someone else's to retry
    threads: int = 16  # 0: this executor delivers no actions (another one does)
    linger: float = 0.03  # s between two passes with work, unless the last found a backlog
    record_linger: float = 0.25  # s a pass that only records waits after the last (≤ lease/6)
    chain_max_depth: int = 5
    nice: int = 10  # the delivery process's niceness above the executor's (0-19)
    base_url: str = "http://localhost:5000"  # for links to jobs and artifacts
    run_as: RunAs | None = (
        None  # the job user (security/process.py job_identity), set by the daemon
    )

    @property
    def stuck_after(self) -> float:
        """An attempt running this long is stuck (every network step is bounded by `timeout`,
        and a kind makes at most two requests): its lease is no longer stamped again, so once
        it lapses another executor retries the run."""
        return 2 * self.timeout + self.lease

    def backoff_for(self, attempts: int) -> float:
        """Seconds before the next attempt, after `attempts` failed ones (capped exponential)."""
        return float(min(self.backoff_max, self.backoff * 2.0 ** max(attempts - 1, 0)))


def _niceness(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 19:
        raise ValueError("out of range")
    return value


def load(environ: Mapping[str, str] | None = None) -> ActionSettings:
    src = read_sources(environ)
    # Where actions may connect (actions/destinations.py): a bad network stops the daemon now.
    destinations.policy_from(src)
    seconds, whole = "must be seconds >= 0", "must be a positive integer"
    timeout = _parse(src, "MULTIFLEXI_ACTION_TIMEOUT", 30.0, _non_negative_float, seconds)
    return ActionSettings(
        timeout=timeout,
        max_attempts=_parse(src, "MULTIFLEXI_ACTION_MAX_ATTEMPTS", 5, _positive_int, whole),
        backoff=_parse(src, "MULTIFLEXI_ACTION_BACKOFF", 10.0, _non_negative_float, seconds),
        backoff_max=_parse(
            src, "MULTIFLEXI_ACTION_BACKOFF_MAX", 3600.0, _non_negative_float, seconds
        ),
        lease=_parse(
            src, "MULTIFLEXI_ACTION_LEASE", 2 * timeout + 30, _non_negative_float, seconds
        ),
        threads=_parse(
            src, "MULTIFLEXI_ACTION_THREADS", 16, _non_negative_int, "must be a whole number >= 0"
        ),
        linger=_parse(src, "MULTIFLEXI_ACTION_LINGER", 0.03, _non_negative_float, seconds),
        record_linger=_parse(
            src, "MULTIFLEXI_ACTION_RECORD_LINGER", 0.25, _non_negative_float, seconds
        ),
        chain_max_depth=_parse(src, "MULTIFLEXI_CHAIN_MAX_DEPTH", 5, _positive_int, whole),
        nice=_parse(src, "MULTIFLEXI_ACTION_NICE", 10, _niceness, "must be a whole number 0-19"),
        base_url=(src.get("MULTIFLEXI_BASE_URL", "") or "http://localhost:5000").rstrip("/"),
    )
