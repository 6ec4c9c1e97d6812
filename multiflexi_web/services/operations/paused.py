"""The one definition of "paused", as SQL the claim and the scheduler both filter on.

The claim runs hundreds of times a second, so the test is shaped for it: an uncorrelated
`NOT EXISTS (SELECT FROM pause)` is evaluated once per statement (PostgreSQL: an InitPlan;
SQLite: a constant subquery) and, while nothing is paused (the usual case), short-circuits the
OR, so the correlated lookup through the job's RunTemplate is never run and the claim's plan
(a walk along ix_job_waiting) is unchanged. While something is paused, each candidate job costs
one RunTemplate primary-key lookup and a scan of the few pause rows.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import InstrumentedAttribute, aliased

from multiflexi_web.db.raw import constants
from multiflexi_web.models import Pause, PauseScope, RunTemplate


def not_paused(runtemplate_id: InstrumentedAttribute[int]) -> ColumnElement[bool]:
    """True for a RunTemplate (by the id column given) that no pause covers."""
    rt = aliased(RunTemplate)
    platform, template, application, company = constants(
        PauseScope.PLATFORM, PauseScope.RUNTEMPLATE, PauseScope.APPLICATION, PauseScope.COMPANY
    )
    covering = (
        select(Pause.id)
        .join(rt, rt.id == runtemplate_id)
        .where(
            or_(
                Pause.scope == platform,
                and_(Pause.scope == template, Pause.target_id == rt.id),
                and_(Pause.scope == application, Pause.target_id == rt.application_id),
                and_(Pause.scope == company, Pause.target_id == rt.company_id),
            )
        )
    )
    return or_(~exists(select(Pause.id)), ~exists(covering))
