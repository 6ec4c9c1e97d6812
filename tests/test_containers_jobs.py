"""Container jobs through the executor (SQLite, PostgreSQL): artifacts, reaping, worker report."""

from __future__ import annotations

import signal
from pathlib import Path

import docker
from flask import Flask
from sqlalchemy import select

from daemons.runtime import Runtime
from multiflexi_web.executors.container_labels import LABEL_JOB
from multiflexi_web.extensions import db
from multiflexi_web.models import Artifact, Job, JobStatus, RunTemplate, Worker
from multiflexi_web.models.worker import MODULES_KEY
from multiflexi_web.runner.engines import EngineWatch
from tests.engines import Engine, engine_fixture, engines_fixture  # noqa: F401  (fixtures)
from tests.executor_support import (
    cancel,
    drain,
    job,
    log_text,
    output_of,
    schedule,
    shell_rt,
    show_logs,
    start_daemon,
    stop,
    wait_for,
)

DEADLINE = 60.0
RESULT_SCRIPT = (
    'set -e; echo "{\\"ok\\": true, \\"job\\": \\"$MULTIFLEXI_JOB_ID\\"}" > "$RESULT_FILE"'
)


def container_rt(eng: Engine, script: str, **kw: object) -> RunTemplate:
    rt = shell_rt(script, executor=eng.name, **kw)  # type: ignore[arg-type]
    rt.application.ociimage = eng.image
    db.session.commit()
    return rt


def labelled(eng: Engine) -> list[dict[str, object]]:
    api = docker.DockerClient(base_url=eng.host).api
    return list(api.containers(all=True, filters={"label": LABEL_JOB}))


def test_result_file_comes_back_as_an_artifact(app: Flask, engine: Engine) -> None:
    rt = container_rt(
        engine,
        RESULT_SCRIPT,
        fields=[{"keyname": "RESULT_FILE", "type": "string", "default": "result.json"}],
    )
    (job_id,) = schedule(rt)
    drain(app)
    j = job(job_id)
    assert j.status == JobStatus.SUCCEEDED.value, j.status_reason
    assert j.container_id and len(j.container_id) == 64
    art = db.session.scalars(
        select(Artifact).where(Artifact.job_id == job_id, Artifact.filename.like("%result.json"))
    ).one()
    assert art.mime_type == "application/json"
    assert art.content is not None and f'"job": "{job_id}"'.encode() in art.content
    assert labelled(engine) == []


def test_memory_limit_reported_on_the_job(app: Flask, engine: Engine) -> None:
    rt = container_rt(
        engine,
        "exec dd if=/dev/zero of=/dev/null bs=64M count=1",
        executor_options={"memory": "16m"},
    )
    (job_id,) = schedule(rt)
    drain(app)
    j = job(job_id)
    assert (j.status, j.exit_code) == (JobStatus.FAILED.value, 137)
    assert j.status_reason and "memory limit (16 MiB)" in j.status_reason


def test_live_output_cancel_and_timeout_through_the_daemon(
    app: Flask, engine: Engine, db_url: str, tmp_path: Path
) -> None:
    script = "echo up; exec sleep 600"
    cancel_rt, timed_rt = container_rt(engine, script), container_rt(engine, script, timeout=2)
    [cancel_id], [timeout_id] = schedule(cancel_rt), schedule(timed_rt)
    proc = start_daemon(
        db_url, tmp_path, MULTIFLEXI_KILL_GRACE="1", **{engine.env_key: engine.host}
    )
    try:
        wait_for(lambda: output_of(cancel_id) == b"up\n", DEADLINE, "output stored while running")
        assert job(cancel_id).status == JobStatus.RUNNING.value
        assert cancel(cancel_id) == "cancel requested"
        wait_for(lambda: job(cancel_id).status == "cancelled", DEADLINE, "the job cancelled")
        wait_for(lambda: job(timeout_id).status == "timed_out", DEADLINE, "the job timed out")
        assert labelled(engine) == []
    except BaseException:
        show_logs(tmp_path)
        raise
    finally:
        stop(proc)
    assert job(cancel_id).exit_code == 137  # sleep as PID 1 ignores TERM: killed after the grace


