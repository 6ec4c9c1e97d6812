"""The HTTP action kinds against a real HTTP server on loopback: exact request shapes, status
mapping (5xx/timeouts/refused retryable, 4xx not) and secrets kept out of outcomes."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from multiflexi_web.actions.base import Action, AppRef
from multiflexi_web.actions.github import Github
from multiflexi_web.actions.mattermost import Mattermost
from multiflexi_web.actions.redmine_issue import RedmineIssue
from multiflexi_web.actions.slack import Slack
from multiflexi_web.actions.trigger_jenkins import TriggerJenkins
from multiflexi_web.actions.web_hook import WebHook
from multiflexi_web.security.secrets import MASK
from tests.action_peers import closed_port, http_peer, make_context, self_signed

TOKEN = "tok-SECRET-1f2e3d"
BUILD_TOKEN = "build/SECRET&9"
ISSUES = "/repos/VitexSoftware/invoice-sync/issues"

# kind, config for a peer at url, the (method, path) it must call
KINDS: dict[str, tuple[Action, Callable[[str], dict[str, str]], tuple[str, str]]] = {
    "Github": (Github(), lambda u: {"token": TOKEN, "api_url": u}, ("POST", ISSUES)),
    "RedmineIssue": (
        RedmineIssue(),
        lambda u: {"url": u, "token": TOKEN, "project_id": "ops"},
        ("POST", "/issues.json"),
    ),
    "TriggerJenkins": (
        TriggerJenkins(),
        lambda u: {"url": u, "job_name": "deploy", "user": "bot", "api_token": TOKEN},
        ("POST", "/job/deploy/buildWithParameters"),
    ),
    "Slack": (
        Slack(),
        lambda u: {"webhook_url": f"{u}/services/T1/{TOKEN}"},
        ("POST", f"/services/T1/{TOKEN}"),
    ),
    "Mattermost": (
        Mattermost(),
        lambda u: {"webhook_url": f"{u}/hooks/{TOKEN}"},
        ("POST", f"/hooks/{TOKEN}"),
    ),
    "WebHook": (WebHook(), lambda u: {"url": f"{u}/hook", "secret": TOKEN}, ("POST", "/hook")),
}


def assert_no_secret(*texts: str | None) -> None:
    for text in texts:
        assert TOKEN not in (text or "")
        assert BUILD_TOKEN not in (text or "")
        assert "SECRET" not in (text or "")


def test_github_posts_the_issue_upstream_shape() -> None:
    with http_peer({("POST", ISSUES): (201, '{"number": 17}', {})}) as peer:
        ctx = make_context(config={"token": TOKEN, "api_url": peer.url, "labels": "Bug, nightly"})
        outcome = Github().perform(ctx)
    assert outcome.ok, outcome
    assert outcome.response == 'HTTP 201: {"number": 17}'
    [request] = peer.requests
    assert (request.method, request.path) == ("POST", ISSUES)
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/vnd.github+json"
    assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert request.headers["X-MultiFlexi-Delivery"] == "action-run-7"
    issue = request.json()
    assert issue["title"] == "Invoice Sync problem"
    assert issue["labels"] == ["Bug", "nightly"]
    body = issue["body"]
    for part in ("http://portal.test/job/42", "Exit code: 3 (bank unreachable)", "0.1.0"):
        assert part in body
    assert "```\nsynced 12 invoices\nthen failed\n```" in body
    assert "```\nError: bank unreachable\n```" in body
    assert "<!-- multiflexi-delivery: action-run-7 -->" in body
    assert_no_secret(outcome.response, outcome.error)


def test_github_title_template_and_default_label() -> None:
    with http_peer({("POST", ISSUES): (201, "{}", {})}) as peer:
        config = {"token": TOKEN, "api_url": peer.url, "title": "${app} job ${job_id}: ${nope}"}
        assert Github().perform(make_context(config=config)).ok
    assert peer.requests[0].json()["title"] == "Invoice Sync job 42: ${nope}"
    assert peer.requests[0].json()["labels"] == ["Bug"]


@pytest.mark.parametrize(
    ("homepage", "usable"),
    [
        ("https://github.com/VitexSoftware/invoice-sync", True),
        ("https://www.github.com/o/r.git", True),
        ("https://gitlab.com/o/r", False),
        ("https://github.com/only-owner", False),
        ("https://github.com.evil.test/o/r", False),
        (None, False),
    ],
)
def test_github_is_usable_only_for_apps_hosted_on_github(
    homepage: str | None, usable: bool
) -> None:
    reason = Github().usable_for(AppRef(1, "X", None, homepage))
    assert (reason is None) is usable
    if not usable:
        outcome = Github().perform(
            make_context(app=AppRef(1, "X", None, homepage), config={"token": TOKEN})
        )
        assert not outcome.ok and not outcome.retryable
        assert "github.com" in (outcome.error or "")


def test_redmine_posts_the_issue_with_api_key() -> None:
    with http_peer({("POST", "/redmine/issues.json"): (201, '{"issue": {"id": 5}}', {})}) as peer:
        config = {"url": f"{peer.url}/redmine/", "token": TOKEN, "project_id": "ops"}
        outcome = RedmineIssue().perform(make_context(config=config))
    assert outcome.ok, outcome
    [request] = peer.requests
    assert (request.method, request.path) == ("POST", "/redmine/issues.json")
    assert request.headers["X-Redmine-API-Key"] == TOKEN
    assert request.headers["Content-Type"] == "application/json"
    issue = request.json()["issue"]
    assert set(issue) == {"project_id", "subject", "description", "tracker_id"}
    assert issue["project_id"] == "ops"
    assert issue["subject"] == "Invoice Sync problem"
    assert issue["tracker_id"] == 1
    assert "http://portal.test/job/42" in issue["description"]
    assert "Error: bank unreachable" in issue["description"]
    assert_no_secret(outcome.response, outcome.error)


def test_redmine_bad_config_is_not_retryable_and_sends_nothing() -> None:
    with http_peer({}) as peer:
        no_project = RedmineIssue().perform(make_context(config={"url": peer.url, "token": TOKEN}))
        bad_tracker = RedmineIssue().perform(
            make_context(
                config={"url": peer.url, "token": TOKEN, "project_id": "x", "tracker_id": "bug"}
            )
        )
    assert peer.requests == []
    assert not no_project.ok and not no_project.retryable
    assert no_project.error == "RedmineIssue: missing config project_id"
    assert not bad_tracker.ok and not bad_tracker.retryable
    assert "tracker_id" in (bad_tracker.error or "")


def test_jenkins_fetches_crumb_then_builds_with_token_and_basic_auth() -> None:
    crumb = json.dumps({"crumbRequestField": "Jenkins-Crumb", "crumb": "c0ffee"})
    routes: dict[tuple[str, str], Any] = {
        ("GET", "/ci/crumbIssuer/api/json"): (200, crumb, {"Set-Cookie": "JSESSIONID=s1; Path=/"}),
        ("POST", "/ci/job/team/job/deploy/buildWithParameters"): (
            201,
            "",
            {"Location": "/ci/queue/item/5/"},
        ),
    }
    with http_peer(routes) as peer:
        config = {
            "url": f"{peer.url}/ci",
            "job_name": "team/deploy",
            "user": "bot",
            "api_token": TOKEN,
            "token": BUILD_TOKEN,
            "params": "BRANCH=main\nTARGET=${company_slug}\nnot a pair",
        }
        outcome = TriggerJenkins().perform(make_context(config=config))
    assert outcome.ok, outcome
    assert outcome.response == "HTTP 201: queued /ci/queue/item/5/"
    basic = "Basic " + base64.b64encode(f"bot:{TOKEN}".encode()).decode()
    crumb_request, build = peer.requests
    assert (crumb_request.method, crumb_request.path) == ("GET", "/ci/crumbIssuer/api/json")
    assert crumb_request.headers["Authorization"] == basic
    assert build.method == "POST"
    path, _, query = build.path.partition("?")
    assert path == "/ci/job/team/job/deploy/buildWithParameters"
    assert parse_qs(query) == {"token": [BUILD_TOKEN]}
    assert build.headers["Authorization"] == basic
    assert build.headers["Jenkins-Crumb"] == "c0ffee"
    assert "JSESSIONID=s1" in build.headers["Cookie"]
    assert build.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(build.body.decode()) == {
        "MULTIFLEXI_JOB_ID": ["42"],
        "MULTIFLEXI_JOB_STATUS": ["failed"],
        "MULTIFLEXI_EXIT_CODE": ["3"],
        "MULTIFLEXI_JOB_URL": ["http://portal.test/job/42"],
        "BRANCH": ["main"],
        "TARGET": ["acme"],
    }
    assert_no_secret(outcome.response, outcome.error)


@pytest.mark.parametrize("answer", [200, 302])
def test_jenkins_without_crumb_issuer_builds_and_older_answers_count(answer: int) -> None:
    routes: dict[tuple[str, str], Any] = {
        ("POST", "/job/deploy/buildWithParameters"): (answer, "", {})
    }
    with http_peer(routes) as peer:
        outcome = TriggerJenkins().perform(
            make_context(config={"url": peer.url, "job_name": "deploy"})
        )
    assert outcome.ok, outcome
    crumb_request, build = peer.requests
    assert crumb_request.path == "/crumbIssuer/api/json"
    assert "Jenkins-Crumb" not in build.headers and "Authorization" not in build.headers
    assert "?" not in build.path


def test_jenkins_never_sends_the_daemon_users_netrc(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without a configured user, a plain requests session would log in to the tenant's
    Jenkins with the credentials the daemon user's ~/.netrc holds for its host."""
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login daemon password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(netrc))
    routes: dict[tuple[str, str], Any] = {
        ("POST", "/job/deploy/buildWithParameters"): (201, "", {})
    }
    with http_peer(routes) as peer:
        outcome = TriggerJenkins().perform(
            make_context(config={"url": peer.url, "job_name": "deploy"})
        )
    assert outcome.ok, outcome
    assert [r.headers.get("Authorization") for r in peer.requests] == [None, None]


