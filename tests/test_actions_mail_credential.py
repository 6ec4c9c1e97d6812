"""The Email action logs in with a mail credential of the job's own company, chosen in its
config: a real SMTP server (aiosmtpd) that requires STARTTLS and AUTH, the real dispatcher, the
portal; another company's credential refused; the login masked everywhere it could show."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from flask import Flask
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import Company, Credential, CredentialPrototype, Role
from multiflexi_web.models.action import ActionConfig, ActionRun
from multiflexi_web.services.actions import configure
from multiflexi_web.services.actions.configure import ActionConfigError
from tests.action_peers import PASSWORD, MailPeer, smtp_server
from tests.action_support import dispatch_all
from tests.executor_support import drain, schedule, shell_rt
from tests.factories import (
    add_member,
    client_for,
    make_company,
    make_credential,
    make_prototype,
    make_user,
)

WRONG = "wrong-pw-NEVER-shown"


def _mail_prototype() -> CredentialPrototype:
    """As /work/shared/multiflexi/credentials/mail.credprototype.json: one plain MAILER_DSN."""
    return make_prototype(fields=[{"keyword": "MAILER_DSN", "type": "string", "required": True}])


def _mail_credential(company: Company, peer: MailPeer, password: str = PASSWORD) -> Credential:
    dsn = f"smtp://mailer:{quote(password, safe='')}@127.0.0.1:{peer.port}"
    return make_credential(
        company, _mail_prototype(), name="Office mail", values={"MAILER_DSN": dsn}
    )


def _email(cred: Credential, peer: MailPeer) -> dict[str, str]:
    return {
        "credential": str(cred.id),
        "from": "mf@acme.test",
        "to": "ops@acme.test",
        "ca_file": str(peer.cert),
    }


def _runs(job_id: int) -> list[ActionRun]:
    db.session.rollback()
    return list(db.session.scalars(select(ActionRun).where(ActionRun.job_id == job_id)))


def _shown(run: ActionRun) -> str:
    return f"{run.response} {run.error}"


def test_email_logs_in_with_the_companys_mail_credential(app: Flask, tmp_path: Path) -> None:
    company = make_company()
    rt = shell_rt("exit 3", company)
    with smtp_server(tmp_path, "starttls") as peer:
        cred = _mail_credential(company, peer)
        configure.put(rt, "failure", "Email", _email(cred, peer))
        db.session.commit()
        [job_id] = schedule(rt)
        drain(app)
        dispatch_all(app)
    [run] = _runs(job_id)
    assert run.status == "succeeded", run.error
    assert len(peer.inbox.messages) == 1 and peer.inbox.envelopes[0][1] == ["ops@acme.test"]
    assert PASSWORD not in _shown(run) and quote(PASSWORD, safe="") not in _shown(run)


def test_a_wrong_login_in_the_credential_fails_and_stays_masked(app: Flask, tmp_path: Path) -> None:
    company = make_company()
    rt = shell_rt("exit 3", company)
    with smtp_server(tmp_path, "starttls") as peer:
        cred = _mail_credential(company, peer, WRONG)
        configure.put(rt, "failure", "Email", _email(cred, peer))
        db.session.commit()
        [job_id] = schedule(rt)
        drain(app)
        dispatch_all(app)
    [run] = _runs(job_id)
    assert run.status == "failed" and "535" in (run.error or ""), run.error  # AUTH refused
    assert not peer.inbox.messages  # the login really mattered
    assert WRONG not in _shown(run) and quote(WRONG, safe="") not in _shown(run)


def test_another_companys_credential_is_refused(app: Flask, tmp_path: Path) -> None:
    company, other = make_company(), make_company()
    rt = shell_rt("exit 3", company)
    with smtp_server(tmp_path, "starttls") as peer:
        theirs = _mail_credential(other, peer)
        with pytest.raises(ActionConfigError, match="not a credential of this company"):
            configure.put(rt, "failure", "Email", _email(theirs, peer))
        db.session.rollback()
        not_mail = make_credential(company)  # LOGIN/PASSWORD: no mail fields
        with pytest.raises(ActionConfigError, match="not a mail credential"):
            configure.put(rt, "failure", "Email", _email(not_mail, peer))
        db.session.rollback()
        with pytest.raises(ActionConfigError, match="per RunTemplate"):
            configure.put_default("Email", {"credential": str(theirs.id)}, is_admin=True)
        db.session.rollback()
        # A row that names it anyway (written around the check): refused when delivered.
        own = _mail_credential(company, peer)
        row = configure.put(rt, "failure", "Email", _email(own, peer))
        row.config = {**row.config, "credential": str(theirs.id)}
        db.session.commit()
        [job_id] = schedule(rt)
        drain(app)
        dispatch_all(app)
    [run] = _runs(job_id)
    assert run.status == "failed" and "not a credential of this company" in (run.error or "")
    assert not peer.inbox.messages and PASSWORD not in _shown(run)


def test_portal_chooses_the_credential_and_never_shows_the_login(
    app: Flask, tmp_path: Path
) -> None:
    company = make_company()
    user = make_user()
    add_member(user, company, Role.OPERATOR)
    client = client_for(app, user)
    rt = shell_rt("exit 3", company)
    with smtp_server(tmp_path, "starttls") as peer:
        cred = _mail_credential(company, peer)
        make_credential(make_company(), _mail_prototype(), name="Their mail")
        url = f"/runtemplates/{rt.id}/actions/failure/Email"
        form = client.get(url).get_data(as_text=True)
        assert f'<option value="{cred.id}"' in form and "Office mail" in form
        assert "Their mail" not in form  # only the company's own mail credentials
        data = {f"cfg_{k}": v for k, v in _email(cred, peer).items()}
        assert client.post(url, data=data).status_code == 302
        test = client.post(f"{url}/test").get_data(as_text=True)
        assert "Test succeeded" in test, test
        [message] = peer.inbox.messages
        assert message["To"] == "ops@acme.test"
        db.session.rollback()
        [job_id] = schedule(rt)
        drain(app)
        dispatch_all(app)
        pages = [
            test,
            client.get(url).get_data(as_text=True),
            client.get(f"/runtemplates/{rt.id}/actions").get_data(as_text=True),
            client.get(f"/jobs/{job_id}").get_data(as_text=True),
        ]
    for page in pages:
        assert PASSWORD not in page and quote(PASSWORD, safe="") not in page
        assert "smtp://mailer" not in page  # the DSN itself
    stored = db.session.scalar(
        select(ActionConfig.config).where(ActionConfig.runtemplate_id == rt.id)
    )
    assert stored is not None and stored["credential"] == str(cred.id)
