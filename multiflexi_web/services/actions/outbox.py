"""The outbox: a finished job's action runs, inserted in the transaction that records its status.

One INSERT ... SELECT picks the job's RunTemplate's enabled action configs whose mode and
trigger match the job's (just written) final status, so a crash can never record a finish and
lose its actions, and the executor's finish pays one statement, only for templates with actions.

An executor whose own dispatcher will deliver the runs inserts them already claimed by it
(the *_CLAIMED statements: running, first attempt, leased to its worker id) and hands them
over in memory with the facts it holds (runner/actions.py): its dispatcher then neither claims
nor reads them. The lease makes that hand-over safe: runs it never receives (its delivery
process died) are any dispatcher's to claim once the lease lapses, as after a kill.
"""

from __future__ import annotations

from sqlalchemy import bindparam, text

from multiflexi_web.db.raw import RawStatement
from multiflexi_web.models.base import UTCDateTime

# Failures that count towards a streak (cancelled neither counts nor breaks one).
STREAK = "('failed', 'timed_out', 'lost')"

_MODE = """(
  (j.status = 'succeeded' AND ac.mode = 'success')
  OR (ac.mode = 'failure' AND (
    j.status = 'failed'
    OR (j.status = 'timed_out' AND ac.on_timed_out)
    OR (j.status = 'lost' AND ac.on_lost)
    OR (j.status = 'cancelled' AND ac.on_cancelled)))
)"""

# The template's previous finished job (before this one) failed: this success is a recovery.
# Only constants are formatted into the SQL below (S608 does not apply).
_RECOVERY = f"""(SELECT p.status FROM job p
  WHERE p.runtemplate_id = j.runtemplate_id AND p.id <> j.id AND p.finished_at IS NOT NULL
    AND p.status IN ('succeeded', 'failed', 'timed_out', 'lost')
  ORDER BY p.finished_at DESC, p.id DESC LIMIT 1) IN {STREAK}"""  # noqa: S608

# Failures since the last success, this one included: fires once, when it reaches N.
_STREAK = f"""(SELECT count(*) FROM job f
  WHERE f.runtemplate_id = j.runtemplate_id AND f.status IN {STREAK}
    AND f.finished_at IS NOT NULL AND NOT EXISTS (
      SELECT 1 FROM job s WHERE s.runtemplate_id = j.runtemplate_id
        AND s.status = 'succeeded' AND s.finished_at > f.finished_at)) = ac.after_failures"""  # noqa: S608

_KEY = "'multiflexi-' || CAST(j.id AS VARCHAR(20)) || '-' || CAST(ac.id AS VARCHAR(20))"

_INSERT = f"""
INSERT INTO action_run (job_id, action, mode, status, attempts, config_id, idempotency_key,
                        next_attempt_at, created_at)
SELECT j.id, ac.action, ac.mode, 'pending', 0, ac.id, {_KEY}, :p_now, :p_now
FROM job j JOIN action_config ac ON ac.runtemplate_id = j.runtemplate_id
WHERE j.id = :p_id AND ac.enabled AND """  # noqa: S608

# Claimed by :p_owner as they are inserted: its first attempt, under way from now.
_INSERT_CLAIMED = f"""
INSERT INTO action_run (job_id, action, mode, status, attempts, config_id, idempotency_key,
                        next_attempt_at, created_at, claimed_at, owner_id)
SELECT j.id, ac.action, ac.mode, 'running', 1, ac.id, {_KEY}, :p_now, :p_now, :p_now, :p_owner
FROM job j JOIN action_config ac ON ac.runtemplate_id = j.runtemplate_id
WHERE j.id = :p_id AND ac.enabled AND """  # noqa: S608

_TRIGGERS = f"""
  AND (ac."trigger" = 'always'
       OR (ac."trigger" = 'recovery' AND j.status = 'succeeded' AND {_RECOVERY})
       OR (ac."trigger" = 'failures' AND j.status IN {STREAK} AND {_STREAK}))"""

# When every action of the template fires always (the executor knows from its cached context):
# no history subqueries, whose planning alone cost more than the rest of a job's finish.
_ALWAYS = """ AND ac."trigger" = 'always'"""

_ORDER = "\nORDER BY ac.position, ac.id\n"
# What the dispatcher needs of a claimed run (runs.Claimed, less the owner).
_RETURNING = "RETURNING id, job_id, action, config_id, idempotency_key, attempts\n"


def _statement(sql: str, *, claimed: bool = False) -> RawStatement:
    params = [bindparam("p_id"), bindparam("p_now", type_=UTCDateTime())]
    if claimed:
        params.append(bindparam("p_owner"))
    return RawStatement(lambda: text(sql).bindparams(*params))


QUEUE_RUNS = _statement(f"{_INSERT}{_MODE}{_TRIGGERS}{_ORDER}")
QUEUE_ALWAYS_RUNS = _statement(f"{_INSERT}{_MODE}{_ALWAYS}{_ORDER}")
QUEUE_RUNS_CLAIMED = _statement(
    f"{_INSERT_CLAIMED}{_MODE}{_TRIGGERS}{_ORDER}{_RETURNING}", claimed=True
)
QUEUE_ALWAYS_RUNS_CLAIMED = _statement(
    f"{_INSERT_CLAIMED}{_MODE}{_ALWAYS}{_ORDER}{_RETURNING}", claimed=True
)


def statement(*, conditional: bool, claimed: bool) -> RawStatement:
    """The outbox INSERT for a finish: with the history triggers or `always` ones only,
    pending or claimed by the caller (p_owner; its rows returned)."""
    if claimed:
        return QUEUE_RUNS_CLAIMED if conditional else QUEUE_ALWAYS_RUNS_CLAIMED
    return QUEUE_RUNS if conditional else QUEUE_ALWAYS_RUNS