def test_jenkins_crumb_failure_stops_before_the_build() -> None:
    with http_peer({("GET", "/crumbIssuer/api/json"): (503, "busy", {})}) as peer:
        outcome = TriggerJenkins().perform(
            make_context(config={"url": peer.url, "job_name": "deploy"})
        )
    assert not outcome.ok and outcome.retryable
    assert (outcome.error or "").startswith("crumb: HTTP 503")
    assert [r.method for r in peer.requests] == ["GET"]


def test_slack_posts_text_and_optional_blocks() -> None:
    with http_peer({("POST", "/services/T1/B2"): (200, "ok", {})}) as peer:
        url = f"{peer.url}/services/T1/B2"
        plain = Slack().perform(
            make_context(config={"webhook_url": url, "message": "${app}: ${status}"})
        )
        rich = Slack().perform(make_context(config={"webhook_url": url, "blocks": "1"}))
    assert plain.ok and rich.ok
    assert plain.response == "HTTP 200: ok"
    first, second = peer.requests
    assert first.json() == {"text": "Invoice Sync: failed"}
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["X-MultiFlexi-Delivery"] == "action-run-7"
    text = second.json()["text"]
    assert text.startswith("Invoice Sync (nightly sync, ACME Ltd): job 42 failed, exit code 3")
    assert text.endswith("http://portal.test/job/42")
    section, actions = second.json()["blocks"]
    assert section["text"] == {"type": "plain_text", "text": text}
    assert actions["elements"][0]["url"] == "http://portal.test/job/42"


