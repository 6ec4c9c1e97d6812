"""The kubernetes and azure modules through the real runner path: an executor in this process
claims the job, resolves its environment, runs the module against the loopback fakes and
records status, output and artifacts (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time
from pathlib import Path

import pytest
from flask import Flask

from daemons.runtime import Runtime
from multiflexi_web.db.engine import begin_write
from multiflexi_web.extensions import db
from multiflexi_web.models import AppField, Job, JobStatus, RunTemplate, Worker, utcnow
from multiflexi_web.runner import engines
from multiflexi_web.runner.engines import EngineWatch
from multiflexi_web.services import installation
from multiflexi_web.services.jobs import artifacts
from multiflexi_web.services.jobs.adhoc import Upload, run_now
from multiflexi_web.services.runtemplates.configure import RunTemplateError, set_executor
from tests import fake_arm, fake_k8s
from tests.executor_support import drain, job, output_of, schedule
from tests.factories import make_app, make_company
from tests.fake_k8s import FakeKube, running, terminated
from tests.test_azure_executor import azure_env
from tests.test_kubernetes_executor import make_tar

SECRET = "runner-s3cr3t"
FIELDS = [
    {"keyname": "TOKEN", "type": "password", "default": SECRET},
    {"keyname": "GREETING", "type": "string", "default": "hello"},
]


def cloud_rt(executor: str, *, result_file: bool) -> RunTemplate:
    fields = list(FIELDS)
    if result_file:
        fields.append({"keyname": "RESULT_FILE", "type": "string", "default": "result.json"})
    app = make_app(
        executable="/app/run",
        ociimage="example.org/demo:1",
        fields=fields,
        artifacts=[{"name": "out", "path": r"out\.txt", "type": "file"}],
    )
    app.cmdparams = "--greet {GREETING}"
    rt = RunTemplate(
        company_id=make_company().id, application_id=app.id, name="cloud", executor=executor
    )
    db.session.add(rt)
    db.session.commit()
    return rt


def test_a_kubernetes_job_through_the_runner(
    app: Flask, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = FakeKube(
        status=lambda n: running() if n == 0 else terminated(3),
        log=lambda out: out.write(b"hello from the pod\n"),
        tar=make_tar({"./out.txt": b"kept", "./result.json": b'{"r": 1}', "./x.log": b"no"}),
    )
    with fake_k8s.serving(fake):
        monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path)))
        monkeypatch.setenv("MULTIFLEXI_K8S_POLL", "0.02")
        [job_id] = schedule(cloud_rt("kubernetes", result_file=True))
        drain(app)

    j = job(job_id)
    assert j.status == JobStatus.FAILED.value and j.exit_code == 3, j.status_reason
    assert j.status_reason == "exit code 3"
    assert output_of(job_id) == b"hello from the pod\n"
    kept = {a.filename: a.content for a in artifacts.list_for_job(db.session(), job_id)}
    assert kept == {
        "stdout.txt": b"hello from the pod\n",
        "out.txt": b"kept",
        "result.json": b'{"r": 1}',
    }
    pod = fake.one("POST pods").body
    main = pod["spec"]["containers"][0]
    assert main["command"] == ["/app/run", "--greet", "hello"]
    env = {e["name"]: e for e in main["env"]}
    assert env["RESULT_FILE"]["value"] == "/work/result.json"
    assert env["MULTIFLEXI_JOB_ID"]["value"] == str(job_id)
    assert "secretKeyRef" in env["TOKEN"]["valueFrom"] and SECRET not in json.dumps(pod)
    data = fake.one("POST secrets").body["data"]
    assert base64.b64decode(data["TOKEN"]).decode() == SECRET
    assert fake.objects == {}  # Pod and Secret deleted
    assert SECRET not in json.dumps(j.env)  # the recorded environment masks it


def test_a_kubernetes_job_gets_its_uploaded_file(
    app: Flask, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = FakeKube()
    with fake_k8s.serving(fake):
        monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path)))
        monkeypatch.setenv("MULTIFLEXI_K8S_POLL", "0.02")
        rt = cloud_rt("kubernetes", result_file=False)
        rt.application.fields.append(AppField(position=9, keyname="INPUT_FILE", type="file-path"))
        db.session.commit()
        job_id = run_now(rt, {}, [Upload("INPUT_FILE", "in.csv", b"a;b\n1;2\n")], None).id
        db.session.commit()
        drain(app)

    assert job(job_id).status == JobStatus.SUCCEEDED.value, job(job_id).status_reason
    main = fake.one("POST pods").body["spec"]["containers"][0]
    assert {"name": "INPUT_FILE", "value": "/work/in.csv"} in main["env"]
    [mount] = [m for m in main["volumeMounts"] if m["name"] == "inputs"]
    assert mount["mountPath"] == "/work/in.csv"
    data = fake.one("POST secrets").body["data"]
    assert base64.b64decode(data[mount["subPath"]]) == b"a;b\n1;2\n"
    assert fake.objects == {}


def test_an_azure_job_through_the_runner(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_arm.FakeArm(logs=lambda n: "hi from aci\n")
    with fake_arm.serving(fake):
        azure_env(monkeypatch, fake.url)
        [job_id] = schedule(cloud_rt("azure", result_file=False))
        drain(app)

    j = job(job_id)
    assert j.status == JobStatus.SUCCEEDED.value and j.exit_code == 0, j.status_reason
    assert output_of(job_id) == b"hi from aci\n"
    container = fake.one("PUT group").body["properties"]["containers"][0]["properties"]
    assert container["command"] == ["/app/run", "--greet", "hello"]
    env = {e["name"]: e for e in container["environmentVariables"]}
    assert env["TOKEN"] == {"name": "TOKEN", "secureValue": SECRET}
    assert env["MULTIFLEXI_JOB_ID"]["value"] == str(job_id)
    assert fake.kinds()[-1] == "DELETE group" and fake.groups == {}


def test_an_azure_job_needing_a_result_file_fails_clearly(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_arm.FakeArm()
    with fake_arm.serving(fake):
        azure_env(monkeypatch, fake.url)
        [job_id] = schedule(cloud_rt("azure", result_file=True))
        drain(app)
    j = job(job_id)
    assert j.status == JobStatus.FAILED.value and j.exit_code is None
    assert j.status_reason == (
        "azure: RESULT_FILE is not supported: Azure Container Instances cannot copy files out"
    )
    # Nothing made for it (the executor's engine watch only listed the resource group's groups).
    assert [c.kind for c in fake.calls if c.kind not in ("POST token", "GET groups")] == []


def test_saving_a_runtemplate_checks_the_module(
    app: Flask, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rt = cloud_rt("native", result_file=False)
    for key in ("AZURE_SUBSCRIPTION_ID", "KUBECONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MULTIFLEXI_ENV_FILE", "/nonexistent")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(
        RunTemplateError, match="executor 'azure': AZURE_SUBSCRIPTION_ID is not set"
    ):
        set_executor(rt, "azure")
    with pytest.raises(RunTemplateError, match="executor 'kubernetes': KUBECONFIG: no kubeconfig"):
        set_executor(rt, "kubernetes")
    monkeypatch.setenv("KUBECONFIG", str(FakeKube().kubeconfig(tmp_path)))
    set_executor(rt, "kubernetes")
    assert rt.executor == "kubernetes"
    rt.application.ociimage = None
    with pytest.raises(RunTemplateError, match=r"has no OCI image \(ociimage\)"):
        set_executor(rt, "kubernetes")


def _retry_with_leftover_pod(
    app: Flask,
    fake: FakeKube,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    pod_status: object,
    retry_executor: str = "kubernetes",
) -> tuple[int, int]:
    """A lost job whose Pod the fake still has (with `pod_status`), and its retry (of the
    template's module by then: `retry_executor`), drained."""
    rt = cloud_rt("kubernetes", result_file=False)
    [first] = schedule(rt)
    begin_write()
    previous = db.session.get(Job, first)
    assert previous is not None
    for status in (JobStatus.RUNNING, JobStatus.LOST):  # its executor was killed as its Pod ran
        previous.status = status.value
        db.session.commit()
    begin_write()
    rt.executor = retry_executor
    db.session.commit()
    [retry] = schedule(rt, retry_of=previous)
    labels = {
        "multiflexi.job": str(first),
        "multiflexi.installation": installation.uid(db.session()),
    }
    pod: dict[str, object] = {"metadata": {"name": f"mf-job-{first}-old", "labels": labels}}
    if pod_status is not None:
        pod["status"] = pod_status
    fake.objects[f"pods/mf-job-{first}-old"] = pod
    with fake_k8s.serving(fake):
        monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path)))
        monkeypatch.setenv("MULTIFLEXI_K8S_POLL", "0.02")
        monkeypatch.setenv("MULTIFLEXI_K8S_NAMESPACE", "default")
        drain(app)
    return first, retry


