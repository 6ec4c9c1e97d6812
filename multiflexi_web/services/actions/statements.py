"""Statements of the action dispatcher's pass, compiled once per dialect (db/raw.py).

Each pass records the attempts that ended, claims due runs and reads what their deliveries
need. Built per call through the ORM, these statements cost the dispatcher more CPU than the
database spent on them and more than the HTTP POST it delivers (~4 of ~5.5 ms per run on
PostgreSQL); runs.py and context.py run them on the session's connection instead.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Integer, and_, bindparam, func, or_, select, update

from multiflexi_web.db.raw import RawStatement, constants, one_of
from multiflexi_web.models import AppExitCode, Application, Company, Job, JobOutput, RunTemplate
from multiflexi_web.models.action import ActionConfig, ActionDefault, ActionRun
from multiflexi_web.models.base import UTCDateTime
from multiflexi_web.models.job import Artifact

WAITING = ("pending", "retrying")
[RUNNING] = constants("running")
TAIL_CHUNKS = 16  # output rows read per stream for a tail

P_NOW = bindparam("p_now", type_=UTCDateTime())


def _due() -> ColumnElement[bool]:
    """Waiting and due, or running under a lease that expired (claimed before p_expired)."""
    return or_(
        and_(ActionRun.status.in_(constants(*WAITING)), ActionRun.next_attempt_at <= P_NOW),
        and_(
            ActionRun.status == RUNNING,
            ActionRun.claimed_at < bindparam("p_expired", type_=UTCDateTime()),
        ),
    )


def _claim() -> Any:
    # A CTE, evaluated once. As `id IN (subquery)` PostgreSQL may plan a nested loop that runs
    # the subquery again for each row: every run skips the rows this UPDATE already changed and
    # locks the next `limit`, so one claim took every due run (one executor delivered them all).
    picked = (
        select(ActionRun.id)
        .where(_due())
        .order_by(ActionRun.next_attempt_at, ActionRun.id)
        .limit(bindparam("p_limit", type_=Integer()))
        .with_for_update(skip_locked=True)
        .cte("picked")
        .prefix_with("MATERIALIZED")
    )
    return (
        update(ActionRun)
        .where(ActionRun.id == picked.c.id, _due())
        .values(
            status=RUNNING,
            claimed_at=P_NOW,
            owner_id=bindparam("p_owner", type_=Integer()),
            attempts=ActionRun.attempts + 1,
        )
        .returning(
            ActionRun.id,
            ActionRun.job_id,
            ActionRun.action,
            ActionRun.config_id,
            ActionRun.idempotency_key,
            ActionRun.attempts,
        )
    )


def _record(ended: bool) -> Any:
    """An attempt's result for every run in p_ids (a pass's alike attempts), written only under
    the claim that made it (its lease: owner and attempt); `ended` sets finished_at, else
    next_attempt_at (a retry)."""
    at = bindparam("p_at", type_=UTCDateTime())
    values: dict[str, Any] = {
        "status": bindparam("p_status"),
        "response": bindparam("p_response"),
        "error": bindparam("p_error"),
        ("finished_at" if ended else "next_attempt_at"): at,
    }
    return _running_of_owner().where(ActionRun.attempts == bindparam("p_attempts")).values(values)


def _renew() -> Any:
    """The leases of runs still being delivered by their owner, stamped again: an attempt
    outliving its lease (a slow peer, a long command) would be claimed and delivered a second
    time by another executor while this one still waits for its answer."""
    return _running_of_owner().values(claimed_at=P_NOW)


def _running_of_owner() -> Any:
    """An UPDATE of the runs in p_ids that are running under p_owner's claim."""
    return update(ActionRun).where(
        one_of(ActionRun.id, "p_ids"),
        ActionRun.status == RUNNING,
        ActionRun.owner_id == bindparam("p_owner"),
    )


def _configs() -> Any:
    return (
        select(ActionConfig.id, ActionConfig.config, ActionDefault.config, ActionConfig.action)
        .outerjoin(ActionDefault, ActionDefault.action == ActionConfig.action)
        .where(one_of(ActionConfig.id, "p_ids"))
    )


def _facts() -> Any:
    meaning = (
        select(AppExitCode.description)
        .where(AppExitCode.application_id == Job.application_id, AppExitCode.code == Job.exit_code)
        .limit(1)
        .scalar_subquery()
    )
    return (
        select(
            Job.id,
            Job.status,
            Job.exit_code,
            Job.env,
            RunTemplate.id,
            RunTemplate.name,
            Application.id,
            Application.name,
            Application.uuid,
            Application.homepage,
            Application.produces,
            Company.id,
            Company.slug,
            Company.name,
            Company.zabbix_host,
            meaning,
        )
        .join(RunTemplate, RunTemplate.id == Job.runtemplate_id)
        .join(Application, Application.id == Job.application_id)
        .join(Company, Company.id == Job.company_id)
        .where(one_of(Job.id, "p_ids"))
    )


def _artifacts() -> Any:
    return (
        select(Artifact.job_id, Artifact.id, Artifact.filename)
        .where(one_of(Artifact.job_id, "p_ids"))
        .order_by(Artifact.id)
    )


def _tails() -> Any:
    """Each job's and stream's last TAIL_CHUNKS output rows, in order."""
    ranked = (
        select(
            JobOutput.id,
            func.row_number()
            .over(partition_by=(JobOutput.job_id, JobOutput.stream), order_by=JobOutput.seq.desc())
            .label("rn"),
        )
        .where(one_of(JobOutput.job_id, "p_ids"))
        .subquery()
    )
    return (
        select(JobOutput.job_id, JobOutput.stream, JobOutput.data)
        .where(JobOutput.id.in_(select(ranked.c.id).where(ranked.c.rn <= TAIL_CHUNKS)))
        .order_by(JobOutput.job_id, JobOutput.stream, JobOutput.seq)
    )


CLAIM = RawStatement(_claim)
RECORD_ENDED = RawStatement(lambda: _record(True))
RECORD_RETRY = RawStatement(lambda: _record(False))
RENEW = RawStatement(_renew)
CONFIGS = RawStatement(_configs)
FACTS = RawStatement(_facts)
ARTIFACTS = RawStatement(_artifacts)
TAILS = RawStatement(_tails)
