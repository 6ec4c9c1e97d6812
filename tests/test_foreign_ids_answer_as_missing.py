"""An id of another company's row answers exactly like an id that does not exist, in every
form that takes one (the rule services/actions/configure.py::_check_targets states): an event
rule's target and an Email action's mail credential told them apart."""

from __future__ import annotations

import re

from flask import Flask

from multiflexi_web.extensions import db
from multiflexi_web.models import Role
from multiflexi_web.services.events.catalog import create_source
from tests.executor_support import shell_rt
from tests.factories import (
    add_member,
    client_for,
    make_company,
    make_credential,
    make_prototype,
    make_runtemplate,
    make_user,
)

CSRF = re.compile(r'("csrf-token" content="|"X-CSRFToken": "|name="csrf_token" value=")[^"]*')


def _errors(html: str) -> str:
    """The page with every number and the CSRF token blanked (a signed token carries its
    second, so two pages a second apart differ): only the wording may differ."""
    return re.sub(r"\d+", "N", CSRF.sub(r"\1", html))


def test_event_rule_target_of_another_company_answers_like_a_missing_one(app: Flask) -> None:
    mine, other = make_company(), make_company()
    admin = make_user()
    add_member(admin, mine, Role.ADMIN)
    make_runtemplate(mine)
    foreign = make_runtemplate(other)
    source = create_source("erp-audit", "webhook", company_id=mine.id)
    db.session.commit()
    client = client_for(app, admin)
    url = f"/events/sources/{source.id}/rules/new"
    form = {"name": "r", "priority": "0", "env_mapping": "", "conditions": "", "enabled": "1"}
    theirs = client.post(url, data={**form, "runtemplate": str(foreign.id)})
    missing = client.post(url, data={**form, "runtemplate": str(foreign.id + 999)})
    assert theirs.status_code == missing.status_code == 400
    assert _errors(theirs.get_data(as_text=True)) == _errors(missing.get_data(as_text=True)), (
        "company B's RunTemplate id is told apart from a missing one"
    )


def test_email_credential_of_another_company_answers_like_a_missing_one(app: Flask) -> None:
    mine, other = make_company(), make_company()
    operator = make_user()
    add_member(operator, mine, Role.OPERATOR)
    rt = shell_rt("exit 0", mine)
    mail = make_prototype(fields=[{"keyword": "MAILER_DSN", "type": "string", "required": True}])
    theirs = make_credential(other, mail, values={"MAILER_DSN": "smtp://u:p@127.0.0.1:25"})
    client = client_for(app, operator)
    url = f"/runtemplates/{rt.id}/actions/failure/Email"
    base = {"cfg_from": "a@b.test", "cfg_to": "c@d.test", "trigger": "always"}
    foreign = client.post(url, data={**base, "cfg_credential": str(theirs.id)})
    missing = client.post(url, data={**base, "cfg_credential": str(theirs.id + 999)})
    assert foreign.status_code == missing.status_code == 400
    assert _errors(foreign.get_data(as_text=True)) == _errors(missing.get_data(as_text=True)), (
        "company B's credential id is told apart from a missing one"
    )
