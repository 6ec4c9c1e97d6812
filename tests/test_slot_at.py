"""A scheduler slot's job knows its slot: MULTIFLEXI_SLOT_AT, as backfill jobs have it."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask

from multiflexi_web.extensions import db
from multiflexi_web.services.jobs import transitions as jobs
from tests.executor_support import drain, output_of, shell_rt


def test_a_slot_job_gets_its_slot_time_and_an_adhoc_job_none(app: Flask) -> None:
    rt = shell_rt('echo "[$MULTIFLEXI_SLOT_AT]"', overlap_policy="allow")
    slot = datetime(2026, 12, 6, 7, 30, tzinfo=UTC)
    slotted = jobs.enqueue(rt, schedule_type="interval", slot_at=slot).id
    adhoc = jobs.enqueue(rt, schedule_type="adhoc-cli").id
    db.session.commit()
    drain(app)
    assert output_of(slotted) == b"[2026-12-06T07:30:00+00:00]\n"
    assert output_of(adhoc) == b"[]\n"
