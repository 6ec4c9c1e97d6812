"""Read models of the RunTemplate pages."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import joinedload, load_only

from multiflexi_web.models import Application, Company, RunTemplate, User
from multiflexi_web.services.accounts.access import scoped
from multiflexi_web.views.queries.paging import PAGE_SIZE, Paged, paginate

# What the list shows of a template (templates/runtemplates/index.html): its configuration,
# the application's JSON and the company's settings stay in the database.
LIST_COLUMNS = (
    RunTemplate.id,
    RunTemplate.name,
    RunTemplate.company_id,
    RunTemplate.application_id,
    RunTemplate.interval,
    RunTemplate.cron,
    RunTemplate.executor,
    RunTemplate.active,
    RunTemplate.next_run_at,
    RunTemplate.last_run_at,
    RunTemplate.success_count,
    RunTemplate.failure_count,
)


def list_runtemplates(
    user: User, company_id: int | None, app_id: int | None, page: int = 1, size: int = PAGE_SIZE
) -> Paged[RunTemplate]:
    """A page of the RunTemplates the user may see, by name (then id, so pages never overlap),
    with their company and application loaded."""
    query = (
        select(RunTemplate)
        .options(
            # raiseload: a column the page starts to show fails its tests instead of costing
            # a query per row.
            load_only(*LIST_COLUMNS, raiseload=True),
            joinedload(RunTemplate.company).load_only(Company.id, Company.name),
            joinedload(RunTemplate.application).load_only(Application.id, Application.name),
        )
        .order_by(RunTemplate.name, RunTemplate.id)
    )
    query = scoped(query, RunTemplate.company_id, user)
    if company_id is not None:
        query = query.where(RunTemplate.company_id == company_id)
    if app_id is not None:
        query = query.where(RunTemplate.application_id == app_id)
    return paginate(query, RunTemplate.id, page, size)