def test_a_kubernetes_retry_removes_its_previous_attempts_pod_before_its_own(
    app: Flask, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The previous attempt's Pod, left running by a killed executor, is deleted and gone before
    the retry's own Pod is created (the retry's fence lists until it is, whoever deleted it)."""
    fake = FakeKube(status=lambda n: terminated(0))
    first, retry = _retry_with_leftover_pod(app, fake, monkeypatch, tmp_path, running())

    j = job(retry)
    assert j.status == JobStatus.SUCCEEDED.value, j.status_reason
    # Deleted (by the fence, or by the executor's engine watch as it started: a running Pod
    # of a lost job) and gone before the retry's Pod is created: the fence lists until then.
    paths = [(c.kind, c.path) for c in fake.calls]
    old = ("DELETE pods", f"/api/v1/namespaces/default/pods/mf-job-{first}-old")
    created = next(i for i, (kind, _) in enumerate(paths) if kind == "POST pods")
    assert old in paths[:created], paths
    assert ("LIST pods", "/api/v1/namespaces/default/pods") in paths[:created]
    new_pod = fake.one("POST pods").body["metadata"]["labels"]
    ours = installation.uid(db.session())
    assert new_pod["multiflexi.job"] == str(retry) and new_pod["multiflexi.installation"] == ours
    assert f"pods/mf-job-{first}-old" not in fake.objects


def test_a_kubernetes_retry_whose_previous_pod_had_ended_records_it_without_running(
    app: Flask, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The previous attempt's job container had ended (exit 4) when its executor died, which
    reaped the job as lost: its work was done. The retry records that exit code and creates no
    Pod: the work is not done twice."""
    fake = FakeKube()
    first, retry = _retry_with_leftover_pod(app, fake, monkeypatch, tmp_path, terminated(4))

    j = job(retry)
    assert (j.status, j.exit_code) == (JobStatus.FAILED.value, 4), j.status_reason
    assert "POST pods" not in fake.kinds() and fake.objects == {}
    stderr = output_of(retry, "stderr").decode()
    assert f"job {first}'s container had ended with exit code 4" in stderr
    assert "not run again" in stderr


