"""Statements of the executor's hot path, built once with bound parameters.

The executor finishes hundreds of jobs a second; building these statements (coercions, cache
keys) costs more CPU than running them. services/jobs.py executes them.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import BindParameter, Update, bindparam, case, update

from multiflexi_web.models import Job, JobStatus, RunTemplate
from multiflexi_web.models.base import UTCDateTime

RUNNING = JobStatus.RUNNING.value
COUNTERS = ("stdout_bytes", "stderr_bytes", "stdout_dropped", "stderr_dropped")


def _p(name: str) -> BindParameter[Any]:
    return bindparam(name)


@cache
def finish_stmt(with_record: bool) -> Update:
    values: dict[str, Any] = {
        "status": _p("p_status"),
        "exit_code": _p("p_exit"),
        "finished_at": _p("p_now"),
        "status_reason": _p("p_reason"),
    }
    if with_record:
        values.update(pid=_p("p_pid"), command=_p("p_command"), env=_p("p_env"))
        values.update({c: _p(f"p_{c}") for c in COUNTERS})
    return update(Job).where(Job.id == _p("p_id"), Job.status == RUNNING).values(values)


@cache
def counters_stmt() -> Update:
    started = bindparam("p_started", type_=UTCDateTime())
    return (
        update(RunTemplate)
        .where(RunTemplate.id == _p("p_rt"))
        .values(
            success_count=RunTemplate.success_count + _p("p_ok"),
            failure_count=RunTemplate.failure_count + _p("p_failed"),
            last_run_at=case(
                (RunTemplate.last_run_at.is_(None), started),
                (RunTemplate.last_run_at < started, started),
                else_=RunTemplate.last_run_at,
            ),
        )
    )
