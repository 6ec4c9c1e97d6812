"""Writing scheduled slots: set-based SQL for large batches, the job service for small ones.

Both writers produce the same rows (tests/test_scheduler_tick.py compares them). A slot that
already has a job (another scheduler won the race) is left alone: ON CONFLICT DO NOTHING in bulk,
a savepoint per job otherwise. A template whose overlap policy is `skip` and that still has a
running or due job gets its new slot recorded as skipped instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from multiflexi_web.db.listen import announce
from multiflexi_web.extensions import db
from multiflexi_web.models import Job, JobStatus, OverlapPolicy, RunTemplate
from multiflexi_web.models.base import UTCDateTime
from multiflexi_web.models.job import WAITING, WAITING_IN, created, made
from multiflexi_web.services.jobs import transitions as jobs

# Below this many templates in a batch the job service writes each job (about 4 round trips
# per job, so only worth it for a handful); from here on one statement writes them all.
BULK_MIN = 8
BUSY_REASON = "previous job still waiting or running (overlap policy: skip)"
# What a slot's job is created as (the job state table's creations by insert_bulk): due, or
# skipped (missed, or its template busy: finished at once).
_BULK = "scheduling.slots.insert_bulk"
CREATED = frozenset(created(_BULK))
DUE = made(_BULK, None, JobStatus.SCHEDULED)
SKIP = made(_BULK, None, JobStatus.SKIPPED)

# Templates that share a plan: (their ids, schedule_type, runs); a run has .at, .status, .reason.
SlotGroups = Sequence[tuple[Sequence[int], str, Sequence[Any]]]
# Templates that share their new times: (their ids, next_run_at, last_slot_at or None).
NextGroups = Sequence[tuple[Sequence[int], datetime | None, datetime | None]]

_INSERT = """
INSERT INTO job (runtemplate_id, company_id, application_id, status, status_reason,
    schedule_type, scheduled_for, slot_at, attempt, executor, app_version, finished_at,
    cancel_requested, stdout_bytes, stderr_bytes, stdout_dropped, stderr_dropped, created_at)
SELECT x.id, x.company_id, x.application_id,
    CASE WHEN x.busy THEN '{skip}' ELSE x.status END,
    CASE WHEN x.busy THEN {busy_reason} ELSE x.reason END,
    x.stype, x.run_at, x.run_at, 1, x.executor, x.version,
    CASE WHEN x.busy OR x.status = '{skip}' THEN {now} END,
    false, 0, 0, 0, 0, {now}
FROM (
    SELECT r.id, r.company_id, r.application_id, r.executor, a.version,
        s.run_at, s.status, s.reason, s.stype,
        (s.status = '{due}' AND {busy}) AS busy
    FROM {source}
    JOIN runtemplate r ON r.id = s.rt_id
    JOIN application a ON a.id = r.application_id
) AS x
WHERE true
ON CONFLICT (runtemplate_id, slot_at) DO NOTHING
"""
# Template r is busy (overlap policy `skip`): a job of it runs, or waits and is due.
_BUSY = """r.overlap_policy = '{skip_policy}' AND EXISTS (
    SELECT 1 FROM job j WHERE j.runtemplate_id = r.id AND (j.status = '{running}'
        OR (j.status {waiting_in} AND j.scheduled_for <= {now}))
)"""
# PostgreSQL: templates share a few distinct plans, so the statement gets two short lists per
# template (id, plan number) as array literals (joining strings is ~10x cheaper in Python than
# psycopg's per-element binary dump) and one small table of plans as binary arrays.
_PG_SOURCE = """(
    SELECT t.rt_id, p.run_at, p.status, p.reason, p.stype
    FROM unnest(%(ids)s::integer[], %(nos)s::integer[]) AS t(rt_id, no)
    JOIN unnest(%(p_no)b::integer[], %(p_at)b::timestamptz[], %(p_status)b::text[],
        %(p_reason)b::text[], %(p_stype)b::text[]) AS p(no, run_at, status, reason, stype)
        USING (no)
) AS s"""
# The statuses and the policy as literals: the enums' own plain words, fixed at import.
_WORDS = {
    "due": DUE.value,
    "skip": SKIP.value,
    "running": JobStatus.RUNNING.value,
    "waiting_in": WAITING_IN,
    "skip_policy": OverlapPolicy.SKIP.value,
}
_PG_NOW = "%(now)b::timestamptz"
_PG_INSERT = _INSERT.format(
    source=_PG_SOURCE,
    busy=_BUSY.format(now=_PG_NOW, **_WORDS),
    now=_PG_NOW,
    busy_reason="%(busy_reason)b::text",
    **_WORDS,
)
_PG_NEXT = """
UPDATE runtemplate AS r
SET next_run_at = p.next_run_at, last_slot_at = COALESCE(p.last_slot_at, r.last_slot_at)
FROM unnest(%(ids)s::integer[], %(nos)s::integer[]) AS t(id, no)
JOIN unnest(%(p_no)b::integer[], %(p_next)b::timestamptz[], %(p_last)b::timestamptz[])
    AS p(no, next_run_at, last_slot_at) USING (no)