def test_a_retry_fences_with_the_module_its_previous_attempt_ran_with(
    app: Flask, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The template moved from kubernetes to native between the attempts: the native retry's
    fence still asks the kubernetes module, which finds the old Pod ended (exit 4), so the
    retry records that and runs nothing."""
    fake = FakeKube()
    first, retry = _retry_with_leftover_pod(
        app, fake, monkeypatch, tmp_path, terminated(4), retry_executor="native"
    )
    j = job(retry)
    assert j.executor == "native"
    assert (j.status, j.exit_code) == (JobStatus.FAILED.value, 4), j.status_reason
    assert "POST pods" not in fake.kinds() and fake.objects == {}
    assert (
        f"job {first}'s container had ended with exit code 4" in output_of(retry, "stderr").decode()
    )


def _running_under_a_dead_executor(rt: RunTemplate) -> int:
    """A job its executor (a stopped worker row) left running."""
    begin_write()
    dead = Worker(kind="executor", hostname="gone", pid=1, status="stopped", stopped_at=utcnow())
    db.session.add(dead)
    db.session.commit()
    [job_id] = schedule(rt)
    begin_write()
    j = db.session.get(Job, job_id)
    assert j is not None
    j.status, j.worker_id = JobStatus.RUNNING.value, dead.id
    j.claimed_at = j.started_at = j.heartbeat_at = utcnow()
    db.session.commit()
    return job_id


def _ended_pod(fake: FakeKube, job_id: int, worker_id: int | None) -> str:
    """The Pod a dead executor left of the job, its job container ended with exit 0, and its
    Secret; the Pod's name."""
    labels = {"multiflexi.job": str(job_id), "multiflexi.worker": str(worker_id or ""),
              "multiflexi.installation": installation.uid(db.session())}  # fmt: skip
    name = f"mf-job-{job_id}-old"
    fake.objects[f"pods/{name}"] = {
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "status": terminated(0),
    }
    fake.objects[f"secrets/{name}"] = {"metadata": {"name": name, "labels": labels}}
    return name


def _watch_once(
    app: Flask, fake: FakeKube, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> list[str]:
    """One pass of a new executor's engine watch against the fake cluster."""
    with fake_k8s.serving(fake):
        monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path)))
        monkeypatch.setenv("MULTIFLEXI_K8S_NAMESPACE", "default")
        return EngineWatch(_registered(app), set, 1.0).tick()


