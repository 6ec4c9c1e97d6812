"""The job table's keys and indexes after trimming them for the scheduler's bulk insert."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import func, inspect, select

from multiflexi_web.extensions import db
from multiflexi_web.models import Job, JobStatus, RunTemplate
from multiflexi_web.services.accounts.companies import delete_company
from tests.factories import make_company, make_job, make_runtemplate


def test_deleting_a_company_deletes_its_jobs_through_their_runtemplates(app: Flask) -> None:
    # job.company_id has no foreign key of its own: the RunTemplate's cascade must remove them.
    gone, kept = make_company(slug="gone"), make_company(slug="kept")
    for company in (gone, kept):
        rt = make_runtemplate(company)
        make_job(rt)
        make_job(rt, status=JobStatus.FAILED)
    db.session.commit()
    delete_company(gone)
    db.session.commit()
    db.session.expire_all()
    assert db.session.scalar(select(func.count(RunTemplate.id))) == 1
    jobs = db.session.scalars(select(Job)).all()
    assert [(j.company.slug, j.application.id) for j in jobs] == [("kept", rt.application_id)] * 2


def test_deleting_an_original_job_clears_its_retrys_link(app: Flask) -> None:
    rt = make_runtemplate(make_company())
    first = make_job(rt, status=JobStatus.FAILED)
    retry = make_job(rt, status=JobStatus.SUCCEEDED)
    retry.retry_of_id = first.id
    db.session.commit()
    retry_id = retry.id
    db.session.delete(first)
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Job, retry_id).retry_of_id is None  # type: ignore[union-attr]


def test_rarely_set_references_have_partial_indexes(app: Flask) -> None:
    # Scheduled jobs have none of these set, so their inserts skip the indexes.
    indexes = {ix["name"]: ix for ix in inspect(db.engine).get_indexes("job")}
    for name, column in [
        ("ix_job_worker_status", "worker_id"),
        ("ix_job_event_id", "event_id"),
        ("ix_job_retry_of_id", "retry_of_id"),
    ]:
        assert indexes[name]["column_names"][0] == column
        where = str(indexes[name].get("dialect_options", {}).get(_where_key(), ""))
        assert f"{column} IS NOT NULL" in where, (name, indexes[name])


def _where_key() -> str:
    return f"{db.engine.dialect.name}_where"
