"""Hot-path statements on the driver's connection: same values as through SQLAlchemy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from flask import Flask
from sqlalchemy import bindparam, insert, select, update

from multiflexi_web.db.raw import RawStatement, constants, driver, one_of
from multiflexi_web.extensions import db
from multiflexi_web.models import Job, JobStatus, RunTemplate
from multiflexi_web.models.base import UTCDateTime
from tests.executor_support import job, schedule, shell_rt

RECORD = RawStatement(
    lambda: (
        update(Job)
        .where(Job.id == bindparam("p_id"), Job.status.in_(constants("scheduled", "blocked")))
        .values(
            command=bindparam("p_command"),
            env=bindparam("p_env"),
            finished_at=bindparam("p_at", type_=UTCDateTime()),
        )
    )
)


def test_values_are_converted_as_sqlalchemy_converts_them(app: Flask) -> None:
    [job_id] = schedule(shell_rt("true"))
    prague = datetime(2026, 3, 29, 3, 30, tzinfo=timezone(timedelta(hours=2)))
    params = {"p_id": job_id, "p_command": ["/bin/x", "a b"], "p_env": [{"key": "K"}]}
    assert driver(db.session()).run(RECORD, {**params, "p_at": prague}) == 1
    db.session.commit()
    j = job(job_id)
    assert j.command == ["/bin/x", "a b"] and j.env == [{"key": "K"}]
    assert j.finished_at == prague and j.finished_at.tzinfo == UTC
    # The fixed words of the IN list are part of the statement: a running job is left alone.
    db.session.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.RUNNING.value))
    assert driver(db.session()).run(RECORD, {**params, "p_at": prague}) == 0
    db.session.rollback()


def test_the_connection_is_the_sessions_own_transaction(app: Flask) -> None:
    rt = shell_rt("true")
    [job_id] = schedule(rt)
    driver(db.session()).run(RECORD, {"p_id": job_id, "p_command": [], "p_env": [], "p_at": None})
    db.session.rollback()  # the raw statement is undone with the session's transaction
    assert job(job_id).command is None or job(job_id).command == []
    assert db.session.scalar(select(Job.finished_at).where(Job.id == job_id)) is None


def test_statements_it_cannot_bind_once_are_refused(app: Flask) -> None:
    with_default = RawStatement(lambda: insert(RunTemplate).values(name=bindparam("n")))
    with pytest.raises(ValueError, match="Python-side defaults"):
        driver(db.session()).run(with_default, {"n": "x"})
    expanding = RawStatement(lambda: select(Job.id).where(Job.status.in_(["a", "b"])))
    with pytest.raises(ValueError, match="per-execution"):
        driver(db.session()).rows(expanding, {})
    db.session.rollback()


@pytest.mark.parametrize("word", ["it's", "a b", "A", "", "x;--"])
def test_constants_take_plain_words_only(word: str) -> None:
    with pytest.raises(ValueError, match="plain word"):
        constants(word)


# The same parameter twice (here in the CTE and in the outer WHERE): one value, converted once.
TWICE = RawStatement(
    lambda: select(Job.id).where(
        Job.id.in_(
            select(Job.id)
            .where(Job.scheduled_for <= bindparam("p_at", type_=UTCDateTime()))
            .cte("early")
            .select()
        ),
        Job.scheduled_for <= bindparam("p_at", type_=UTCDateTime()),
    )
)
# A list of ids as one parameter; rows read back converted (JSON parsed on SQLite too).
ENVS = RawStatement(lambda: select(Job.id, Job.env).where(one_of(Job.id, "p_ids")).order_by(Job.id))


def test_a_parameter_used_twice_is_converted_once(app: Flask) -> None:
    [job_id] = schedule(shell_rt("true"))
    later = datetime.now(UTC) + timedelta(hours=1)
    assert driver(db.session()).rows(TWICE, {"p_at": later}) == [(job_id,)]
    assert driver(db.session()).rows(TWICE, {"p_at": later - timedelta(hours=2)}) == []
    db.session.rollback()


def test_one_of_binds_a_list_and_read_converts_results(app: Flask) -> None:
    ids = schedule(shell_rt("true"), 3)
    db.session.execute(update(Job).where(Job.id == ids[1]).values(env=[{"key": "K"}]))
    drv = driver(db.session())
    got = drv.read(ENVS, {"p_ids": [ids[1], ids[2], 10**12]})
    assert [r[0] for r in got] == ids[1:]
    assert got[0][1] == [{"key": "K"}]  # a list, not the driver's JSON text
    assert drv.read(ENVS, {"p_ids": []}) == []
    db.session.rollback()
