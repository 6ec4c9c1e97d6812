"""Read models of the RunTemplate pages."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from multiflexi_web.extensions import db
from multiflexi_web.models import RunTemplate, User
from multiflexi_web.services.accounts.access import scoped

LIST_LIMIT = 1000


def list_runtemplates(user: User, company_id: int | None, app_id: int | None) -> list[RunTemplate]:
    """The RunTemplates the user may see, by name, with their company and application loaded."""
    query = (
        select(RunTemplate)
        .options(joinedload(RunTemplate.company), joinedload(RunTemplate.application))
        .order_by(RunTemplate.name, RunTemplate.id)
    )
    query = scoped(query, RunTemplate.company_id, user)
    if company_id is not None:
        query = query.where(RunTemplate.company_id == company_id)
    if app_id is not None:
        query = query.where(RunTemplate.application_id == app_id)
    return list(db.session.scalars(query.limit(LIST_LIMIT)).unique())