WHERE r.id = t.id
"""
# SQLite: one INSERT too, so every row sees the same snapshot. The same shape as on
# PostgreSQL: `groups` is a JSON array whose element i lists the ids of plan i, `plans` the
# plans' runs (few rows, parsed once into a materialized table). A row per job parsed out of
# JSON in SQL, or its time bound from Python, cost ~10 µs of the tick's CPU per template.
_SQLITE_SOURCE = """(
    WITH p(no, run_at, status, reason, stype) AS MATERIALIZED (
        SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4
        FROM json_each(:plans)
    )
    SELECT m.value AS rt_id, p.run_at, p.status, p.reason, p.stype
    FROM json_each(:groups) AS g, json_each(g.value) AS m JOIN p ON p.no = g.key
) AS s"""
# Which of the batch's templates are busy is asked first, in the same write transaction (so
# the same snapshot): an INSERT whose SELECT reads the job table is run by SQLite through a
# temporary copy of every row, ~10% of the tick's CPU.
_SQLITE_BATCH_BUSY = """
SELECT r.id FROM runtemplate r
WHERE r.id IN (SELECT m.value FROM json_each(:groups) AS g, json_each(g.value) AS m)
    AND {busy}
"""
_SQLITE_BUSY = _SQLITE_BATCH_BUSY.format(busy=_BUSY.format(now=":now", **_WORDS))
_SQLITE_INSERT = _INSERT.format(
    source=_SQLITE_SOURCE,
    busy="s.rt_id IN (SELECT value FROM json_each(:busy))",
    now=":now",
    busy_reason=":busy_reason",
    **_WORDS,
)
# One statement per plan: its templates' ids as a JSON array.
_SQLITE_NEXT = """
UPDATE runtemplate SET next_run_at = :next_run_at,
    last_slot_at = COALESCE(:last_slot_at, last_slot_at)
WHERE id IN (SELECT value FROM json_each(:ids))
"""


def _is_pg() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _pg_execute(sql: str, params: dict[str, Any]) -> int:
    """Run on the session's own connection through psycopg, for binary array parameters."""
    raw: Any = db.session.connection().connection.driver_connection
    with raw.cursor() as cur:
        cur.execute(sql, params)
        return int(cur.rowcount)


def _numbered(groups: Iterable[Sequence[int]]) -> tuple[str, str]:
    """Group i's ids, each paired with the plan number i: two integer[] literals."""
    ids: list[str] = []
    nos: list[str] = []
    for no, members in enumerate(groups):
        ids.append(",".join(map(str, members)))
        nos.append(",".join([str(no)] * len(members)))
    return _literal(ids), _literal(nos)


def _literal(parts: list[str]) -> str:
    return "{" + ",".join(p for p in parts if p) + "}"


def insert_bulk(groups: SlotGroups, now: datetime) -> int:
    """Insert every slot's job with one statement; returns how many were new."""
    _check_created(groups)
    if _is_pg():
        groups = [g for g in groups if g[2]]
        ids, nos = _numbered(g[0] for g in groups)
        table = [(no, st, r) for no, (_, st, runs) in enumerate(groups) for r in runs]
        if not table:
            return 0
        count = _pg_execute(_PG_INSERT, {
            "ids": ids, "nos": nos, "now": now, "busy_reason": BUSY_REASON,
            "p_no": [t[0] for t in table], "p_at": [t[2].at for t in table],
            "p_status": [JobStatus(t[2].status).value for t in table],
            "p_reason": [t[2].reason for t in table], "p_stype": [t[1] for t in table],
        })  # fmt: skip
    else:
        count = _sqlite_insert(groups, now)
    _notify()
    return count


