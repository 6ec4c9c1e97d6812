"""The one definition of "paused", as SQL the claim and the scheduler both filter on.

The claim runs hundreds of times a second, so the test is shaped for it: an uncorrelated
`NOT EXISTS (SELECT FROM pause)` is evaluated once per statement (PostgreSQL: an InitPlan;
SQLite: a constant subquery) and, while nothing is paused (the usual case), short-circuits the
OR, so the correlated lookup is never run and the claim's plan (a walk along ix_job_waiting) is
unchanged. While something is paused, each candidate row costs a scan of the few pause rows
(jobs carry their company and application, so no join is needed).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from multiflexi_web.db.raw import constants
from multiflexi_web.models import Pause, PauseScope

Column = InstrumentedAttribute[int]


def not_paused(
    runtemplate_id: Column, application_id: Column, company_id: Column
) -> ColumnElement[bool]:
    """True for a row (a job or a RunTemplate, by its columns) that no pause covers."""
    platform, template, application, company = constants(
        PauseScope.PLATFORM, PauseScope.RUNTEMPLATE, PauseScope.APPLICATION, PauseScope.COMPANY
    )
    covering = select(Pause.id).where(
        or_(
            Pause.scope == platform,
            and_(Pause.scope == template, Pause.target_id == runtemplate_id),
            and_(Pause.scope == application, Pause.target_id == application_id),
            and_(Pause.scope == company, Pause.target_id == company_id),
        )
    )
    return or_(~exists(select(Pause.id)), ~exists(covering))
