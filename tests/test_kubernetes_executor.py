"""The kubernetes module against a loopback API server (tests/fake_k8s.py): the exact requests."""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from multiflexi_web.executors.base import AppInfo, AttemptGone, Cleared, JobSpec, RunResult
from multiflexi_web.executors.kubernetes import KubernetesExecutor
from tests import fake_k8s
from tests.fake_k8s import FakeKube, pending, running, terminated, unschedulable
from tests.test_native import RecordingIO

SECRET = "s3cr3t-value"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.startswith(("MULTIFLEXI_K8S_", "KUBERNETES_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("MULTIFLEXI_ENV_FILE", "/nonexistent")
    monkeypatch.setenv("MULTIFLEXI_LOCAL_ENV", "/nonexistent")
    monkeypatch.setenv("MULTIFLEXI_K8S_NAMESPACE", "jobs")
    monkeypatch.setenv("MULTIFLEXI_K8S_POLL", "0.02")
    return monkeypatch


@pytest.fixture
def kube(env: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeKube]:
    fake = FakeKube()
    with fake_k8s.serving(fake):
        env.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path)))
        yield fake


def make_tar(files: dict[str, bytes], link: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o666
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return buf.getvalue()


def spec(workdir: Path, **kw: Any) -> JobSpec:
    workdir.mkdir(exist_ok=True)
    env = {
        "PLAIN": "visible",
        "TOKEN": SECRET,
        "PATH": os.environ["PATH"],
        "MULTIFLEXI_TMP": str(workdir),
        "RESULT_FILE": str(workdir / "result.json"),
    }
    values: dict[str, Any] = {
        "job_id": 42,
        "argv": ("/app/run", "--flag", "a b"),
        "env": env,
        "workdir": workdir,
        "app": AppInfo("demo", "/app/run", "example.org/demo:1"),
        "secret_keys": frozenset({"TOKEN"}),
        "kill_grace": 2.0,
    }
    values.update(kw)
    return JobSpec(**values)


def run(job: JobSpec, io_: RecordingIO | None = None) -> tuple[RunResult, RecordingIO]:
    io_ = io_ or RecordingIO()
    return KubernetesExecutor().run(job, io_), io_


def test_a_job_runs_as_a_pod_with_its_secrets_in_a_secret(kube: FakeKube, tmp_path: Path) -> None:
    kube.status = lambda n: [pending(), running()][n] if n < 2 else terminated(3)
    kube.log = lambda out: out.write(b"hello from the pod\n")
    kube.tar = make_tar(
        {"./result.json": b'{"ok": 1}', "./sub/out.txt": b"data", "../evil": b"x"}, "./link"
    )
    workdir = tmp_path / "job-42"
    result, rec = run(spec(workdir))

    assert result == RunResult(3)
    assert rec.text() == b"hello from the pod\n"
    assert kube.kinds(without="GET log") == [
        "POST secrets", "POST pods", "GET pods", "GET exec", "DELETE pods", "DELETE secrets",
    ]  # fmt: skip
    secret = kube.one("POST secrets")
    assert secret.path == "/api/v1/namespaces/jobs/secrets"
    assert base64.b64decode(secret.body["data"]["TOKEN"]).decode() == SECRET
    assert set(secret.body["data"]) == {"TOKEN"}
    pod = kube.one("POST pods").body
    assert SECRET not in json.dumps(pod)
    name = pod["metadata"]["name"]
    assert name.startswith("mf-job-42-") and secret.body["metadata"]["name"] == name
    assert pod["metadata"]["labels"]["multiflexi.job"] == "42"
    assert secret.body["metadata"]["labels"]["multiflexi.job"] == "42"
    spec_ = pod["spec"]
    assert spec_["restartPolicy"] == "Never"
    assert spec_["automountServiceAccountToken"] is False
    assert spec_["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    main, keeper = spec_["containers"]
    assert main["image"] == keeper["image"] == "example.org/demo:1"
    assert main["command"] == ["/app/run", "--flag", "a b"]
    assert keeper["command"][0] == "sleep"
    assert (
        main["volumeMounts"] == keeper["volumeMounts"] == [{"name": "work", "mountPath": "/work"}]
    )
    for c in (main, keeper):
        assert c["securityContext"] == {"allowPrivilegeEscalation": False}
    env = {e["name"]: e for e in main["env"]}
    assert env["TOKEN"] == {
        "name": "TOKEN",
        "valueFrom": {"secretKeyRef": {"name": name, "key": "TOKEN"}},
    }
    assert env["PLAIN"] == {"name": "PLAIN", "value": "visible"}
    assert env["MULTIFLEXI_TMP"]["value"] == "/work"
    assert env["RESULT_FILE"]["value"] == "/work/result.json"
    assert "PATH" not in env  # the daemon's PATH would break the image's
    ex = kube.one("GET exec")
    assert ex.query["command"] == ["tar", "cf", "-", "-C", "/work", "."]
    assert ex.query["container"] == ["keeper"]
    assert kube.one("GET log").query["follow"] == ["true"]
    assert kube.one("GET log").query["container"] == ["job"]
    assert all(c.headers["authorization"] == f"Bearer {fake_k8s.TOKEN}" for c in kube.calls)
    assert (workdir / "result.json").read_bytes() == b'{"ok": 1}'
    assert (workdir / "sub" / "out.txt").read_bytes() == b"data"
    assert (workdir / "sub" / "out.txt").stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "evil").exists() and not (workdir / "link").exists()
    assert kube.objects == {}


def test_a_job_without_secrets_creates_no_secret(kube: FakeKube, tmp_path: Path) -> None:
    result, _ = run(spec(tmp_path / "w", secret_keys=frozenset()))
    assert result == RunResult(0)
    assert kube.kinds() == ["POST pods", "GET pods", "GET log", "GET exec", "DELETE pods"]
    env = {e["name"]: e for e in kube.one("POST pods").body["spec"]["containers"][0]["env"]}
    assert env["TOKEN"] == {"name": "TOKEN", "value": SECRET}  # not declared secret


def test_output_arrives_while_the_pod_runs(kube: FakeKube, tmp_path: Path) -> None:
    seen = threading.Event()

    class Watching(RecordingIO):
        def output(self, stream: str, data: bytes) -> None:
            super().output(stream, data)
            seen.set()

    def log(out: BinaryIO) -> None:
        out.write(b"first\n")
        out.flush()
        seen.wait(30)  # the second line only once the module has handed on the first
        out.write(b"second\n")

    # The Pod runs until the module has handed on the first line: a module that read the log
    # only after the end would time out here (the timeout only bounds a broken module).
    kube.status = lambda n: terminated(0) if seen.is_set() else running()
    kube.log = log
    result, rec = run(spec(tmp_path / "w", timeout=60), Watching())
    assert result == RunResult(0)
    assert rec.text() == b"first\nsecond\n"


def blocking_log(kube: FakeKube) -> None:
    def log(out: BinaryIO) -> None:
        out.write(b"working\n")
        out.flush()
        kube.pod_deleted.wait(30)

    kube.log = log


def test_timeout_deletes_the_pod_and_the_secret(kube: FakeKube, tmp_path: Path) -> None:
    kube.status = lambda n: running()
    blocking_log(kube)
    result, _ = run(spec(tmp_path / "w", timeout=0.3))
    assert result.timed_out and result.exit_code is None
    deletes = [c for c in kube.calls if c.method == "DELETE"]
    assert [c.kind for c in deletes] == ["DELETE pods", "DELETE secrets"]
    assert deletes[0].query["gracePeriodSeconds"] == ["2"]
    assert "GET exec" not in kube.kinds() and kube.objects == {}


def test_cancel_deletes_the_pod_and_the_secret(kube: FakeKube, tmp_path: Path) -> None:
    class Cancelling(RecordingIO):
        def should_stop(self) -> bool:
            return bool(self.chunks)  # the cancel comes once the job has printed something

    kube.status = lambda n: running()
    blocking_log(kube)
    result, rec = run(spec(tmp_path / "w"), Cancelling())
    assert result.cancelled and not result.timed_out
    assert rec.text() == b"working\n"
    assert kube.kinds()[-2:] == ["DELETE pods", "DELETE secrets"]
    assert kube.objects == {}


def test_cancel_while_the_files_are_copied_stops_the_copy(kube: FakeKube, tmp_path: Path) -> None:
    class CancelAtCopy(RecordingIO):
        def should_stop(self) -> bool:  # asked between reads of the copy: also the heartbeat
            return "GET exec" in kube.kinds()

    kube.tar = make_tar({"./out.txt": b"x" * 200_000})
    result, _ = run(spec(tmp_path / "w"), CancelAtCopy())
    assert result.cancelled and result.exit_code is None
    assert not (tmp_path / "w" / "out.txt").exists()
    assert kube.kinds()[-2:] == ["DELETE pods", "DELETE secrets"] and kube.objects == {}


def test_an_unschedulable_pod_fails_with_the_reason(
    kube: FakeKube, env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("MULTIFLEXI_K8S_START_TIMEOUT", "0.2")
    kube.status = lambda n: unschedulable("0/3 nodes are available: 3 Insufficient memory.")
    result, _ = run(spec(tmp_path / "w"))
    assert result.exit_code is None and result.error is not None
    assert "unschedulable: 0/3 nodes are available: 3 Insufficient memory." in result.error
    assert kube.kinds()[-2:] == ["DELETE pods", "DELETE secrets"] and kube.objects == {}


def test_an_image_that_cannot_be_pulled_fails_after_the_start_wait(
    kube: FakeKube, env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("MULTIFLEXI_K8S_START_TIMEOUT", "0.2")
    kube.status = lambda n: pending("ImagePullBackOff", 'Back-off pulling image "x"')
    result, _ = run(spec(tmp_path / "w"))
    assert result.error is not None
    assert 'container job: ImagePullBackOff: Back-off pulling image "x"' in result.error
    assert kube.objects == {}


def test_an_invalid_image_fails_without_waiting(
    kube: FakeKube, env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("MULTIFLEXI_K8S_START_TIMEOUT", "3600")
    kube.status = lambda n: pending("InvalidImageName", "bad")
    result, _ = run(spec(tmp_path / "w"))
    assert result.error is not None and "InvalidImageName" in result.error
    assert kube.objects == {}


def test_a_brief_api_outage_does_not_fail_the_job(kube: FakeKube, tmp_path: Path) -> None:
    kube.blips = 3
    kube.status = lambda n: terminated(5)
    result, _ = run(spec(tmp_path / "w"))
    assert result == RunResult(5)
    assert [c.kind for c in kube.calls].count("GET pods") == 4 and kube.objects == {}


def test_an_unreachable_api_is_a_clear_error(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = FakeKube()
    env.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path)))  # port 0: nothing answers
    result, _ = run(spec(tmp_path / "w", secret_keys=frozenset()))
    assert result.error is not None
    assert result.error.startswith("kubernetes API unreachable:"), result.error


def test_a_refused_pod_still_deletes_the_secret(kube: FakeKube, tmp_path: Path) -> None:
    kube.fail["POST pods"] = 403
    result, _ = run(spec(tmp_path / "w"))
    assert result.error == "kubernetes API: 403 denied by test"
    assert kube.kinds() == ["POST secrets", "POST pods", "DELETE pods", "DELETE secrets"]
    assert kube.objects == {}


def test_a_failed_copy_fails_the_job_and_still_cleans_up(kube: FakeKube, tmp_path: Path) -> None:
    kube.exec_ok = False
    result, _ = run(spec(tmp_path / "w"))
    assert result.exit_code == 0 and result.error is not None
    assert "tar in the keeper container exited 2: tar: /work: No such file" in result.error
    assert kube.objects == {}


def test_an_exec_stream_without_a_status_fails_the_job_clearly(
    kube: FakeKube, tmp_path: Path
) -> None:
    kube.exec_drops = True
    result, _ = run(spec(tmp_path / "w"))
    assert result.exit_code == 0 and result.error == (
        "result files could not be copied out: the exec stream ended without tar's exit status"
    )
    assert kube.objects == {}


def test_result_files_past_the_cap_fail_the_job(
    kube: FakeKube, env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("MULTIFLEXI_K8S_COPY_MAX_MB", "1")
    kube.tar = make_tar({"./big.bin": os.urandom(1536 * 1024)})
    result, _ = run(spec(tmp_path / "w"))
    assert result.exit_code == 0 and result.error == (
        "result files could not be copied out: the result files pass 1 MiB "
        "(MULTIFLEXI_K8S_COPY_MAX_MB)"
    )
    assert not (tmp_path / "w" / "big.bin").exists() and kube.objects == {}


def test_input_files_travel_in_the_secret_and_are_mounted_under_work(
    kube: FakeKube, tmp_path: Path
) -> None:
    workdir = tmp_path / "w"
    (workdir / "FIELD").mkdir(parents=True)
    (workdir / "upload.csv").write_bytes(b"a;b\n\x00\xff")
    (workdir / "FIELD" / "upload.csv").write_bytes(b"second")
    job = spec(workdir)
    env = {**job.env, "INPUT": str(workdir / "upload.csv")}
    result, _ = run(spec(workdir, env=env, secret_keys=frozenset()))
    assert result == RunResult(0)
    data = kube.one("POST secrets").body["data"]
    assert {k: base64.b64decode(v) for k, v in data.items()} == {
        "multiflexi-input-0": b"second",
        "multiflexi-input-1": b"a;b\n\x00\xff",
    }
    pod = kube.one("POST pods").body
    main = pod["spec"]["containers"][0]
    assert main["volumeMounts"][1:] == [
        {"name": "inputs", "mountPath": "/work/FIELD/upload.csv",
         "subPath": "multiflexi-input-0", "readOnly": True},
        {"name": "inputs", "mountPath": "/work/upload.csv",
         "subPath": "multiflexi-input-1", "readOnly": True},
    ]  # fmt: skip
    name = pod["metadata"]["name"]
    assert pod["spec"]["volumes"][1] == {
        "name": "inputs",
        "secret": {"secretName": name, "defaultMode": 0o444},
    }
    assert {"name": "INPUT", "value": "/work/upload.csv"} in main["env"]
    assert kube.objects == {}


def test_input_files_too_big_for_a_secret_are_refused_before_anything_is_created(
    kube: FakeKube, tmp_path: Path
) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "upload.bin").write_bytes(b"x" * (600 * 1024))
    result, _ = run(spec(tmp_path / "w"))
    assert result.error == ("kubernetes: input files of 600 KiB pass the 512 KiB a Secret holds")
    assert kube.calls == []


def test_the_apps_kubernetes_block_gives_namespace_image_and_resources(
    kube: FakeKube, tmp_path: Path
) -> None:
    block = {
        "image": "example.org/other:2",
        "resources": {"limits": {"memory": "64Mi"}},
        "helm": {"enabled": True, "chart": "oci://charts/demo", "namespace": "demo-ns"},
    }
    app = AppInfo("demo", "/app/run", "example.org/demo:1", block)
    result, rec = run(spec(tmp_path / "w", app=app))
    assert result == RunResult(0)
    create = kube.one("POST pods")
    assert create.path == "/api/v1/namespaces/demo-ns/pods"
    main = create.body["spec"]["containers"][0]
    assert main["image"] == "example.org/other:2"
    assert main["resources"] == {"limits": {"memory": "64Mi"}}
    assert b"helm chart oci://charts/demo is not deployed" in rec.text("stderr")


def test_unusable_reason(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    module = KubernetesExecutor()
    env.setenv("KUBECONFIG", str(tmp_path / "absent"))
    env.setenv("HOME", str(tmp_path))
    with_image = AppInfo("a", "x", "img:1")
    assert module.unusable_reason(AppInfo("a", "x", None)) == (
        "the application has no OCI image (ociimage)"
    )
    reason = module.unusable_reason(with_image)
    assert reason is not None and reason.startswith("KUBECONFIG: no kubeconfig at")
    env.setenv("KUBECONFIG", str(FakeKube().kubeconfig(tmp_path)))
    assert module.unusable_reason(with_image) is None
    bad_ns = AppInfo("a", "x", "img:1", {"namespace": "Not_A_Label"})
    assert module.unusable_reason(bad_ns) == (
        "kubernetes.namespace 'Not_A_Label' is not a DNS-1123 label"
    )
    env.setenv("MULTIFLEXI_K8S_START_TIMEOUT", "soon")
    assert module.unusable_reason(with_image) == (
        "MULTIFLEXI_K8S_START_TIMEOUT: expected a positive number of seconds, got 'soon'"
    )


def test_unpacking_keeps_to_the_work_directory_on_any_python(tmp_path: Path) -> None:
    """By hand, not tarfile's filters (absent from Debian 12's Python 3.11.2)."""
    import io
    import tarfile

    from multiflexi_web.executors.k8s_files import _unpack

    outside, workdir = tmp_path / "outside", tmp_path / "work"
    outside.mkdir()
    workdir.mkdir()
    (workdir / "escape").symlink_to(outside)  # a link the job left in its work directory
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("ok/a.txt", "/etc/abs.txt", "../up.txt", "escape/x.txt", "./b.txt"):
            info = tarfile.TarInfo(name)
            info.size, info.mode = 2, 0o777
            tar.addfile(info, io.BytesIO(b"hi"))
    buf.seek(0)
    _unpack(buf, workdir)
    assert (workdir / "ok" / "a.txt").read_bytes() == b"hi" and (workdir / "b.txt").exists()
    assert (workdir / "b.txt").stat().st_mode & 0o777 == 0o600
    assert list(outside.iterdir()) == [] and not (tmp_path / "up.txt").exists()
    assert not (workdir / "etc").exists()


def _pod(name: str, job_id: int, installation: str) -> dict[str, Any]:
    labels = {"multiflexi.job": str(job_id), "multiflexi.installation": installation}
    return {"metadata": {"name": name, "namespace": "jobs", "labels": labels}}


def test_a_retry_deletes_its_previous_attempts_pod_and_waits_until_it_is_gone(
    kube: FakeKube, tmp_path: Path
) -> None:
    """A killed executor leaves its Pod running (nothing in Kubernetes ends it): before the
    retry starts, the previous attempt's Pod is deleted with the kill grace and the module waits
    until the API no longer lists it; then its Secret goes. Another installation's Pod of the
    same job id and this installation's Pod of another job stay."""
    kube.objects.update({
        "pods/mf-job-7-aaa": _pod("mf-job-7-aaa", 7, "ours"),
        "secrets/mf-job-7-aaa": _pod("mf-job-7-aaa", 7, "ours"),
        "pods/mf-job-7-bbb": _pod("mf-job-7-bbb", 7, "staging"),
        "pods/mf-job-8-ccc": _pod("mf-job-8-ccc", 8, "ours"),
    })  # fmt: skip
    kube.lingering = 1  # the kubelet takes a moment: listed once more after the delete
    job = spec(tmp_path / "job-9", job_id=9, installation="ours", previous_attempt=7)

    assert KubernetesExecutor().clear_attempt(job, RecordingIO()) == Cleared(
        ("pod jobs/mf-job-7-aaa",), None
    )

    assert kube.kinds() == [
        "LIST pods", "DELETE pods", "LIST pods", "LIST pods", "LIST secrets", "DELETE secrets",
    ]  # fmt: skip
    selector = "multiflexi.job=7,multiflexi.installation=ours"
    lists = [c for c in kube.calls if c.kind.startswith("LIST")]
    assert all(c.query["labelSelector"] == [selector] for c in lists)
    delete = kube.one("DELETE pods")
    assert delete.path == "/api/v1/namespaces/jobs/pods/mf-job-7-aaa"
    assert delete.query["gracePeriodSeconds"] == ["2"]  # the kill grace: TERM, then KILL
    assert sorted(kube.objects) == ["pods/mf-job-7-bbb", "pods/mf-job-8-ccc"]


def test_a_retry_does_not_start_when_its_previous_attempt_cannot_be_checked(
    kube: FakeKube, tmp_path: Path
) -> None:
    kube.fail = {"LIST pods": 403}
    job = spec(tmp_path / "job-9", job_id=9, installation="ours", previous_attempt=7)
    with pytest.raises(AttemptGone, match="kubernetes API: 403 denied by test"):
        KubernetesExecutor().clear_attempt(job, RecordingIO())


def test_the_pod_and_secret_carry_the_installation(kube: FakeKube, tmp_path: Path) -> None:
    run(spec(tmp_path / "job-42", installation="ours"))
    for kind in ("POST pods", "POST secrets"):
        labels = kube.one(kind).body["metadata"]["labels"]
        assert labels["multiflexi.job"] == "42" and labels["multiflexi.installation"] == "ours"


def test_a_previous_attempt_whose_job_container_had_ended_gives_its_exit_code(
    kube: FakeKube, tmp_path: Path
) -> None:
    """Its executor died after the job container ended: the work was done. The Pod is removed
    all the same, and its exit code comes back for the retry to record instead of running."""
    kube.objects["pods/mf-job-7-aaa"] = {**_pod("mf-job-7-aaa", 7, "ours"), "status": terminated(0)}
    job = spec(tmp_path / "job-9", job_id=9, installation="ours", previous_attempt=7)
    handed: list[tuple[RunResult, list[str]]] = []

    class Ending(RecordingIO):
        def ended(self, result: RunResult) -> None:  # journaled while the Pod still exists
            handed.append((result, [c.kind for c in kube.calls if c.method == "DELETE"]))

    io_ = Ending()
    assert KubernetesExecutor().clear_attempt(job, io_) == Cleared(("pod jobs/mf-job-7-aaa",), 0)
    assert handed == [(RunResult(0), [])]
    assert b"job 7's container had ended with exit code 0" in io_.text("stderr")
    assert kube.objects == {}


def test_the_exit_is_handed_over_before_the_pod_is_deleted(kube: FakeKube, tmp_path: Path) -> None:
    """JobIO.ended() comes while the Pod still exists: a killed executor leaves the Pod's exit
    code for the retry's fence to record (clear_attempt), never a job with neither."""
    kube.log = lambda out: out.write(b"done\n")
    seen: list[tuple[int | None, list[str], bytes]] = []

    class Ending(RecordingIO):
        def ended(self, result: RunResult) -> None:
            seen.append((result.exit_code, [c.kind for c in kube.calls if c.method == "DELETE"],
                         self.text()))  # fmt: skip

    result, _ = run(spec(tmp_path / "job-42"), Ending())
    assert result == RunResult(0)
    assert seen == [(0, [], b"done\n")]  # output drained first, nothing deleted yet
    assert kube.kinds()[-2:] == ["DELETE pods", "DELETE secrets"]


def test_leftovers_are_this_installations_pods_with_their_exit_codes(
    kube: FakeKube, tmp_path: Path
) -> None:
    def pod(name: str, job: str, installation: str, status: dict[str, Any] | None) -> None:
        labels = {"multiflexi.job": job, "multiflexi.worker": "3",
                  "multiflexi.installation": installation}  # fmt: skip
        obj: dict[str, Any] = {"metadata": {"name": name, "namespace": "jobs", "labels": labels}}
        if status is not None:
            obj["status"] = status
        kube.objects[f"pods/{name}"] = obj

    pod("mf-job-5-a", "5", "ours", terminated(2))
    pod("mf-job-6-b", "6", "ours", running())
    pod("mf-job-5-c", "5", "staging", terminated(0))
    module = KubernetesExecutor()

    found = sorted(module.leftovers("ours"), key=lambda lo: lo.job_id)

    assert [(lo.ref, lo.job_id, lo.worker_id, lo.exit_code) for lo in found] == [
        ("jobs/mf-job-5-a", 5, 3, 2),
        ("jobs/mf-job-6-b", 6, 3, None),
    ]
    listed = kube.one("LIST pods")
    assert listed.path == "/api/v1/namespaces/jobs/pods"
    assert listed.query["labelSelector"] == ["multiflexi.installation=ours"]
    kube.objects["secrets/mf-job-5-a"] = {"metadata": {"name": "mf-job-5-a"}}
    module.remove_leftover("jobs/mf-job-5-a")
    assert sorted(kube.objects) == ["pods/mf-job-5-c", "pods/mf-job-6-b"]


def test_no_cluster_configured_lists_nothing_and_loads_no_client(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("KUBECONFIG", str(tmp_path / "absent"))
    env.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    module = KubernetesExecutor()
    assert module.engine_problem() == (
        f"KUBECONFIG: no kubeconfig at {tmp_path / 'absent'} and not inside a cluster"
    )
    assert module.leftovers("ours") == []
