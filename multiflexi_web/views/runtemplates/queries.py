"""Read models of the RunTemplate pages."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from multiflexi_web.models import RunTemplate, User
from multiflexi_web.services.accounts.access import scoped
from multiflexi_web.views.queries.paging import PAGE_SIZE, Paged, paginate


def list_runtemplates(
    user: User, company_id: int | None, app_id: int | None, page: int = 1, size: int = PAGE_SIZE
) -> Paged[RunTemplate]:
    """A page of the RunTemplates the user may see, by name (then id, so pages never overlap),
    with their company and application loaded."""
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
    return paginate(query, RunTemplate.id, page, size)
