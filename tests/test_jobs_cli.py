"""The job CLI: schedule, list, show, output, cancel, artifacts."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from flask import Flask
from flask.testing import FlaskCliRunner

from multiflexi_web.extensions import db
from multiflexi_web.security.secrets import cipher
from multiflexi_web.services.jobs import artifacts
from tests.executor_support import drain, job, shell_rt

FIELDS = {
    "id",
    "status",
    "exit_code",
    "runtemplate_id",
    "schedule_type",
    "scheduled_for",
    "started_at",
    "finished_at",
}


def _ok(runner: FlaskCliRunner, *args: str) -> str:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_schedule_run_list_show_output_artifacts(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    rt = shell_rt('printf "%s\\377" "$GREETING"; echo warn >&2', overlap_policy="allow")
    ids = [
        int(x)
        for x in _ok(
            runner,
            "runtemplate",
            "schedule",
            str(rt.id),
            "--env",
            "GREETING=hi there",
            "--count",
            "2",
        ).split()
    ]
    assert len(ids) == 2
    first = job(ids[0])
    assert first.schedule_type == "adhoc-cli" and first.status == "scheduled"
    assert first.env_override and cipher().decrypt_json(first.env_override) == {
        "GREETING": "hi there"
    }
    drain(app)

    listed = json.loads(_ok(runner, "job", "list", "--runtemplate", str(rt.id), "--format", "json"))
    assert [r["id"] for r in listed] == sorted(ids, reverse=True)
    assert set(listed[0]) >= FIELDS and {r["status"] for r in listed} == {"succeeded"}
    assert json.loads(_ok(runner, "job", "list", "--status", "failed", "--format", "json")) == []
    shown = json.loads(_ok(runner, "job", "show", str(ids[0]), "--format", "json"))
    assert shown["exit_code"] == 0 and shown["env"]["GREETING"] == "hi there (override)"
    assert isinstance(shown["command"], list) and len(shown["command"]) >= 2
    text = _ok(runner, "job", "show", str(ids[0]))  # the argv as a shell would read it
    assert re.search(rf"^command +{re.escape(shlex.join(shown['command']))}$", text, re.M)

    out = runner.invoke(args=["job", "output", str(ids[0]), "--stream", "stdout"])
    assert out.exit_code == 0 and out.stdout_bytes == b"hi there\xff"
    both = runner.invoke(args=["job", "output", str(ids[0]), "--follow"])
    assert both.stdout_bytes == b"hi there\xffwarn\n"

    arts = json.loads(_ok(runner, "artifact", "list", str(ids[0]), "--format", "json"))
    assert {a["filename"] for a in arts} == {"stdout.txt", "stderr.txt"}
    stdout_art = next(a for a in arts if a["filename"] == "stdout.txt")
    dest = tmp_path / "got.txt"
    _ok(runner, "artifact", "get", str(stdout_art["id"]), "-o", str(dest))
    assert dest.read_bytes() == b"hi there\xff"
    raw = runner.invoke(args=["artifact", "get", str(stdout_art["id"])])
    assert raw.stdout_bytes == b"hi there\xff"


def test_schedule_later_and_cancel(app: Flask, runner: FlaskCliRunner) -> None:
    rt = shell_rt("true")
    [job_id] = [
        int(x)
        for x in _ok(
            runner, "runtemplate", "schedule", str(rt.id), "--when", "2099-01-01T10:00:00+00:00"
        ).split()
    ]
    assert job(job_id).scheduled_for.year == 2099
    assert _ok(runner, "job", "cancel", str(job_id)).strip() == f"job {job_id}: cancelled"
    again = runner.invoke(args=["job", "cancel", str(job_id)])
    assert again.exit_code == 1 and f"job {job_id}: already cancelled" in again.output


def test_errors_name_the_thing(app: Flask, runner: FlaskCliRunner) -> None:
    for args, message in [
        (["job", "show", "424242"], "job 424242: not found"),
        (["artifact", "get", "424242"], "artifact 424242: not found"),
        (["runtemplate", "schedule", "424242"], "runtemplate 424242: not found"),
        (["runtemplate", "schedule", "1", "--when", "tomorrow"], "'tomorrow': expected 'now'"),
    ]:
        result = runner.invoke(args=args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    assert artifacts.list_for_job(db.session(), 424242) == []
