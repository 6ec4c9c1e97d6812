"""The outbox: a finished job's action runs, inserted in the transaction that records its status.

One INSERT ... SELECT picks the job's RunTemplate's enabled action configs whose mode and
trigger match the job's (just written) final status, so a crash can never record a finish and
lose its actions, and the executor's finish pays one statement, only for templates with actions.
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

_INSERT = """
INSERT INTO action_run (job_id, action, mode, status, attempts, config_id, idempotency_key,
                        next_attempt_at, created_at)
SELECT j.id, ac.action, ac.mode, 'pending', 0, ac.id,
       'multiflexi-' || CAST(j.id AS VARCHAR(20)) || '-' || CAST(ac.id AS VARCHAR(20)),
       :p_now, :p_now
FROM job j JOIN action_config ac ON ac.runtemplate_id = j.runtemplate_id
WHERE j.id = :p_id AND ac.enabled AND """

_SQL = f"""{_INSERT}{_MODE}
  AND (ac."trigger" = 'always'
       OR (ac."trigger" = 'recovery' AND j.status = 'succeeded' AND {_RECOVERY})
       OR (ac."trigger" = 'failures' AND j.status IN {STREAK} AND {_STREAK}))
ORDER BY ac.position, ac.id
"""

# When every action of the template fires always (the executor knows from its cached context):
# no history subqueries, whose planning alone cost more than the rest of a job's finish.
_SQL_ALWAYS = f"""{_INSERT}{_MODE} AND ac."trigger" = 'always'
ORDER BY ac.position, ac.id
"""


def _statement(sql: str) -> RawStatement:
    return RawStatement(
        lambda: text(sql).bindparams(bindparam("p_id"), bindparam("p_now", type_=UTCDateTime()))
    )


QUEUE_RUNS = _statement(_SQL)
QUEUE_ALWAYS_RUNS = _statement(_SQL_ALWAYS)
