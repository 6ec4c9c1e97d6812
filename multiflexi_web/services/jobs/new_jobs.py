"""The statement that creates jobs of a RunTemplate: one INSERT … SELECT … RETURNING.

The template's company, application and executor and the application's version are read by
the statement itself, in the same round trip as the insert; on PostgreSQL it also calls
pg_notify(), saving NOTIFY's own round trip (delivered at commit, like NOTIFY).

It is a RawStatement (compiled once per dialect, run on the session's connection): built and
run through the ORM, one enqueue spent ~0.6 ms of CPU compiling, executing and loading the
statement, about what the database took to run it. The returned rows become Job objects of the
session as a query would have loaded them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, Insert, bindparam, func, insert, literal, select, true
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_dict

from multiflexi_web.db import doorbell
from multiflexi_web.db.raw import Driver, RawStatement
from multiflexi_web.models import Application, Job, RunTemplate

# Read from the template and its application, in this order.
_FROM_TEMPLATE = ("runtemplate_id", "company_id", "application_id", "executor", "app_version")
# Set by the caller (bound as p_<column>; None where it has nothing): one statement for all.
VALUES = (
    "status",
    "schedule_type",
    "scheduled_for",
    "slot_at",
    "env_override",
    "launched_by_id",
    "event_id",
    "attempt",
    "retry_of_id",
    "created_at",
    "finished_at",
    "status_reason",
)
# The other columns' scalar defaults (0, False), written as constants of the statement: an
# INSERT … SELECT leaves them to SQLAlchemy to bind on every execution otherwise.
_DEFAULTS = {
    c.name: c.default.arg
    for c in Job.__table__.c
    if c.default is not None and c.default.is_scalar and c.name not in (*_FROM_TEMPLATE, *VALUES)
}
_RETURNED = tuple(Job.__table__.c)
_KEYS = tuple(Job.__mapper__.get_property_by_column(c).key for c in _RETURNED)
_IDENTITY = Job.__mapper__.identity_key_from_primary_key
NOTIFY_CHANNEL = "multiflexi_jobs"  # executors LISTEN on it (PostgreSQL) or ring it (SQLite)


def _insert(*, many: bool, notify: bool) -> Insert:
    """p_count jobs (else one) of template p_rt; pg_notify(p_channel) with `notify`. No row
    comes back when the template is gone."""
    table = Job.__table__.c
    source = (
        select(
            RunTemplate.id,
            RunTemplate.company_id,
            RunTemplate.application_id,
            RunTemplate.executor,
            Application.version,
            *[bindparam(f"p_{k}", type_=table[k].type) for k in VALUES],
            *[literal(v, table[k].type) for k, v in _DEFAULTS.items()],
        )
        .join(Application, Application.id == RunTemplate.application_id)
        .where(RunTemplate.id == bindparam("p_rt"))
    )
    if many:
        n = select(literal(1).label("i")).cte("n", recursive=True)
        n = n.union_all(select(n.c.i + 1).where(n.c.i < bindparam("p_count")))
        source = source.join(n, true())
    if notify:
        channel = bindparam("p_channel", type_=table.status_reason.type)
        notified = select(func.pg_notify(channel, "").label("sent")).cte("notified")
        source = source.join(notified, true())
    return insert(Job).from_select([*_FROM_TEMPLATE, *VALUES, *_DEFAULTS], source)


# One job: a RawStatement (with pg_notify or not), compiled on its first use per dialect.
def _one(*, notify: bool) -> RawStatement:
    return RawStatement(lambda: _insert(many=False, notify=notify).returning(*_RETURNED))


ONE = {n: _one(notify=n) for n in (False, True)}


def _one_id(*, notify: bool) -> RawStatement:
    return RawStatement(lambda: _insert(many=False, notify=notify).returning(Job.id))


# One job committed on its own (submit()): only its id comes back, nothing is loaded.
ONE_ID = {n: _one_id(notify=n) for n in (False, True)}
# Many: the ORM's execution, whose per-row loading beats building each Job here (~25 µs a
# row); the fixed ~0.5 ms of its set-up is small beside hundreds of rows. Built once, so
# SQLAlchemy compiles it once too.
MANY = {
    n: select(Job).from_statement(_insert(many=True, notify=n).returning(*_RETURNED))
    for n in (False, True)
}


def insert_jobs(
    session: Session,
    driver: Driver,
    rt_id: int,
    count: int,
    values: dict[str, Any],
    notify: str | None,
) -> list[Job]:
    """`count` jobs of template `rt_id`, each with `values` (see VALUES), as Job objects of
    the session; `notify` is the channel pg_notify() is sent on (PostgreSQL only)."""
    params = {f"p_{k}": values.get(k) for k in VALUES}
    params.update(p_rt=rt_id, p_count=count, p_channel=notify)
    if count > 1:
        return list(session.scalars(MANY[notify is not None], params))
    return [_loaded(session, row) for row in driver.read(ONE[notify is not None], params)]


def insert_committed(engine: Engine, rt_id: int, values: dict[str, Any]) -> int | None:
    """One job of template `rt_id` with `values`, committed by the statement itself on a
    connection of its own (autocommit); its id, None when the template is gone.

    On PostgreSQL that is one round trip, the INSERT with its pg_notify(): a transaction of
    its own would add BEGIN and COMMIT, two more. SQLite's connections here are in the
    driver's autocommit mode already (db/engine.py begins their transactions), so the lone
    statement is its own transaction there too; the executors' doorbell is rung after it."""
    params = {f"p_{k}": values.get(k) for k in VALUES}
    with engine.connect() as conn:
        raw = Driver(conn)
        params.update(p_rt=rt_id, p_count=1, p_channel=NOTIFY_CHANNEL if raw.is_pg else None)
        if not raw.is_pg:
            rows = raw.rows(ONE_ID[False], params)
        else:
            raw.dbapi_conn.autocommit = True
            try:
                rows = raw.rows(ONE_ID[True], params)
            finally:
                if not raw.dbapi_conn.closed:  # an invalidated one is not pooled again
                    raw.dbapi_conn.autocommit = False
    if rows and not raw.is_pg and (place := doorbell.folder(str(engine.url))) is not None:
        doorbell.ring(place, NOTIFY_CHANNEL)
    return int(rows[0][0]) if rows else None


def _loaded(session: Session, row: Iterable[Any]) -> Job:
    """A returned row as the persistent Job a query would load: every column set and
    committed (no history, so nothing to flush), in the session's identity map."""
    values = dict(zip(_KEYS, row, strict=True))
    key = _IDENTITY((values["id"],))
    if key in session.identity_map:  # a stale object of a rolled-back row whose id came again
        return session.get_one(Job, values["id"], populate_existing=True)
    job = Job()
    instance_dict(job).update(values)  # what the ORM's loader does: loaded, not changed
    make_transient_to_detached(job)
    session.add(job)
    return job
