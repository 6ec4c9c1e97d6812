"""Post-job actions in the portal: forms from the kinds' fields, write-only secrets, send a test,
the job page's action runs (live only while open) with retry, the defaults page."""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import Role
from multiflexi_web.models.action import ActionConfig
from multiflexi_web.security.secrets import MASK
from tests.action_support import Peer, dispatch_all, http_peer
from tests.executor_support import drain, schedule, shell_rt
from tests.factories import add_member, client_for, make_company, make_user

SECRET = "portal-secret-never-shown"


def _operator(app: Flask, role: Role = Role.OPERATOR):  # type: ignore[no-untyped-def]
    company = make_company()
    user = make_user()
    add_member(user, company, role)
    return company, client_for(app, user)


def test_operator_configures_a_webhook_and_sends_a_test(app: Flask) -> None:
    company, client = _operator(app)
    rt = shell_rt("exit 0", company)
    with http_peer() as peer:
        url = f"/runtemplates/{rt.id}/actions/success/WebHook"
        form = client.get(url).get_data(as_text=True)
        assert 'name="cfg_url"' in form and 'type="password" name="cfg_secret"' in form
        saved = client.post(
            url, data={"cfg_url": peer.url, "cfg_secret": SECRET, "trigger": "always"}
        )
        assert saved.status_code == 302
        # The form again: the secret is a placeholder; saving without it keeps the stored one.
        again = client.get(url).get_data(as_text=True)
        assert SECRET not in again and f'placeholder="{MASK}"' in again
        assert client.post(url, data={"cfg_url": peer.url, "cfg_secret": ""}).status_code == 302
        listing = client.get(f"/runtemplates/{rt.id}/actions").get_data(as_text=True)
        assert "WebHook" in listing and SECRET not in listing
        test = client.post(f"{url}/test").get_data(as_text=True)
        assert "Test succeeded" in test and SECRET not in test
    [hit] = peer.hits
    stamp, mac = (p.split("=", 1)[1] for p in hit.headers["X-MultiFlexi-Signature"].split(","))
    assert hmac.compare_digest(
        mac, hmac.new(SECRET.encode(), f"{stamp}.".encode() + hit.body, hashlib.sha256).hexdigest()
    )
    db.session.rollback()  # a fresh snapshot
    stored = db.session.scalar(
        select(ActionConfig.config).where(ActionConfig.runtemplate_id == rt.id)
    )
    assert stored["url"] == peer.url and SECRET not in str(stored)


def test_bad_form_input_is_named_not_a_500(app: Flask) -> None:
    company, client = _operator(app)
    rt = shell_rt("exit 0", company)
    resp = client.post(
        f"/runtemplates/{rt.id}/actions/failure/WebHook",
        data={"cfg_url": "", "after_failures": "x"},
    )
    assert resp.status_code == 400 and "after_failures" in resp.get_data(as_text=True)
    assert client.get(f"/runtemplates/{rt.id}/actions/success/Nope").status_code == 404
    custom = client.post(
        f"/runtemplates/{rt.id}/actions/success/CustomCommand",
        data={"cfg_command": '["/bin/true"]'},
    )
    assert custom.status_code == 400 and "global administrator" in custom.get_data(as_text=True)
    tab = client.get(f"/runtemplates/{rt.id}/actions").get_data(as_text=True)
    assert 'data-kind="success-WebHook"' in tab
    assert 'data-kind="success-CustomCommand"' not in tab  # not offered to an operator


def test_job_page_lists_runs_live_and_retries_failed_ones(app: Flask) -> None:
    company, client = _operator(app)
    rt = shell_rt("exit 1", company)
    with http_peer(Peer(answer=lambda n: (400, "refused"))) as peer:
        client.post(
            f"/runtemplates/{rt.id}/actions/failure/WebHook",
            data={"cfg_url": peer.url, "on_timed_out": "1"},
        )
        db.session.rollback()  # the portal wrote meanwhile: a fresh snapshot before writing
        [jid] = schedule(rt)
        drain(app)
        pending = client.get(f"/jobs/{jid}").get_data(as_text=True)
        assert 'id="action-runs"' in pending and 'hx-trigger="every 2s"' in pending
        dispatch_all(app)
    page = client.get(f"/jobs/{jid}").get_data(as_text=True)
    assert "HTTP 400: refused" in page and "every 2s" not in page  # nothing open: no polling
    assert page.count("HTTP 400: refused") == 1  # one list of the runs, not two
    # The details fragment (refreshed while the job runs, and sent with the output poll that
    # sees the final status) carries the runs: a page opened before the finish shows them.
    details = client.get(f"/jobs/{jid}?part=details").get_data(as_text=True)
    assert 'id="action-runs"' in details and "HTTP 400: refused" in details
    from multiflexi_web.models.action import ActionRun

    run = db.session.scalar(select(ActionRun).where(ActionRun.job_id == jid))
    assert run is not None
    _, viewer = _operator(app, Role.VIEWER)
    assert viewer.post(f"/jobs/{jid}/actions/{run.id}/retry").status_code == 404  # another company
    assert client.post(f"/jobs/{jid}/actions/{run.id}/retry").status_code == 302
    db.session.rollback()
    assert db.session.get(ActionRun, run.id).status == "pending"  # type: ignore[union-attr]
    assert "every 2s" in client.get(f"/jobs/{jid}/actions").get_data(as_text=True)


def test_defaults_page_is_for_administrators(app: Flask) -> None:
    _, operator = _operator(app)
    assert operator.get("/actions/defaults").status_code == 403
    admin = client_for(app, make_user(is_admin=True))
    page = admin.get("/actions/defaults").get_data(as_text=True)
    assert 'id="defaults-WebHook"' in page
    saved = admin.post(
        "/actions/defaults",
        data={"kind": "WebHook", "cfg_secret": SECRET, "cfg_headers": '{"X-A": "b"}'},
    )
    assert saved.status_code == 302
    assert SECRET not in admin.get("/actions/defaults").get_data(as_text=True)


def test_a_chain_offers_and_accepts_only_runtemplates_of_the_company(app: Flask) -> None:
    company, client = _operator(app)
    rt, sibling = shell_rt("exit 0", company), shell_rt("exit 0", company)
    foreign = shell_rt("exit 0")  # another company
    url = f"/runtemplates/{rt.id}/actions/success/ChainRuntemplate"
    form = client.get(url).get_data(as_text=True)
    assert 'type="number" name="cfg_rtid"' in form
    refused = client.post(url, data={"cfg_rtid": str(foreign.id), "trigger": "always"})
    body = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "is not a RunTemplate of this company" in body
    assert client.post(url, data={"cfg_rtid": str(sibling.id)}).status_code == 302
    admin = client_for(app, make_user(is_admin=True))
    defaults = admin.get("/actions/defaults").get_data(as_text=True)
    assert 'id="defaults-ChainRuntemplate"' in defaults and 'name="cfg_pass_env"' in defaults
    assert 'name="cfg_rtid"' not in defaults and 'name="cfg_jobid"' not in defaults
