"""The scheduler tick against a real database: slots, misfire policies, overlap, cadence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import Application, Company, Job, JobStatus, RunTemplate
from multiflexi_web.services.jobs import transitions as jobs
from multiflexi_web.services.scheduling.batches import tick
from multiflexi_web.services.scheduling.times import refresh_next_run
from tests.factories import make_app, make_company, make_job

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)  # a Monday
BOTH = pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "each"])


def make_rt(
    company: Company,
    app: Application,
    *,
    interval: str = "h",
    next_run_at: datetime | None = T0,
    **kw: Any,
) -> RunTemplate:
    rt = RunTemplate(
        company_id=company.id,
        application_id=app.id,
        name=f"rt-{interval}",
        interval=interval,
        next_run_at=next_run_at,
        **kw,
    )
    db.session.add(rt)
    db.session.commit()
    return rt


def slot_jobs(rt_id: int) -> list[tuple[datetime | None, str, str]]:
    db.session.expire_all()
    q = select(Job).where(Job.runtemplate_id == rt_id).order_by(Job.slot_at, Job.id)
    return [(j.slot_at, j.status, j.schedule_type) for j in db.session.scalars(q)]


def reload(rt: RunTemplate) -> RunTemplate:
    db.session.expire_all()
    fresh = db.session.get(RunTemplate, rt.id)
    assert fresh is not None
    return fresh


@pytest.fixture
def co(app: Flask) -> Company:
    return make_company()


@pytest.fixture
def prog(app: Flask) -> Application:
    return make_app()


@BOTH
def test_due_slot_enqueued_once_and_next_run_stored(
    co: Company, prog: Application, bulk: bool
) -> None:
    rt = make_rt(co, prog, interval="h")
    res = tick(T0 + timedelta(seconds=1), bulk=bulk)
    assert (res.templates, res.inserted) == (1, 1)
    assert slot_jobs(rt.id) == [(T0, "scheduled", "hourly")]
    fresh = reload(rt)
    assert fresh.next_run_at == T0 + timedelta(hours=1)
    assert fresh.last_slot_at == T0
    job = db.session.scalars(select(Job).where(Job.runtemplate_id == rt.id)).one()
    assert job.scheduled_for == T0 and job.app_version == "1.0" and job.attempt == 1
    # Nothing more is due until the next slot.
    assert tick(T0 + timedelta(minutes=30), bulk=bulk).templates == 0
    assert tick(T0 + timedelta(hours=1), bulk=bulk).inserted == 1
    assert [s for s, _, _ in slot_jobs(rt.id)] == [T0, T0 + timedelta(hours=1)]


@BOTH
def test_not_yet_due_inactive_and_manual_are_left_alone(
    co: Company, prog: Application, bulk: bool
) -> None:
    later = make_rt(co, prog, next_run_at=T0 + timedelta(minutes=5))
    inactive = make_rt(co, prog, active=False)
    res = tick(T0, bulk=bulk)
    assert res.templates == 0
    assert slot_jobs(later.id) == [] and slot_jobs(inactive.id) == []


@BOTH
def test_a_slot_already_written_is_not_duplicated(
    co: Company, prog: Application, bulk: bool
) -> None:
    rt = make_rt(co, prog)
    jobs.enqueue(rt, schedule_type="hourly", when=T0, slot_at=T0)  # another scheduler was first
    db.session.commit()
    res = tick(T0, bulk=bulk)
    assert (res.templates, res.inserted) == (1, 0)
    assert len(slot_jobs(rt.id)) == 1
    assert reload(rt).next_run_at == T0 + timedelta(hours=1)


DOWNTIME_NOW = T0 + timedelta(hours=5, minutes=30)  # slots 10:00 .. 15:00 passed


@BOTH
def test_misfire_latest_runs_only_the_most_recent_slot(
    co: Company, prog: Application, bulk: bool
) -> None:
    rt = make_rt(co, prog, misfire_policy="latest")
    tick(DOWNTIME_NOW, bulk=bulk)
    assert slot_jobs(rt.id) == [(T0 + timedelta(hours=5), "scheduled", "hourly")]
    assert reload(rt).next_run_at == T0 + timedelta(hours=6)


@BOTH
def test_misfire_skip_records_every_missed_slot(co: Company, prog: Application, bulk: bool) -> None:
    rt = make_rt(co, prog, misfire_policy="skip")
    tick(DOWNTIME_NOW, bulk=bulk)
    got = slot_jobs(rt.id)
    assert [s for s, _, _ in got] == [T0 + timedelta(hours=h) for h in range(6)]
    assert {st for _, st, _ in got} == {"skipped"}
    reasons = {j.status_reason for j in db.session.scalars(select(Job))}
    assert reasons == {"slot missed while no scheduler ran (misfire policy: skip)"}
    assert reload(rt).next_run_at == T0 + timedelta(hours=6)


@BOTH
def test_misfire_skip_still_runs_a_slot_that_is_on_time(
    co: Company, prog: Application, bulk: bool
) -> None:
    rt = make_rt(co, prog, misfire_policy="skip", next_run_at=T0 - timedelta(hours=2))
    tick(T0 + timedelta(seconds=5), bulk=bulk)
    assert [st for _, st, _ in slot_jobs(rt.id)] == ["skipped", "skipped", "scheduled"]


@BOTH
def test_misfire_all_runs_each_up_to_the_catchup_limit(
    co: Company, prog: Application, bulk: bool
) -> None:
    rt = make_rt(co, prog, interval="i", misfire_policy="all")
    tick(T0 + timedelta(minutes=14, seconds=30), bulk=bulk)  # 15 slots passed, limit 10
    got = slot_jobs(rt.id)
    assert len(got) == 15
    assert [st for _, st, _ in got] == ["skipped"] * 5 + ["scheduled"] * 10
    assert got[-1][0] == T0 + timedelta(minutes=14)
    assert reload(rt).next_run_at == T0 + timedelta(minutes=15)


@BOTH
def test_overlap_skip_records_the_slot_while_a_job_runs(
    co: Company, prog: Application, bulk: bool
) -> None:
    rt = make_rt(co, prog, overlap_policy="skip")
    waiting = make_rt(co, prog, overlap_policy="wait")
    for r in (rt, waiting):
        make_job(r, status=JobStatus.RUNNING)
    tick(T0, bulk=bulk)
    assert [st for s, st, _ in slot_jobs(rt.id) if s] == ["skipped"]
    assert [st for s, st, _ in slot_jobs(waiting.id) if s] == ["scheduled"]
    skipped = db.session.scalars(select(Job).where(Job.status == "skipped")).one()
    assert "overlap policy: skip" in (skipped.status_reason or "")
    assert skipped.finished_at is not None


@BOTH
def test_adhoc_runs_leave_the_cadence_alone(co: Company, prog: Application, bulk: bool) -> None:
    rt = make_rt(co, prog, next_run_at=T0 + timedelta(hours=1))
    for kind in ("adhoc-cli", "adhoc-web", "adhoc-api", "event"):
        jobs.enqueue(rt, schedule_type=kind, when=T0)
    db.session.commit()
    assert tick(T0 + timedelta(minutes=10), bulk=bulk).templates == 0
    assert reload(rt).next_run_at == T0 + timedelta(hours=1)
    tick(T0 + timedelta(hours=1), bulk=bulk)
    assert [s for s, _, _ in slot_jobs(rt.id) if s] == [T0 + timedelta(hours=1)]
    assert reload(rt).next_run_at == T0 + timedelta(hours=2)


def test_new_or_reactivated_template_starts_at_its_next_future_slot(
    co: Company, prog: Application
) -> None:
    rt = make_rt(co, prog, interval="d", delay=7200, active=False, next_run_at=None)
    rt.active = True
    refresh_next_run(rt, T0, "UTC")  # re-activated at 10:00: today's 02:00 is not run
    db.session.commit()
    assert rt.next_run_at == datetime(2026, 5, 5, 2, 0, tzinfo=UTC)
    assert tick(T0 + timedelta(hours=1)).templates == 0


def test_invalid_stored_schedule_is_parked_not_fatal(co: Company, prog: Application) -> None:
    bad = make_rt(co, prog, interval="c", cron="not a cron")
    good = make_rt(co, prog)
    res = tick(T0)
    assert res.invalid == [bad.id]
    assert reload(bad).next_run_at is None
    assert len(slot_jobs(good.id)) == 1


def test_both_writers_produce_identical_jobs(co: Company, prog: Application) -> None:
    def run(bulk: bool) -> list[tuple[Any, ...]]:
        rts = [
            make_rt(co, prog, misfire_policy=m, overlap_policy=o, interval=i)
            for m in ("latest", "skip", "all")
            for o in ("wait", "skip")
            for i in ("i", "h")
        ]
        make_job(rts[1], status=JobStatus.RUNNING)
        # Overlap skip with several missed slots (misfire all): rts[10] busy before the tick,
        # rts[11] not; the batch's own new jobs must not make rts[11] busy in either writer.
        make_job(rts[10], status=JobStatus.RUNNING)
        tick(DOWNTIME_NOW, bulk=bulk)
        db.session.expire_all()
        out = []
        for n, r in enumerate(rts):
            for j in db.session.scalars(
                select(Job)
                .where(Job.runtemplate_id == r.id, Job.slot_at.is_not(None))
                .order_by(Job.slot_at)
            ):
                out.append(
                    (
                        n,
                        j.slot_at,
                        j.status,
                        j.status_reason,
                        j.schedule_type,
                        j.scheduled_for,
                        j.attempt,
                        j.executor,
                        j.app_version,
                        j.finished_at is not None,
                        j.company_id,
                        j.application_id,
                    )
                )
        return out

    bulk = run(True)
    assert {row[2] for row in bulk if row[0] == 10} == {"skipped"}
    assert [row[2] for row in bulk if row[0] == 11] == ["scheduled"] * 6  # 10:00 .. 15:00
    assert bulk == run(False)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_parallel_lanes_split_the_work_without_duplicates(co: Company, prog: Application) -> None:
    rows = [
        RunTemplate(
            company_id=co.id, application_id=prog.id, name=f"r{i}", interval="i", next_run_at=T0
        )
        for i in range(300)
    ]
    db.session.add_all(rows)
    db.session.commit()
    res = tick(T0 + timedelta(seconds=5), batch=40, lanes=3)
    assert (res.templates, res.inserted) == (300, 300)
    assert res.batches >= 8  # 300 / 40 rounded up, plus each lane's final short batch
    db.session.expire_all()
    nexts = set(db.session.scalars(select(RunTemplate.next_run_at)))
    assert nexts == {T0 + timedelta(minutes=1)}
    assert db.session.scalar(select(func.count(func.distinct(Job.runtemplate_id)))) == 300


def test_an_idle_tick_ends_its_read_without_a_rollback(app: Flask) -> None:
    """An idle tick commits its read instead of rolling it back: a rollback made psycopg forget
    the statements it had prepared on the connection (db/engine.py end_read), so the tick's
    query was planned anew every second. It still leaves no transaction open."""
    make_rt(make_company(), make_app(), next_run_at=T0 + timedelta(hours=1))
    rollbacks: list[object] = []

    def rolled_back(conn: object) -> None:
        rollbacks.append(conn)

    event.listen(db.engine, "rollback", rolled_back)
    try:
        for minute in range(3):
            assert tick(T0 + timedelta(minutes=minute)).templates == 0
            assert not db.session().in_transaction()
    finally:
        event.remove(db.engine, "rollback", rolled_back)
    assert rollbacks == []
