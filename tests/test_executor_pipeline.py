"""Statements sent pipelined (PostgreSQL) are applied, and a failure surfaces as a DBAPIError."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from multiflexi_web.db.raw import driver
from multiflexi_web.extensions import db
from multiflexi_web.models import JobOutput, utcnow
from multiflexi_web.runner.unit import pipelined
from multiflexi_web.services.jobs.statements import OUTPUT_INSERT
from tests.executor_support import schedule, shell_rt


def _row(job_id: int, seq: int) -> dict[str, object]:
    return {"job_id": job_id, "seq": seq, "stream": "stdout", "data": b"x", "created_at": utcnow()}


def _count() -> int:
    return db.session.scalar(select(func.count()).select_from(JobOutput)) or 0


def test_pipelined_statements_are_applied(app: Flask) -> None:
    [job_id] = schedule(shell_rt("true"))
    with pipelined():
        drv = driver(db.session())
        drv.many(OUTPUT_INSERT, [_row(job_id, 1)])  # no RETURNING to wait for
        drv.many(OUTPUT_INSERT, [_row(job_id, 2), _row(job_id, 3)])
    db.session.commit()
    assert _count() == 3


def test_a_failure_inside_is_a_dbapi_error_and_rolls_back(app: Flask) -> None:
    [job_id] = schedule(shell_rt("true"))
    with pytest.raises(DBAPIError), pipelined():
        drv = driver(db.session())
        drv.many(OUTPUT_INSERT, [_row(job_id, 1)])
        drv.many(OUTPUT_INSERT, [_row(job_id + 1000, 1)])  # no such job: FK violation
    db.session.rollback()
    assert _count() == 0
    driver(db.session()).many(OUTPUT_INSERT, [_row(job_id, 1)])  # usable again
    db.session.commit()
    assert _count() == 1