def test_the_engine_watch_records_a_finished_pod_and_removes_it_with_its_secret(
    app: Flask, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Its executor died after the Pod's job container ended, before journaling the exit:
    an executor's engine watch records the job from the Pod's exit code (not lost, not run
    again) and deletes the Pod and its Secret, which Kubernetes would keep."""
    job_id = _running_under_a_dead_executor(cloud_rt("kubernetes", result_file=False))
    fake = FakeKube()
    name = _ended_pod(fake, job_id, job(job_id).worker_id)

    assert _watch_once(app, fake, monkeypatch, tmp_path) == [f"default/{name}"]
    j = job(job_id)
    assert (j.status, j.exit_code) == (JobStatus.SUCCEEDED.value, 0)
    assert fake.objects == {}


def test_the_engine_watch_leaves_a_finished_pod_to_the_retry_of_its_lost_job(
    app: Flask, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The reaper called the job lost before the Pod's exit code was read, and its retry waits:
    the Pod stays for that retry's fence, which records its exit code instead of running."""
    rt = cloud_rt("kubernetes", result_file=False)
    job_id = _running_under_a_dead_executor(rt)
    begin_write()
    lost = db.session.get(Job, job_id)
    assert lost is not None
    lost.status = JobStatus.LOST.value
    db.session.commit()
    schedule(rt, retry_of=lost)
    fake = FakeKube()
    name = _ended_pod(fake, job_id, lost.worker_id)

    assert _watch_once(app, fake, monkeypatch, tmp_path) == []
    assert sorted(fake.objects) == [f"pods/{name}", f"secrets/{name}"]


def _registered(app: Flask) -> Runtime:
    db.session.commit()
    rt = Runtime("executor", app)
    rt.register()
    return rt


def test_the_engine_watch_records_a_finished_azure_group_and_deletes_it(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for Pods: the group of a job under a dead executor, its container terminated (exit 3),
    has the job recorded from that code, then is deleted."""
    job_id = _running_under_a_dead_executor(cloud_rt("azure", result_file=False))
    fake = fake_arm.FakeArm(state=lambda n: ("Terminated", 3, "Succeeded"))
    tags = {"multiflexi.job": str(job_id), "multiflexi.worker": str(job(job_id).worker_id),
            "multiflexi.installation": installation.uid(db.session())}  # fmt: skip
    name = f"mf-job-{job_id}-old"
    container = {"name": "job", "properties": {"image": "example.org/demo:1",
                 "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}}}}  # fmt: skip
    fake.groups[name] = {"name": name, "location": "westeurope", "tags": tags,
                         "properties": {"containers": [container], "osType": "Linux"}}  # fmt: skip
    with fake_arm.serving(fake):
        azure_env(monkeypatch, fake.url)
        assert EngineWatch(_registered(app), set, 1.0).tick() == [name]
    j = job(job_id)
    assert (j.status, j.exit_code) == (JobStatus.FAILED.value, 3)
    assert fake.groups == {}


def _unreachable_url() -> str:
    """A loopback address where nothing listens (a port just bound and closed again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_an_unreachable_entra_id_is_an_azure_error_the_sweep_survives(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The token request could not connect: requests' ConnectionError escaped the Azure sweep
    and ended the engine watch's thread for good (seen in a full test run). It is an
    AzureError now: the pass logs it and finds nothing (the next test: the watch goes on)."""
    from azure.core.exceptions import AzureError

    from multiflexi_web.executors.azure_auth import ClientSecretToken

    url = _unreachable_url()
    token = ClientSecretToken("tenant-1", "client-1", "client-secret", url)
    with pytest.raises(AzureError, match="Azure token request failed"):
        token.get_token("https://management.azure.com/.default")
    azure_env(monkeypatch, url)
    watch = EngineWatch(_registered(app), set, 1.0)
    with caplog.at_level(logging.WARNING):  # one pass: the SDK retries the call for ~5 s
        assert watch.tick() == []
    assert "aci_leftovers_failed" in caplog.text and "client-secret" not in caplog.text


def test_a_module_failing_its_sweep_does_not_end_the_engine_watch(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def leftovers(self, installation: str) -> list[object]:
            raise RuntimeError("the engine answered nonsense")

    monkeypatch.setattr(engines.registry, "engine_modules", lambda: [Broken()])
    closed = threading.Event()
    watch = EngineWatch(_registered(app), set, 0.01)
    with caplog.at_level(logging.WARNING):
        thread = watch.start(closed)
        try:
            for _ in range(2000):  # two failed passes, each logged
                if caplog.text.count("action=engines_failed") >= 2:
                    break
                time.sleep(0.01)
            assert thread.is_alive()
        finally:
            closed.set()
            thread.join(10)
    assert "error=RuntimeError:the_engine_answered_nonsense" in caplog.text
