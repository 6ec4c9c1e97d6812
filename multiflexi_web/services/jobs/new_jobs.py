"""The statement that creates jobs of a RunTemplate: one INSERT … SELECT … RETURNING.

The template's company, application and executor and the application's version are read by
the statement itself, in the same round trip as the insert; on PostgreSQL it also calls
pg_notify(), saving NOTIFY's own round trip (delivered at commit, like NOTIFY).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, insert, literal, select, true
from sqlalchemy.sql.dml import ReturningInsert

from multiflexi_web.models import Application, Job, RunTemplate

# Read from the template and its application, in this order.
_FROM_TEMPLATE = ("runtemplate_id", "company_id", "application_id", "executor", "app_version")


def insert_jobs(
    rt_id: int, count: int, values: dict[str, Any], notify: str | None
) -> ReturningInsert[Any]:
    """`count` jobs of template `rt_id`, each with `values` (job column -> value; columns left
    out take their scalar defaults), returned as Job objects in the session. No row comes back
    when the template is gone."""
    source = _source(rt_id, values)
    if count > 1:
        n = select(literal(1).label("i")).cte("n", recursive=True)
        n = n.union_all(select(n.c.i + 1).where(n.c.i < count))
        source = source.join(n, true())
    if notify:
        notified = select(func.pg_notify(notify, "").label("sent")).cte("notified")
        source = source.join(notified, true())
    columns = [*_FROM_TEMPLATE, *values]
    return insert(Job).from_select(columns, source).returning(Job)


def _source(rt_id: int, values: dict[str, Any]) -> Select[Any]:
    typed = [literal(v, Job.__table__.c[k].type) for k, v in values.items()]
    return (
        select(
            RunTemplate.id,
            RunTemplate.company_id,
            RunTemplate.application_id,
            RunTemplate.executor,
            Application.version,
            *typed,
        )
        .join(Application, Application.id == RunTemplate.application_id)
        .where(RunTemplate.id == rt_id)
    )
