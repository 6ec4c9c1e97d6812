"""An application field's secret default is the platform's: shown as "hidden" on the
application page and as null in both APIs, and reaching a tenant's browser no other way (the
export, the wizard's form and its hints); a global administrator's export keeps it."""

from __future__ import annotations

import json

from flask import Flask

from multiflexi_web.models import Role
from tests.factories import add_member, client_for, make_app, make_company, make_user

DEFAULT_SECRET = "app-default-secret-7f3a"


def _setup(app: Flask, role: Role, field: dict[str, object]):  # type: ignore[no-untyped-def]
    company = make_company()
    user = make_user()
    add_member(user, company, role)
    application = make_app("vendor-tool", fields=[field])
    return company, application, client_for(app, user)


def test_application_page_hides_it_but_export_shows_it_to_a_viewer(app: Flask) -> None:
    field = {"keyname": "VENDOR_PASSWORD", "type": "password", "default": DEFAULT_SECRET}
    _, application, client = _setup(app, Role.VIEWER, field)
    page = client.get(f"/applications/{application.id}").get_data(as_text=True)
    assert DEFAULT_SECRET not in page  # the detail page says "hidden"
    exported = client.get(f"/applications/{application.id}/export")
    assert exported.status_code == 200
    doc = json.loads(exported.get_data(as_text=True))
    assert DEFAULT_SECRET not in json.dumps(doc)
    assert doc["environment"]["VENDOR_PASSWORD"]["type"] == "password"  # the field stays
    admin = client_for(app, make_user(is_admin=True))
    full = admin.get(f"/applications/{application.id}/export").get_data(as_text=True)
    assert json.loads(full)["environment"]["VENDOR_PASSWORD"]["defval"] == DEFAULT_SECRET


def test_wizard_form_does_not_prefill_a_secret_default(app: Flask) -> None:
    # A secret-flagged field of a non-password widget (url): its default is a secret too.
    field = {"keyname": "REPORT_URL", "type": "url", "secret": True, "default":
             f"https://user:{DEFAULT_SECRET}@reports.example/"}  # fmt: skip
    company, application, client = _setup(app, Role.OPERATOR, field)
    form = client.get(f"/runtemplates/new?company={company.id}&app={application.id}")
    assert form.status_code == 200
    page = form.get_data(as_text=True)
    assert DEFAULT_SECRET not in page
    assert "the application's default (hidden) is used" in page
