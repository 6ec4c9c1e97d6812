"""The configuration epoch: bumped by triggers on what a job's context is read from, and the
executor's context cache that follows it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import event, select, update

from multiflexi_web.extensions import db
from multiflexi_web.models import (
    AppField,
    CompanyEnv,
    ConfigEpoch,
    CredentialValue,
    RunTemplate,
    RunTemplateCredential,
    utcnow,
)
from multiflexi_web.runner.contexts import ContextCache
from multiflexi_web.services.jobs import transitions as jobs
from multiflexi_web.services.jobs.transitions import Outcome
from multiflexi_web.services.runtemplates.configure import set_config
from multiflexi_web.services.scheduling import slots as slot_jobs
from tests.executor_support import schedule, shell_rt
from tests.factories import make_company, make_credential, make_prototype, make_worker


def _epoch() -> int:
    db.session.commit()
    return db.session.scalar(select(ConfigEpoch.n)) or 0


def _setup() -> RunTemplate:
    company = make_company(env={"CO": "1"})
    rt = shell_rt("true", company, fields=[{"keyname": "K"}])
    set_config(rt, {"K": "v1"})
    cred = make_credential(company, make_prototype(fields=[{"keyword": "LOGIN"}]))
    rt.credentials.append(RunTemplateCredential(credential_id=cred.id, requirement="x"))
    db.session.commit()
    return rt


def _change_env(rt: RunTemplate) -> None:
    db.session.execute(
        update(CompanyEnv).where(CompanyEnv.company_id == rt.company_id).values(value="2")
    )


def _change_config(rt: RunTemplate) -> None:
    set_config(rt, {"K": "v2"})


def _add_field(rt: RunTemplate) -> None:
    db.session.add(AppField(application_id=rt.application_id, keyname="NEW"))


def _change_credential(rt: RunTemplate) -> None:
    db.session.execute(update(CredentialValue).values(value="bob"))


def _rename(rt: RunTemplate) -> None:
    rt.name = "renamed"


def _unlink_credentials(rt: RunTemplate) -> None:
    rt.credentials.clear()


@pytest.mark.parametrize(
    "change",
    [_change_env, _change_config, _add_field, _change_credential, _rename, _unlink_credentials],
)
def test_a_configuration_change_bumps_the_epoch(
    app: Flask, change: Callable[[RunTemplate], None]
) -> None:
    rt = _setup()
    before = _epoch()
    change(rt)
    assert _epoch() > before


def test_the_daemons_own_writes_leave_it_alone(app: Flask) -> None:
    rt = _setup()
    before = _epoch()
    later = utcnow() + timedelta(hours=1)
    slot_jobs.store_next_runs([([rt.id], later, utcnow())])  # the scheduler's tick
    [job_id] = schedule(rt)
    [claimed] = jobs.claim(make_worker().id, 1)
    assert jobs.finish(job_id, rt.id, claimed.started_at, Outcome(jobs.JobStatus.SUCCEEDED, 0))
    db.session.commit()
    assert db.session.get(RunTemplate, rt.id).success_count == 1  # type: ignore[union-attr]
    assert _epoch() == before


def test_a_cached_context_is_reused_until_the_configuration_changes(app: Flask) -> None:
    rt = _setup()
    cache = ContextCache(check_every=0)  # read the epoch on every get
    queries: list[str] = []

    def count(conn: object, cursor: object, statement: str, *_: object) -> None:
        queries.append(statement)

    rt_id = rt.id
    first, _ = cache.get(rt_id)
    assert first is not None and _value(first, "CO") == "1"
    # What it read is committed, not left open while the job runs: a rollback there made
    # psycopg forget its prepared statements (db/engine.py end_read).
    assert not db.session().in_transaction()
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        again, _ = cache.get(rt_id)
        reads = [q for q in queries if q.lstrip().upper().startswith("SELECT")]
        assert again is first and len(reads) == 1  # the epoch read only
        _change_env(rt)
        db.session.commit()
        fresh, _ = cache.get(rt_id)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert fresh is not None and fresh is not first and _value(fresh, "CO") == "2"
    assert not db.session().in_transaction()


def _value(ctx: object, key: str) -> str | None:
    for layer in ctx.layers:  # type: ignore[attr-defined]
        if layer.source == "company":
            return layer.values.get(key)  # type: ignore[no-any-return]
    return None
