"""views/_change.commit_change: a refused change leaves nothing behind; a done one is audited."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import AuditLog, Company
from multiflexi_web.services.accounts.companies import CompanyError
from multiflexi_web.views._change import Audit, commit_change
from tests.factories import reread


def _half_written() -> Company:
    """A change that writes (and flushes) a row, then is refused."""
    db.session.add(Company(name="Half", slug="half"))
    db.session.flush()
    raise CompanyError("slug 'half': refused after the write")


def _rows() -> tuple[int, int]:
    reread()
    companies = db.session.scalar(select(func.count()).select_from(Company)) or 0
    audits = db.session.scalar(select(func.count()).select_from(AuditLog)) or 0
    return companies, audits


def test_a_refused_change_is_rolled_back_and_named(app: Flask) -> None:
    with app.test_request_context("/companies/new", method="POST"):
        answer = commit_change(
            _half_written,
            lambda c: Audit("create", "company", c.id, "never written"),
            lambda _: "done",
            lambda exc: (f"refused: {exc}", 400),
            (CompanyError,),
        )
    assert answer == ("refused: slug 'half': refused after the write", 400)
    assert _rows() == (0, 0)


def test_a_done_change_is_committed_with_its_audit_row(app: Flask) -> None:
    def create() -> Company:
        company = Company(name="Whole", slug="whole")
        db.session.add(company)
        db.session.flush()
        return company

    with app.test_request_context("/companies/new", method="POST"):
        answer = commit_change(
            create,
            lambda c: Audit("create", "company", c.id, f"company {c.slug} created"),
            lambda c: f"done {c.slug}",
        )
    assert answer == "done whole"
    assert _rows() == (1, 1)
    entry = db.session.scalars(select(AuditLog)).one()
    assert (entry.action, entry.entity_type, entry.summary) == (
        "create",
        "company",
        "company whole created",
    )


def test_an_error_it_was_not_told_about_is_not_swallowed(app: Flask) -> None:
    with (
        app.test_request_context("/companies/new", method="POST"),
        pytest.raises(CompanyError, match="refused after the write"),
    ):
        commit_change(_half_written, lambda c: Audit("x", "company", 0, ""), lambda _: "done")
    assert _rows() == (0, 0)
