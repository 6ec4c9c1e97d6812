"""Container jobs through the executor (SQLite, PostgreSQL): artifacts, reaping, worker report."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

import docker
from flask import Flask
from sqlalchemy import select

from daemons.runtime import Runtime
from multiflexi_web.executors import registry
from multiflexi_web.executors.base import AppInfo, AttemptFence, Cleared, JobSpec, RunResult
from multiflexi_web.executors.container_labels import LABEL_INSTALLATION, LABEL_JOB
from multiflexi_web.extensions import db
from multiflexi_web.models import Artifact, Job, JobStatus, RunTemplate, Worker
from multiflexi_web.models.worker import MODULES_KEY
from multiflexi_web.runner import guard
from multiflexi_web.runner.engines import EngineWatch
from multiflexi_web.services import installation
from tests.engines import Engine, engine_fixture, engines_fixture  # noqa: F401  (fixtures)
from tests.executor_support import (
    all_threads_stopped,
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
from tests.test_containers import Recorder

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


def test_kill_9_of_the_executor_stops_and_removes_its_running_container(
    app: Flask, engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """A container job does not outlive its executor (SPEC §16): the job guard, which outlives
    a kill -9, kills and removes the container through the engine's API; no other executor
    needs to start for that (before, it ran on until one did)."""
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
        wait_for(lambda: labelled(engine) == [], DEADLINE, "the guard to remove the container")
        ct = job(job_id).container_id
        assert ct is not None
        wait_for(lambda: f"containers={ct[:12]}" in log_text(tmp_path), DEADLINE, "its log")
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
    # The container ends once the test puts `gate` into its work directory (/work, its cwd).
    script = "echo up; while [ ! -e gate ]; do sleep 0.05; done; exit 0"
    rt = container_rt(engine, script, max_attempts=2, retry_min_gap=0)
    (job_id,) = schedule(rt)
    proc = start_daemon(db_url, tmp_path, **{engine.env_key: engine.host})
    try:
        wait_for(lambda: output_of(job_id) == b"up\n", DEADLINE, "the job running")
        proc.send_signal(signal.SIGSTOP)
        # Every thread stopped before the container may end: one still running would record it.
        wait_for(lambda: all_threads_stopped(proc.pid), DEADLINE, "the executor frozen")
        (tmp_path / "work" / f"job-{job_id}" / "gate").touch(mode=0o644)
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


def _sleeper(eng: Engine, labels: dict[str, str]) -> str:
    """A running container with these labels, as a job of some installation would be."""
    api = docker.DockerClient(base_url=eng.host).api
    ct = str(api.create_container(eng.image, command=["sleep", "600"], labels=labels)["Id"])
    api.start(ct)
    return ct


def _gone(eng: Engine, ct: str) -> bool:
    api = docker.DockerClient(base_url=eng.host).api
    return not api.containers(all=True, filters={"id": ct})


def test_a_retry_removes_its_previous_attempt_and_nothing_of_another_installation(
    app: Flask, engine: Engine, tmp_path: Path
) -> None:
    """The retry fence of container modules (executors/containers.py clear_attempt): the
    previous attempt's container, still running after its executor was killed, is killed and
    removed before the retry starts; another installation's job of the same id is not touched,
    nor is this installation's container of another job."""
    ours = installation.uid(db.session())
    previous = _sleeper(engine, {LABEL_JOB: "7", LABEL_INSTALLATION: ours})
    theirs = _sleeper(engine, {LABEL_JOB: "7", LABEL_INSTALLATION: "another-installation"})
    other_job = _sleeper(engine, {LABEL_JOB: "8", LABEL_INSTALLATION: ours})
    try:
        module = registry.get(engine.name)
        assert isinstance(module, AttemptFence)
        spec = JobSpec(
            job_id=9, argv=("/bin/true",), env={}, workdir=tmp_path,
            app=AppInfo("demo", "/bin/true", engine.image),
            installation=ours, previous_attempt=7,
        )  # fmt: skip
        assert module.clear_attempt(spec, Recorder()) == Cleared(
            (f"container {previous[:12]}",), None
        )
        assert _gone(engine, previous)
        assert not _gone(engine, theirs) and not _gone(engine, other_job)
        assert (
            module.clear_attempt(spec, Recorder()) == Cleared()
        )  # nothing left: the retry may start
    finally:
        api = docker.DockerClient(base_url=engine.host).api
        for ct in (previous, theirs, other_job):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(ct, force=True)


