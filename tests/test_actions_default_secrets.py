"""A global default's secrets go only to the default's destination: a tenant's operator who
points the action elsewhere gets none of them (SPEC §15: nobody below global administrator
reaches the platform's own keys), while a template that keeps the default's place still uses
them."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask

from multiflexi_web.models import Role
from multiflexi_web.services.actions import configure, values
from multiflexi_web.services.actions.configure import ActionConfigError
from tests.executor_support import shell_rt
from tests.factories import add_member, client_for, make_company, make_user

ADMIN_TOKEN = "admins-jenkins-api-token-XYZ"


@contextmanager
def recording_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            seen.append(dict(self.headers.items()))
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _any

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _basic_tokens(seen: list[dict[str, str]]) -> list[str]:
    auth = [h.get("Authorization", "") for h in seen]
    return [base64.b64decode(a[6:]).decode() for a in auth if a.startswith("Basic ")]


def _jenkins_default(app: Flask, url: str) -> None:
    """The global administrator's TriggerJenkins default, with a secret."""
    admin_client = client_for(app, make_user(is_admin=True))
    saved = admin_client.post(
        "/actions/defaults",
        data={
            "kind": "TriggerJenkins",
            "cfg_url": url,
            "cfg_user": "platform-bot",
            "cfg_api_token": ADMIN_TOKEN,
        },
    )
    assert saved.status_code == 302


def test_operator_cannot_send_the_admins_default_api_token_to_own_server(app: Flask) -> None:
    company = make_company()
    operator = make_user()
    add_member(operator, company, Role.OPERATOR)
    rt = shell_rt("exit 0", company)
    _jenkins_default(app, "https://jenkins.platform.example")

    # A tenant operator points the action at a server of their own and sends a test.
    client = client_for(app, operator)
    with recording_server() as (url, seen):
        action = f"/runtemplates/{rt.id}/actions/success/TriggerJenkins"
        put = client.post(action, data={"cfg_url": url, "cfg_job_name": "x", "trigger": "always"})
        assert put.status_code == 302, put.get_data(as_text=True)
        client.post(f"{action}/test")
    assert seen, "the test request never came"
    assert not [t for t in _basic_tokens(seen) if ADMIN_TOKEN in t], "the default's token leaked"


def test_a_template_that_keeps_the_defaults_destination_uses_its_secrets(app: Flask) -> None:
    company = make_company()
    operator = make_user()
    add_member(operator, company, Role.OPERATOR)
    rt = shell_rt("exit 0", company)
    client = client_for(app, operator)
    with recording_server() as (url, seen):
        _jenkins_default(app, url)
        action = f"/runtemplates/{rt.id}/actions/success/TriggerJenkins"
        put = client.post(action, data={"cfg_job_name": "x", "trigger": "always"})
        assert put.status_code == 302, put.get_data(as_text=True)
        client.post(f"{action}/test")
    assert f"platform-bot:{ADMIN_TOKEN}" in _basic_tokens(seen)


def test_a_required_secret_left_to_the_default_elsewhere_is_refused(app: Flask) -> None:
    configure.put_default(
        "RedmineIssue", {"url": "https://redmine.example", "token": "platform"}, is_admin=True
    )
    rt = shell_rt("exit 0")
    kept = configure.put(rt, "failure", "RedmineIssue", {"project_id": "ops"})  # the default's url
    assert kept.id
    with pytest.raises(ActionConfigError, match="'token': required here, since this action"):
        configure.put(rt, "failure", "RedmineIssue", {"url": "https://elsewhere.example"})
    own = configure.put(
        rt, "failure", "RedmineIssue", {"url": "https://elsewhere.example", "token": "mine"}
    )
    assert values.plain(own.config)["token"] == "mine"


def test_merged_drops_only_the_defaults_secrets_once_redirected(app: Flask) -> None:
    sealed = values.seal("WebHook", {"url": "https://a.example", "secret": "s", "headers": "{}"})
    assert values.merged("WebHook", sealed, {"url": "https://a.example"}) == sealed
    assert values.merged("WebHook", sealed, {"url": ""}) == sealed  # empty: the default's
    moved = values.merged("WebHook", sealed, {"url": "https://b.example"})
    assert moved == {"url": "https://b.example", "headers": "{}"}
    mail = values.seal("Email", {"smtp_host": "mx.example", "password": "p", "from": "a@b.cz"})
    assert "password" not in values.merged("Email", mail, {"security": "none"})
    assert "password" in values.merged("Email", mail, {"to": "ops@c.cz"})