def test_second_sigterm_kills_the_container_at_once(
    app: Flask, engine: Engine, db_url: str, tmp_path: Path
) -> None:
    (job_id,) = schedule(container_rt(engine, "echo up; exec sleep 600"))  # PID 1 ignores TERM
    settings = {"MULTIFLEXI_STOP_GRACE": "0", "MULTIFLEXI_KILL_GRACE": "600"}
    proc = start_daemon(db_url, tmp_path, **settings, **{engine.env_key: engine.host})
    try:
        wait_for(lambda: output_of(job_id) == b"up\n", DEADLINE, "the job running")
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "action=stopping_jobs" in log_text(tmp_path), DEADLINE, "TERM sent")
        proc.send_signal(signal.SIGTERM)
        proc.wait(DEADLINE)
    except BaseException:
        show_logs(tmp_path)
        raise
    finally:
        stop(proc)
    j = job(job_id)
    assert (j.status, j.exit_code) == (JobStatus.FAILED.value, 137)
    assert j.status_reason == "stopped: executor received a second SIGTERM"
    assert labelled(engine) == []


def test_kill_9_leaves_no_container_after_start_up(
    app: Flask, engine: Engine, db_url: str, tmp_path: Path
) -> None:
    rt = container_rt(engine, "echo up; exec sleep 600")
    (job_id,) = schedule(rt)
    proc = start_daemon(db_url, tmp_path, **{engine.env_key: engine.host})
    try:
        wait_for(lambda: job(job_id).container_id, DEADLINE, "the container id on the job")
        wait_for(lambda: len(labelled(engine)) == 1, DEADLINE, "the job's container")
        watch = EngineWatch(_registered(app), set, 1.0)
        assert watch.tick() == []  # the job runs on a live executor: its container stays
        proc.send_signal(signal.SIGKILL)
        proc.wait(DEADLINE)
        assert len(labelled(engine)) == 1  # the engine keeps it: nobody removed it
        removed = EngineWatch(_registered(app), set, 1.0).tick()  # a new executor starting
        assert [r[:12] for r in removed] == [job(job_id).container_id[:12]]  # type: ignore[index]
        assert labelled(engine) == []
    except BaseException:
        show_logs(tmp_path)
        raise
    finally:
        stop(proc)


def test_a_container_that_ended_as_its_executor_died_is_recorded_not_rerun(
    app: Flask, engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """The executor is frozen (SIGSTOP) so it cannot journal the container's end, then killed;
    a new executor's engine watch records the job from the engine's exit code (no retry)."""
    rt = container_rt(engine, "echo up; sleep 1; exit 0", max_attempts=2, retry_min_gap=0)
    (job_id,) = schedule(rt)
    proc = start_daemon(db_url, tmp_path, **{engine.env_key: engine.host})
    try:
        wait_for(lambda: output_of(job_id) == b"up\n", DEADLINE, "the job running")
        proc.send_signal(signal.SIGSTOP)
        wait_for(lambda: [c["State"] for c in labelled(engine)] == ["exited"], DEADLINE, "ended")
        proc.send_signal(signal.SIGKILL)
        proc.wait(DEADLINE)
        assert job(job_id).status == JobStatus.RUNNING.value  # nobody recorded its end
        removed = EngineWatch(_registered(app), set, 1.0).tick()  # a new executor starting
        assert len(removed) == 1 and labelled(engine) == []
    except BaseException:
        show_logs(tmp_path)
        raise
    finally:
        stop(proc)
    j = job(job_id)
    assert (j.status, j.exit_code) == (JobStatus.SUCCEEDED.value, 0)
    assert db.session.scalars(select(Job).where(Job.retry_of_id == job_id)).all() == []


def test_worker_reports_its_modules(app: Flask, engine: Engine) -> None:
    rt = _registered(app)
    EngineWatch(rt, set, 1.0).tick()
    with app.app_context():
        worker = db.session.get(Worker, rt.worker_id)
        assert worker is not None
        modules = worker.info[MODULES_KEY]
    assert modules["native"] is None and modules[engine.name] is None
    other = "podman" if engine.name == "docker" else "docker"
    assert "not configured" in modules[other]


def _registered(app: Flask) -> Runtime:
    db.session.commit()
    rt = Runtime("executor", app)
    rt.register()
    return rt
