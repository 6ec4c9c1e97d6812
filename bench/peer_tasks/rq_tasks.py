"""rq: the job as a function; rq keeps its return value (output and times) in Redis."""

from __future__ import annotations

from typing import Any

from bench.peer_tasks import run_job


def job() -> dict[str, Any]:
    return run_job()