def test_mattermost_posts_text_and_overrides() -> None:
    with http_peer({("POST", "/hooks/abc"): (200, "ok", {})}) as peer:
        url = f"{peer.url}/hooks/abc"
        config = {
            "webhook_url": url,
            "channel": "ops",
            "username": "multiflexi",
            "icon_url": "http://i.test/x.png",
        }
        full = Mattermost().perform(make_context(config=config))
        bare = Mattermost().perform(
            make_context(config={"webhook_url": url, "message": "job ${job_id}"})
        )
    assert full.ok and bare.ok
    first, second = peer.requests
    assert first.method == "POST" and first.headers["Content-Type"] == "application/json"
    assert first.json()["channel"] == "ops"
    assert first.json()["username"] == "multiflexi"
    assert first.json()["icon_url"] == "http://i.test/x.png"
    assert "http://portal.test/job/42" in first.json()["text"]
    assert second.json() == {"text": "job 42"}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_calls_its_endpoint_and_succeeds(kind: str) -> None:
    action, config, route = KINDS[kind]
    ok_status = 200 if kind in {"Slack", "Mattermost"} else 201
    with http_peer({route: (ok_status, "ok", {})}) as peer:
        outcome = action.perform(make_context(config=config(peer.url)))
    assert outcome.ok, outcome
    assert (peer.requests[-1].method, peer.requests[-1].path.split("?")[0]) == route
    assert_no_secret(outcome.response, outcome.error)
    for request in peer.requests:  # one HTTP path (actions/delivery.py): the run's key on each
        assert request.headers["Idempotency-Key"] == "action-run-7"
        assert request.headers["X-MultiFlexi-Delivery"] == "action-run-7"


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (503, True), (429, True), (401, False), (404, False), (501, False)],
)
def test_status_mapping_and_echoed_secrets_redacted(
    kind: str, status: int, retryable: bool
) -> None:
    action, config, route = KINDS[kind]
    echo = f"denied for {TOKEN} at {route[1]}"
    with http_peer({route: (status, echo, {})}) as peer:
        outcome = action.perform(make_context(config=config(peer.url)))
    assert not outcome.ok
    assert outcome.retryable is retryable
    assert f"HTTP {status}" in (outcome.error or "")
    assert f"denied for {MASK}" in (outcome.error or "")
    assert_no_secret(outcome.response, outcome.error)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_connection_refused_is_retryable(kind: str) -> None:
    action, config, _ = KINDS[kind]
    outcome = action.perform(make_context(config=config(f"http://127.0.0.1:{closed_port()}")))
    assert not outcome.ok and outcome.retryable
    assert "connection failed" in (outcome.error or "")
    assert_no_secret(outcome.response, outcome.error)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_timeout_is_retryable_with_the_error_recorded(kind: str) -> None:
    action, config, route = KINDS[kind]
    with http_peer({route: (None, "", {})}) as peer:
        outcome = action.perform(make_context(config=config(peer.url), timeout=0.5))
    assert not outcome.ok and outcome.retryable
    assert (outcome.error or "").startswith("timeout after 0.5s")
    assert_no_secret(outcome.response, outcome.error)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_missing_required_config_is_not_retryable(kind: str) -> None:
    action, _, _ = KINDS[kind]
    outcome = action.perform(make_context(config={}))
    assert not outcome.ok and not outcome.retryable
    assert "missing config" in (outcome.error or "")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_secret_fields_are_declared(kind: str) -> None:
    action, _, _ = KINDS[kind]
    secret = {f.key for f in action.fields if f.secret}
    expected = {
        "Github": {"token"},
        "RedmineIssue": {"token"},
        "TriggerJenkins": {"api_token", "token"},
        "Slack": {"webhook_url"},
        "Mattermost": {"webhook_url"},
        "WebHook": {"secret"},
    }
    assert secret == expected[kind]
    assert action.name == kind


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/hook", "hooks.example.test/x", "http://"])
def test_malformed_url_is_a_config_error(url: str) -> None:
    outcome = Slack().perform(make_context(config={"webhook_url": url}))
    assert not outcome.ok and not outcome.retryable
    assert (outcome.error or "").startswith("bad request:")


def test_untrusted_https_certificate_is_not_retryable(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)  # signed by no CA the client trusts
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve() -> None:
            conn, _ = listener.accept()
            with contextlib.suppress(OSError), context.wrap_socket(conn, server_side=True):
                pass

        thread = threading.Thread(target=serve)
        thread.start()
        url = f"https://127.0.0.1:{listener.getsockname()[1]}/hooks/x"
        outcome = Slack().perform(make_context(config={"webhook_url": url}))
        thread.join(10)
    assert not outcome.ok and not outcome.retryable
    assert (outcome.error or "").startswith("TLS:")
