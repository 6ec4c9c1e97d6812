"""Upstream `company` and `companyenv` -> Company and CompanyEnv."""

from __future__ import annotations

import re
from functools import partial

from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import Company
from multiflexi_web.security.env_names import forbidden_reason
from multiflexi_web.security.secrets import reveal
from multiflexi_web.services.accounts.companies import set_env
from multiflexi_web.services.upstream_import.context import Context, Refused, apply, outcome
from multiflexi_web.services.upstream_import.reader import Row, flag, text_of

SLUG_CLEAN = re.compile(r"[^A-Za-z0-9_-]+")


def import_companies(ctx: Context) -> None:
    env = ctx.grouped("companyenv", "company_id")
    ctx.each("company", ctx.reader.rows("company"), lambda r: _company(ctx, r))
    for company_id, rows in env.items():
        our = ctx.ids.get("company", company_id)
        for row in rows:
            if our is None:
                ctx.report.refuse("companyenv", f"#{row['id']}", f"company {company_id}: missing")
        if our is not None:
            ctx.each("companyenv", rows, partial(_env, our))


def _slug(row: Row) -> str:
    """Upstream slugs may be empty (the column was added late): derive one from the name."""
    # `code` until upstream's 2025-07 migration renamed it.
    slug = SLUG_CLEAN.sub("", text_of(row.get("slug") or row.get("code")))[:64]
    if not slug:
        slug = SLUG_CLEAN.sub("-", text_of(row.get("name")).strip().lower()).strip("-")[:54]
        slug = f"{slug or 'company'}-{row['id']}"
    return slug


def _company(ctx: Context, row: Row) -> str:
    slug = _slug(row)
    our_id = ctx.ids.get("company", row["id"])
    company = db.session.get(Company, our_id) if our_id else None
    if company is None:  # a company made here before the move, with upstream's slug: the same
        company = db.session.scalar(select(Company).where(Company.slug == slug))
    created = company is None
    if company is None:
        company = Company()
        db.session.add(company)
    elif company.slug != slug and db.session.scalar(
        select(Company.id).where(Company.slug == slug, Company.id != company.id)
    ):
        raise Refused(f"slug {slug!r}: used here by another company")
    values = {
        "name": text_of(row.get("name")).strip() or slug,
        "slug": slug,
        "email": row.get("email") or None,
        "ic": row.get("ic") or None,
        "enabled": flag(row.get("enabled")),
        "zabbix_host": row.get("zabbix_host") or None,
        "logo": row.get("logo") or None,
    }
    changed = apply(company, values)
    db.session.flush()
    ctx.ids.put("company", row["id"], company.id)
    return outcome(created, changed)


def _env(company_id: int, row: Row) -> str:
    key, value = text_of(row.get("keyword")).strip(), text_of(row.get("value"))
    reason = forbidden_reason(key)
    if reason:
        raise Refused(f"{key}: not allowed here, {reason}")
    company = db.session.get(Company, company_id)
    assert company is not None  # noqa: S101 - mapped ids point at rows of this transaction
    current = next((e for e in company.env if e.key == key), None)
    if current is not None and reveal(current) == value:
        return outcome(False, False)
    set_env(company, {key: value}, admin=True)
    return outcome(current is None, True)
