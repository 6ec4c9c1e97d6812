"""Helpers of the REST API tests: tokens, auth headers, a scene of two companies."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from multiflexi_web.extensions import db
from multiflexi_web.models import ApiToken, Company, Role, RunTemplate, User, utcnow
from multiflexi_web.services.accounts import tokens
from tests.factories import (
    PASSWORD,
    add_member,
    isolate_requests,
    make_app,
    make_company,
    make_runtemplate,
    make_user,
)


def make_token(
    user: User,
    *,
    company: Company | None = None,
    read_only: bool = False,
    expires_days: int | None = None,
    name: str = "ci",
) -> str:
    """A token's secret (the row is committed)."""
    db.session.commit()
    issued = tokens.issue(
        user, name, company=company, read_only=read_only, expires_days=expires_days
    )
    db.session.commit()
    return issued.secret


def expire(secret: str) -> None:
    row = db.session.query(ApiToken).filter_by(token_hash=tokens.digest(secret)).one()
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def basic(login: str, password: str = PASSWORD) -> dict[str, str]:
    raw = base64.b64encode(f"{login}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@dataclass
class Scene:
    """Two companies; users with each role in company `a`; a RunTemplate in each."""

    a: Company
    b: Company
    admin: User
    company_admin: User
    operator: User
    viewer: User
    rt_a: RunTemplate
    rt_b: RunTemplate


def make_scene(app: Flask) -> Scene:
    isolate_requests(app)
    a, b = make_company("Alpha", slug="alpha"), make_company("Beta", slug="beta")
    users = {
        "company_admin": Role.ADMIN,
        "operator": Role.OPERATOR,
        "viewer": Role.VIEWER,
    }
    made: dict[str, Any] = {}
    for login, role in users.items():
        made[login] = make_user(login)
        add_member(made[login], a, role)
    tool = make_app("tool", fields=[{"keyname": "GREETING", "type": "string"}])
    return Scene(
        a=a,
        b=b,
        admin=make_user("root", is_admin=True),
        rt_a=make_runtemplate(a, tool, name="alpha-rt"),
        rt_b=make_runtemplate(b, tool, name="beta-rt"),
        **made,
    )


def get_json(client: FlaskClient, url: str, secret: str, status: int = 200) -> Any:
    resp = client.get(url, headers=bearer(secret))
    assert resp.status_code == status, (url, resp.status_code, resp.get_data(as_text=True))
    return resp.get_json()
