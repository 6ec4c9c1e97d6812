"""No new RunTemplate of a disabled application, whichever way it is asked for: the wizard
offered only enabled applications but its POST took any id, so an operator could create and run
one an administrator had withdrawn. The rule now lives in create_runtemplate."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import Role, RunTemplate
from tests.api_helpers import bearer, make_scene, make_token
from tests.factories import (
    add_member,
    client_for,
    make_app,
    make_company,
    make_runtemplate,
    make_user,
)


def test_portal_wizard_refuses_a_disabled_application(app: Flask) -> None:
    company = make_company()
    operator = make_user()
    add_member(operator, company, Role.OPERATOR)
    disabled = make_app("withdrawn-tool", enabled=False)
    client = client_for(app, operator)
    url = f"/runtemplates/new?company={company.id}&app={disabled.id}"
    resp = client.post(url, data={"name": "x", "interval": "n", "executor": "native"})
    db.session.rollback()
    made = db.session.scalars(
        select(RunTemplate).where(RunTemplate.application_id == disabled.id)
    ).all()
    assert made == [], f"a RunTemplate of a disabled application was created ({resp.status_code})"
    assert resp.status_code == 400 and "disabled" in resp.get_data(as_text=True)


def test_api_and_cli_refuse_a_disabled_application(app: Flask) -> None:
    s = make_scene(app)
    disabled = make_app("withdrawn-tool", enabled=False)
    body = {"company_id": s.a.id, "application_id": disabled.id, "name": "x"}
    client = app.test_client()
    resp = client.post("/api/v1/runtemplates", json=body, headers=bearer(make_token(s.operator)))
    assert resp.status_code == 422 and "disabled" in resp.get_data(as_text=True)
    result = app.test_cli_runner().invoke(
        args=["runtemplate", "create", "--company", str(s.a.id), "--app", disabled.uuid,
              "--name", "x"]
    )  # fmt: skip
    assert result.exit_code != 0 and "disabled" in result.output


def test_a_template_of_a_disabled_application_is_not_cloned(app: Flask) -> None:
    company = make_company()
    operator = make_user()
    add_member(operator, company, Role.OPERATOR)
    tool = make_app("withdrawn-later")
    rt = make_runtemplate(company, tool)
    tool.enabled = False
    db.session.commit()
    resp = client_for(app, operator).post(f"/runtemplates/{rt.id}/clone")
    assert resp.status_code == 302
    db.session.rollback()
    made = db.session.scalars(select(RunTemplate).where(RunTemplate.application_id == tool.id))
    assert [r.id for r in made] == [rt.id]