def _check_created(groups: SlotGroups) -> None:
    """Refuse a plan whose runs the job state table does not let a slot's job start as."""
    wrong = {r.status for _, _, runs in groups for r in runs} - CREATED
    if wrong:
        names = ", ".join(sorted(str(s) for s in wrong))
        raise ValueError(f"slot jobs cannot be created {names} (models/job.py TRANSITIONS)")


def _sqlite_insert(groups: SlotGroups, now: datetime) -> int:
    # Datetimes in the column type's own stored text form, so equal slots compare equal.
    dialect = db.session.get_bind().dialect
    to_db = UTCDateTime().dialect_impl(dialect).bind_processor(dialect) or str
    plans = [
        (no, to_db(r.at), JobStatus(r.status).value, r.reason, st)
        for no, (_, st, runs) in enumerate(groups)
        for r in runs
    ]
    if not plans:
        return 0
    now_param = bindparam("now", type_=UTCDateTime())
    members = json.dumps([list(g[0]) for g in groups])
    busy = db.session.scalars(
        text(_SQLITE_BUSY).bindparams(now_param), {"groups": members, "now": now}
    )
    params = {
        "now": now,
        "busy_reason": BUSY_REASON,
        "plans": json.dumps(plans),
        "groups": members,
        "busy": json.dumps(list(busy)),
    }
    stmt = text(_SQLITE_INSERT).bindparams(now_param)
    return int(db.session.execute(stmt, params).rowcount)  # type: ignore[attr-defined]


def _notify() -> None:
    # Executors hear of the batch when it commits (NOTIFY, or a doorbell on SQLite).
    announce(jobs.NOTIFY_CHANNEL)


def insert_each(groups: SlotGroups, now: datetime) -> int:
    """Create each slot's job through the job service, a savepoint around each."""
    rts = _load({i for ids, _, _ in groups for i in ids})
    inserted = 0
    for ids, stype, runs in groups:
        for rt in (rts[i] for i in ids):
            busy = _busy(rt, now)  # judged before this batch, as the bulk statement does
            for run in runs:
                status, reason = JobStatus(run.status), run.reason
                if status is DUE and busy:
                    status, reason = SKIP, BUSY_REASON
                inserted += _insert_one(rt, stype, run.at, status, reason, now)
    return inserted


def _insert_one(
    rt: RunTemplate, stype: str, at: datetime, status: JobStatus, reason: str | None, now: datetime
) -> int:
    try:
        with db.session.begin_nested():
            job = jobs.enqueue(rt, schedule_type=stype, when=at, slot_at=at, status=status)
            if status is SKIP:
                job.status_reason, job.finished_at = reason, now
            db.session.flush()
    except IntegrityError:
        return 0  # another scheduler wrote this slot first
    return 1


def _load(ids: set[int]) -> dict[int, RunTemplate]:
    q = (
        select(RunTemplate)
        .where(RunTemplate.id.in_(ids))
        .options(selectinload(RunTemplate.application))
    )
    return {rt.id: rt for rt in db.session.scalars(q)}


def _busy(rt: RunTemplate, now: datetime) -> bool:
    if rt.overlap_policy != OverlapPolicy.SKIP.value:
        return False
    live = exists().where(
        Job.runtemplate_id == rt.id,
        or_(
            Job.status == JobStatus.RUNNING.value,
            Job.status.in_(WAITING) & (Job.scheduled_for <= now),
        ),
    )
    return bool(db.session.scalar(select(live)))


def store_next_runs(groups: NextGroups) -> None:
    """Set next_run_at (and last_slot_at when a slot was written) for each template."""
    if not groups:
        return
    if _is_pg():
        ids, nos = _numbered(g[0] for g in groups)
        _pg_execute(_PG_NEXT, {
            "ids": ids, "nos": nos, "p_no": list(range(len(groups))),
            "p_next": [g[1] for g in groups], "p_last": [g[2] for g in groups],
        })  # fmt: skip
    else:
        stmt = text(_SQLITE_NEXT).bindparams(
            bindparam("next_run_at", type_=UTCDateTime()),
            bindparam("last_slot_at", type_=UTCDateTime()),
        )
        params = [
            {"ids": json.dumps(list(ids)), "next_run_at": n, "last_slot_at": last}
            for ids, n, last in groups
        ]
        db.session.execute(stmt, params)
    # The ORM objects of these templates (ad-hoc path) must not keep the old next run.
    db.session.expire_all()