def test_the_engine_watch_leaves_another_installations_containers_alone(
    app: Flask, engine: Engine
) -> None:
    """Staging beside production on one engine: both number their jobs from 1. A container of
    the other installation's job 1 is not this installation's leftover, even though job 1 here
    is over; this installation's own leftover of that job is removed."""
    rt = container_rt(engine, "true")
    (job_id,) = schedule(rt)
    drain(app)
    assert job(job_id).status == JobStatus.SUCCEEDED.value
    ours = installation.uid(db.session())
    leftover = _sleeper(engine, {LABEL_JOB: str(job_id), LABEL_INSTALLATION: ours})
    theirs = _sleeper(engine, {LABEL_JOB: str(job_id), LABEL_INSTALLATION: "staging"})
    try:
        removed = EngineWatch(_registered(app), set, 1.0).tick()
        assert removed == [leftover]
        assert _gone(engine, leftover) and not _gone(engine, theirs)
    finally:
        api = docker.DockerClient(base_url=engine.host).api
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(theirs, force=True)


def test_a_retry_whose_previous_container_had_ended_records_its_exit_code(
    app: Flask, engine: Engine, tmp_path: Path
) -> None:
    """The previous attempt's container ended (its work was done) as its executor died: the
    fence reports its exit code with the removal, so the retry records it, not runs again."""
    ours = installation.uid(db.session())
    api = docker.DockerClient(base_url=engine.host).api
    labels = {LABEL_JOB: "7", LABEL_INSTALLATION: ours}
    ct = str(
        api.create_container(engine.image, command=["sh", "-c", "exit 3"], labels=labels)["Id"]
    )
    api.start(ct)
    assert api.wait(ct, timeout=60)["StatusCode"] == 3
    module = registry.get(engine.name)
    assert isinstance(module, AttemptFence)
    spec = JobSpec(
        job_id=9, argv=("/bin/true",), env={}, workdir=tmp_path,
        app=AppInfo("demo", "/bin/true", engine.image), installation=ours, previous_attempt=7,
    )  # fmt: skip
    handed: list[tuple[RunResult, bool]] = []

    class Ending(Recorder):
        def ended(self, result: RunResult) -> None:  # journaled while the container exists
            handed.append((result, _gone(engine, ct)))

    assert module.clear_attempt(spec, Ending()) == Cleared((f"container {ct[:12]}",), 3)
    assert handed == [(RunResult(3), False)]
    assert _gone(engine, ct)


def test_the_guard_leaves_an_exited_container_for_its_exit_code(engine: Engine) -> None:
    """When its executor dies, the guard kills and removes the containers still running; one
    that had exited answers the kill 409 and stays, its exit code the job's result for the next
    executor to record (runner/engines.py)."""
    api = docker.DockerClient(base_url=engine.host).api
    labels = {LABEL_JOB: "1", LABEL_INSTALLATION: "guard-test"}
    running = _sleeper(engine, labels)
    exited = str(api.create_container(engine.image, command=["true"], labels=labels)["Id"])
    api.start(exited)
    api.wait(exited, timeout=60)
    guard.start()
    try:
        guard.watch_container(running, engine.host)
        guard.watch_container(exited, engine.host)
    finally:
        guard.stop()  # the pipe closes, as when the executor dies
    try:
        assert _gone(engine, running)
        assert not _gone(engine, exited)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(exited, force=True)
