"""Statements of the executor's hot path, compiled once per dialect (db/raw.py).

The executor finishes hundreds of jobs a second; through the ORM session each statement cost
more CPU than the database spent running it. transitions.py, output.py and artifacts.py run
these on the session's connection.
"""

from __future__ import annotations

import functools
from typing import Any, cast

from sqlalchemy import BindParameter, Table, bindparam, case, insert, update

from multiflexi_web.db.raw import RawStatement
from multiflexi_web.models import Artifact, Job, JobOutput, RunTemplate
from multiflexi_web.models.base import UTCDateTime
from multiflexi_web.models.job import sources, status_in

COUNTERS = ("stdout_bytes", "stderr_bytes", "stdout_dropped", "stderr_dropped")


# The finishes' WHERE on the status: wherever the job state table's finishing functions move
# jobs from (running); the new status is the bound p_status.
_BY = "jobs.transitions."
FINISHED_FROM = sources(_BY + "finish", _BY + "send_success", _BY + "mark_lost")


def _p(name: str) -> BindParameter[Any]:
    return bindparam(name)


def _finish(with_record: bool) -> Any:
    values: dict[str, Any] = {
        "status": _p("p_status"),
        "exit_code": _p("p_exit"),
        "finished_at": bindparam("p_now", type_=UTCDateTime()),
        "status_reason": _p("p_reason"),
    }
    if with_record:
        values.update(pid=_p("p_pid"), command=_p("p_command"), env=_p("p_env"))
        values.update({c: _p(f"p_{c}") for c in COUNTERS})
    return update(Job).where(Job.id == _p("p_id"), status_in(FINISHED_FROM)).values(values)


def _counters() -> Any:
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
            # A run is not an edit of the template: keep updated_at (and skip its onupdate).
            updated_at=RunTemplate.updated_at,
        )
    )


def _insert_all(table: Any) -> Any:
    """INSERT binding every column but the id (no Python-side defaults, no RETURNING)."""
    cols = [c for c in cast(Table, table).columns if c.name != "id"]
    return insert(table).values({c.name: bindparam(c.name, type_=c.type) for c in cols})


FINISH = RawStatement(lambda: _finish(False))
FINISH_WITH_RECORD = RawStatement(lambda: _finish(True))
COUNTS = RawStatement(_counters)
OUTPUT_INSERT = RawStatement(lambda: _insert_all(JobOutput.__table__))
ARTIFACT_INSERT = RawStatement(lambda: _insert_all(Artifact.__table__))
# Up to ARTIFACT_ROWS rows in one statement, each row's (id, file name) returned: for a
# finish that hands its action runs over with their links (runner/actions.py). One statement
# for a job's few artifacts, not one per row: a job's two output files stored in a pipeline
# cost the executor 0.23-0.25 ms of CPU against 0.28-0.30 (a loop of 2,000 on PostgreSQL), and
# the server parses and runs one statement instead of two.
ARTIFACT_ROWS = 8


def _insert_rows(n: int) -> Any:
    """INSERT of `n` rows binding every column but the id, row i's values named `<column>_i`."""
    table = cast(Table, Artifact.__table__)
    cols = [c for c in table.columns if c.name != "id"]
    rows = [{c.name: bindparam(f"{c.name}_{i}", type_=c.type) for c in cols} for i in range(n)]
    return insert(table).values(rows).returning(table.c.id, table.c.filename)


ARTIFACT_INSERT_RETURNING = tuple(
    RawStatement(functools.partial(_insert_rows, n)) for n in range(1, ARTIFACT_ROWS + 1)
)
