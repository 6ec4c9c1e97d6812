"""ChainRuntemplate / LaunchJob, Reschedule, Stop and CustomCommand, run by the dispatcher."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import AuditLog, FileUpload, Job, RunTemplate, utcnow
from multiflexi_web.models.action import ActionConfig, ActionRun
from multiflexi_web.services.actions import configure
from tests.action_support import FAST, dispatch_all
from tests.executor_support import drain, job, output_of, schedule, shell_rt
from tests.factories import make_company


def _runs(job_id: int) -> list[ActionRun]:
    db.session.rollback()
    return list(db.session.scalars(select(ActionRun).where(ActionRun.job_id == job_id)))


def _jobs_of(rt: RunTemplate) -> list[Job]:
    db.session.rollback()
    return list(db.session.scalars(select(Job).where(Job.runtemplate_id == rt.id).order_by(Job.id)))


def _add(rt: RunTemplate, mode: str, kind: str, **config: str) -> None:
    configure.put(rt, mode, kind, config, is_admin=True)
    db.session.commit()


def test_chain_passes_env_and_produced_files(app: Flask) -> None:
    company = make_company()
    source = shell_rt(
        'echo "{\\"n\\": 7}" > report.json',
        company,
        artifacts=[{"name": "report", "path": "report.json"}],
    )
    source.application.produces = {"report": {"format": "file", "patterns": [r"report\.json$"]}}
    target = shell_rt('echo "got:$FOO"; cat "$REPORT_FILE"', company)
    target.application.consumes = {"report": {"format": "file", "target": "REPORT_FILE"}}
    db.session.commit()
    _add(source, "success", "ChainRuntemplate", rtid=str(target.id), pass_files="true")
    [first] = schedule(source, env_override={"FOO": "bar"})
    drain(app)
    dispatch_all(app)
    [run] = _runs(first)
    assert run.status == "succeeded", run.error
    [chained] = _jobs_of(target)
    assert chained.schedule_type == "chained" and chained.chain_depth == 1
    assert db.session.scalar(select(FileUpload.field).where(FileUpload.job_id == chained.id)) == (
        "REPORT_FILE"
    )
    drain(app)
    assert job(chained.id).status == "succeeded"
    out = output_of(chained.id).decode()
    assert "got:bar" in out and json.loads(out.splitlines()[1]) == {"n": 7}


def test_chain_to_another_company_is_refused(app: Flask) -> None:
    source, foreign = shell_rt("true"), shell_rt("true")  # two companies
    # Refused when configured, a missing id and another company's alike ...
    for raw in (str(foreign.id), "999999", "x"):
        with pytest.raises(configure.ActionConfigError, match="not a RunTemplate of this company"):
            configure.put(source, "success", "LaunchJob", {"jobid": raw}, is_admin=True)
    db.session.rollback()
    with pytest.raises(configure.ActionConfigError, match="choose it per RunTemplate"):
        configure.put_default("ChainRuntemplate", {"rtid": str(foreign.id)}, is_admin=True)
    db.session.rollback()
    # ... and when it runs, for a configuration written before that check.
    db.session.add(
        ActionConfig(
            runtemplate_id=source.id,
            mode="success",
            action="LaunchJob",
            position=1,
            config={"jobid": str(foreign.id)},
        )
    )
    db.session.commit()
    [first] = schedule(source)
    drain(app)
    dispatch_all(app)
    [run] = _runs(first)
    assert run.status == "failed" and "another company" in (run.error or "")
    assert _jobs_of(foreign) == []


def test_a_chain_loop_stops_at_the_depth_limit(app: Flask) -> None:
    rt = shell_rt("true")
    _add(rt, "success", "ChainRuntemplate", rtid=str(rt.id))
    schedule(rt)
    limit = FAST.chain_max_depth
    for _ in range(limit + 2):
        drain(app)
        dispatch_all(app)
    jobs = _jobs_of(rt)
    assert [j.chain_depth for j in jobs] == list(range(limit + 1))
    [last_run] = _runs(jobs[-1].id)
    assert last_run.status == "failed" and "MULTIFLEXI_CHAIN_MAX_DEPTH" in (last_run.error or "")


def test_reschedule_runs_again_later_without_touching_the_cadence(app: Flask) -> None:
    rt = shell_rt("exit 1", interval="h")
    before = rt.next_run_at
    _add(rt, "failure", "Reschedule", delay="600")
    [first] = schedule(rt)
    drain(app)
    dispatch_all(app)
    again = [j for j in _jobs_of(rt) if j.id != first]
    assert [j.schedule_type for j in again] == ["reschedule"]
    assert again[0].scheduled_for > utcnow() + timedelta(seconds=590)
    assert db.session.get(RunTemplate, rt.id).next_run_at == before  # type: ignore[union-attr]


def test_stop_sets_manual_and_is_audited(app: Flask) -> None:
    rt = shell_rt("exit 2", interval="d")
    _add(rt, "failure", "Stop")
    [first] = schedule(rt)
    drain(app)
    dispatch_all(app)
    db.session.rollback()
    assert db.session.get(RunTemplate, rt.id).interval == "n"  # type: ignore[union-attr]
    audit = db.session.scalar(
        select(AuditLog).where(AuditLog.action == "runtemplate.schedule_stopped")
    )
    assert audit is not None and audit.actor == "action:Stop" and str(first) in audit.summary


def test_custom_command_argv_is_filled_and_recorded(app: Flask) -> None:
    rt = shell_rt("exit 0")
    argv = ["/bin/echo", "job={JOB_ID}", "status={JOB_STATUS}", "$(not a shell)"]
    _add(rt, "success", "CustomCommand", command=json.dumps(argv))
    [first] = schedule(rt)
    drain(app)
    dispatch_all(app)
    [run] = _runs(first)
    assert run.status == "succeeded"
    assert f"job={first} status=succeeded $(not a shell)" in (run.response or "")


def test_custom_command_leaves_no_process_behind(app: Flask, tmp_path: Path) -> None:
    """A process of the command that left its group (setsid) is found by its marker and
    killed with it, as a job's are."""
    pidfile = tmp_path / "escaped.pid"
    rt = shell_rt("exit 0")
    escape = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' >/dev/null 2>&1 &"
    script = f"{escape} sleep 0.3; echo done"
    _add(rt, "success", "CustomCommand", command=json.dumps(["/bin/sh", "-c", script]))
    [first] = schedule(rt)
    drain(app)
    dispatch_all(app)
    [run] = _runs(first)
    assert run.status == "succeeded", run.error
    pid = int(pidfile.read_text())
    status = Path(f"/proc/{pid}/status")
    assert not status.exists() or "State:\tZ" in status.read_text()  # gone, or a zombie


def test_custom_command_is_for_global_admins_only(app: Flask) -> None:
    import pytest

    rt = shell_rt("exit 0")
    with pytest.raises(configure.ActionConfigError, match="global administrator"):
        configure.put(rt, "success", "CustomCommand", {"command": '["/bin/true"]'})
