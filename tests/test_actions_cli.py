"""The actions CLI (exact spellings scripts use) and secret values kept out of every output."""

from __future__ import annotations

import json
import logging

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models.action import ActionConfig
from multiflexi_web.security.secrets import MASK
from tests.action_support import Peer, dispatch_all, http_peer
from tests.executor_support import drain, schedule, shell_rt

SECRET = "hmac-key-that-must-never-show"


def _ok(runner: FlaskCliRunner, *args: str) -> str:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_add_list_show_and_job_actions(app: Flask, runner: FlaskCliRunner) -> None:
    rt = shell_rt("exit 4")
    with http_peer(Peer(answer=lambda n: (404, "nope"))) as peer:
        added = json.loads(
            _ok(
                runner,
                "runtemplate",
                "action",
                "add",
                str(rt.id),
                "--on",
                "failure",
                "--kind",
                "WebHook",
                "--config",
                f"url={peer.url}",
                "--config",
                f"secret={SECRET}",
                "--format",
                "json",
            )
        )
        assert added["kind"] == "WebHook" and added["config"]["secret"] == MASK
        listed = json.loads(
            _ok(runner, "runtemplate", "action", "list", str(rt.id), "--format", "json")
        )
        assert [(a["mode"], a["kind"], a["config"]["url"]) for a in listed] == [
            ("failure", "WebHook", peer.url)
        ]
        shown = json.loads(_ok(runner, "runtemplate", "show", str(rt.id), "--format", "json"))
        assert [a["kind"] for a in shown["actions"]] == ["WebHook"]
        [jid] = schedule(rt)
        drain(app)
        dispatch_all(app)
    [run] = json.loads(_ok(runner, "job", "actions", str(jid), "--format", "json"))
    assert (run["kind"], run["mode"], run["status"], run["attempts"]) == (
        "WebHook",
        "failure",
        "failed",
        1,
    )
    assert "HTTP 404" in run["error"]
    retried = json.loads(_ok(runner, "action", "retry", str(run["id"]), "--format", "json"))
    assert retried["status"] == "pending"
    kinds = json.loads(_ok(runner, "action", "kinds", "--format", "json"))
    assert {"WebHook", "ChainRuntemplate", "LaunchJob", "Reschedule", "Stop", "CustomCommand"} <= {
        k["kind"] for k in kinds
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "Nope", "--config", "url=http://x"], "kind 'Nope': unknown"),
        (["--kind", "WebHook"], "WebHook config 'url': required"),
        (["--kind", "WebHook", "--config", "colour=red"], "WebHook config 'colour': unknown"),
        (["--kind", "WebHook", "--config", "url"], "--config 'url': expected KEY=VALUE"),
    ],
)
def test_bad_input_is_named(
    app: Flask, runner: FlaskCliRunner, args: list[str], message: str
) -> None:
    rt = shell_rt("true")
    result = runner.invoke(
        args=["runtemplate", "action", "add", str(rt.id), "--on", "success", *args]
    )
    assert result.exit_code != 0 and message in result.output
    missing = runner.invoke(args=["action", "retry", "999"])
    assert missing.exit_code != 0 and "action run 999: not found" in missing.output


def test_a_secret_shows_nowhere(
    app: Flask, runner: FlaskCliRunner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # The peer echoes the secret back (a misbehaving peer): the record must mask it.
    peer = Peer(answer=lambda n: (500, f"bad {SECRET}") if n == 0 else (200, f"ok {SECRET}"))
    with http_peer(peer):
        rt = shell_rt("exit 0")
        _ok(
            runner,
            "runtemplate",
            "action",
            "add",
            str(rt.id),
            "--on",
            "success",
            "--kind",
            "WebHook",
            "--config",
            f"url={peer.url}",
            "--config",
            f"secret={SECRET}",
        )
        # A value sent back as the mask keeps the stored secret (forms round-trip it).
        _ok(
            runner,
            "runtemplate",
            "action",
            "add",
            str(rt.id),
            "--on",
            "success",
            "--kind",
            "WebHook",
            "--config",
            f"secret={MASK}",
        )
        [jid] = schedule(rt)
        drain(app)
        dispatch_all(app)
    assert len(peer.hits) == 2 and SECRET not in peer.hits[0].body.decode()
    outputs = [
        _ok(runner, "runtemplate", "action", "list", str(rt.id), "--format", "json"),
        _ok(runner, "runtemplate", "show", str(rt.id), "--format", "json"),
        _ok(runner, "job", "actions", str(jid), "--format", "json"),
    ]
    [run] = json.loads(outputs[-1])
    assert run["status"] == "succeeded" and f"ok {MASK}" in run["response"]
    stored = db.session.scalar(
        select(ActionConfig.config).where(ActionConfig.runtemplate_id == rt.id)
    )
    for text in [*outputs, caplog.text, json.dumps(stored)]:
        assert SECRET not in text
