"""The azure module against a loopback ARM and token server (tests/fake_arm.py): exact requests."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multiflexi_web.executors.azure import AzureExecutor
from multiflexi_web.executors.base import AppInfo, AttemptGone, Cleared, JobSpec, RunResult
from tests import fake_arm
from tests.fake_arm import FakeArm
from tests.test_native import RecordingIO

SECRET = "s3cr3t-value"
GROUPS = "/subscriptions/sub-1/resourceGroups/rg-jobs/providers/Microsoft.ContainerInstance"


def azure_env(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    for key in list(os.environ):
        if key.startswith(("MULTIFLEXI_AZURE_", "AZURE_")):
            monkeypatch.delenv(key)
    values = {
        "MULTIFLEXI_ENV_FILE": "/nonexistent",
        "MULTIFLEXI_LOCAL_ENV": "/nonexistent",
        "AZURE_SUBSCRIPTION_ID": "sub-1",
        "MULTIFLEXI_AZURE_RESOURCE_GROUP": "rg-jobs",
        "MULTIFLEXI_AZURE_LOCATION": "northeurope",
        "MULTIFLEXI_AZURE_BASE_URL": url,
        "MULTIFLEXI_AZURE_POLL": "0.02",
        "AZURE_TENANT_ID": "tenant-1",
        "AZURE_CLIENT_ID": "client-1",
        "AZURE_CLIENT_SECRET": "client-secret",
        "AZURE_AUTHORITY_HOST": url,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def arm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeArm]:
    fake = FakeArm()
    with fake_arm.serving(fake):
        azure_env(monkeypatch, fake.url)
        yield fake


def spec(workdir: Path, **kw: Any) -> JobSpec:
    workdir.mkdir(exist_ok=True)
    env = {"PLAIN": "visible", "TOKEN": SECRET, "PATH": os.environ["PATH"]}
    env["MULTIFLEXI_TMP"] = str(workdir)
    values: dict[str, Any] = {
        "job_id": 7,
        "argv": ("/app/run", "a b"),
        "env": env,
        "workdir": workdir,
        "app": AppInfo("demo", "/app/run", "example.org/demo:1"),
        "secret_keys": frozenset({"TOKEN"}),
    }
    values.update(kw)
    return JobSpec(**values)


def run(job: JobSpec, io_: RecordingIO | None = None) -> tuple[RunResult, RecordingIO]:
    io_ = io_ or RecordingIO()
    return AzureExecutor().run(job, io_), io_


def test_a_job_runs_as_a_container_group(arm: FakeArm, tmp_path: Path) -> None:
    script = [("Waiting", None, "Pending"), ("Running", None, "Running")]
    arm.state = lambda n: script[n] if n < 2 else ("Terminated", 3, "Succeeded")
    arm.logs = lambda n: "line1\n" if n == 0 else "line1\nline2\n"
    result, rec = run(spec(tmp_path / "w", installation="ours"))

    assert result == RunResult(3)  # the container's exit code, from its instance view
    assert rec.text() == b"line1\nline2\n"
    assert arm.kinds() == [
        "POST token", "PUT group", "GET group", "GET logs", "GET group", "GET logs",
        "DELETE group",
    ]  # fmt: skip
    token = arm.one("POST token")
    assert token.path == "/tenant-1/oauth2/v2.0/token"
    assert token.body["grant_type"] == ["client_credentials"]
    assert token.body["client_secret"] == ["client-secret"]
    assert token.body["scope"] == ["https://management.azure.com/.default"]
    put = arm.one("PUT group")
    assert put.path.startswith(f"{GROUPS}/containerGroups/mf-job-7-")
    body = put.body
    assert body["location"] == "northeurope"
    assert body["tags"] == {
        "multiflexi.job": "7",
        "multiflexi.worker": "",
        "multiflexi.installation": "ours",
    }
    props = body["properties"]
    assert props["restartPolicy"] == "Never" and props["osType"] == "Linux"
    container = props["containers"][0]["properties"]
    assert container["image"] == "example.org/demo:1"
    assert container["command"] == ["/app/run", "a b"]
    env = {e["name"]: e for e in container["environmentVariables"]}
    assert env["TOKEN"] == {"name": "TOKEN", "secureValue": SECRET}
    assert env["PLAIN"] == {"name": "PLAIN", "value": "visible"}
    assert env["MULTIFLEXI_TMP"]["value"] == "/tmp" and "PATH" not in env
    assert json.dumps(body).count(SECRET) == 1  # only as the secure value
    arm_calls = [c for c in arm.calls if c.kind != "POST token"]
    assert all(c.headers["authorization"] == f"Bearer {fake_arm.TOKEN}" for c in arm_calls)
    assert arm.one("DELETE group").path == put.path and arm.groups == {}


def test_provisioning_is_waited_for_and_heard_stop_requests(arm: FakeArm, tmp_path: Path) -> None:
    class Counting(RecordingIO):
        asked = 0

        def should_stop(self) -> bool:
            self.asked += 1
            return False

    arm.provisioning = ["InProgress", "InProgress", "Succeeded"]
    rec = Counting()
    result, _ = run(spec(tmp_path / "w"), rec)
    assert result == RunResult(0)
    assert arm.kinds(without="GET group") == [
        "POST token", "PUT group", "GET operation", "GET logs", "DELETE group"
    ]  # fmt: skip
    assert arm.op_reads == 3 and rec.asked >= 3  # asked between the operation's polls


def test_cancel_during_provisioning_deletes_the_group(arm: FakeArm, tmp_path: Path) -> None:
    class CancelWhileProvisioning(RecordingIO):
        def should_stop(self) -> bool:
            return arm.op_reads >= 2

    arm.provisioning = ["InProgress"]
    result, _ = run(spec(tmp_path / "w"), CancelWhileProvisioning())
    assert result.cancelled
    # A provisioning read already under way may reach the fake after the DELETE: what matters
    # is that the group was deleted and nothing is left.
    assert "DELETE group" in arm.kinds() and arm.groups == {}


def test_provisioning_past_the_start_timeout_fails_the_job(
    arm: FakeArm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MULTIFLEXI_AZURE_START_TIMEOUT", "0.2")
    arm.provisioning = ["InProgress"]
    result, _ = run(spec(tmp_path / "w"))
    assert result.error is not None
    assert result.error.startswith("the group was not provisioned within "), result.error
    # The SDK polls the create operation from its own thread, which the job cannot stop: one
    # of its reads may reach the fake after the DELETE. Nothing else may.
    kinds = arm.kinds()
    assert "DELETE group" in kinds and arm.groups == {}
    assert set(kinds[kinds.index("DELETE group") + 1 :]) <= {"GET operation"}, kinds


def test_a_failed_provisioning_is_a_clear_error(arm: FakeArm, tmp_path: Path) -> None:
    arm.provisioning = ["InProgress", "Failed"]
    result, _ = run(spec(tmp_path / "w"))
    assert result.error is not None and "image not accessible" in result.error
    assert arm.kinds()[-1] == "DELETE group" and arm.groups == {}


def test_exit_code_zero_succeeds(arm: FakeArm, tmp_path: Path) -> None:
    result, _ = run(spec(tmp_path / "w"))
    assert result == RunResult(0)
    assert arm.kinds()[-1] == "DELETE group" and arm.groups == {}


def test_timeout_deletes_the_group(arm: FakeArm, tmp_path: Path) -> None:
    arm.state = lambda n: ("Running", None, "Running")
    result, _ = run(spec(tmp_path / "w", timeout=0.3))
    assert result.timed_out and result.exit_code is None
    assert arm.kinds()[-1] == "DELETE group"
    assert [c.kind for c in arm.calls].count("DELETE group") == 1 and arm.groups == {}


def test_cancel_deletes_the_group(arm: FakeArm, tmp_path: Path) -> None:
    class Cancelling(RecordingIO):
        def should_stop(self) -> bool:
            return bool(self.chunks)

    arm.state = lambda n: ("Running", None, "Running")
    arm.logs = lambda n: "working\n"
    result, rec = run(spec(tmp_path / "w"), Cancelling())
    assert result.cancelled and rec.text() == b"working\n"
    assert arm.kinds()[-1] == "DELETE group" and arm.groups == {}


def test_a_group_that_fails_without_an_exit_reports_why(arm: FakeArm, tmp_path: Path) -> None:
    arm.state = lambda n: ("Waiting", None, "Failed")
    arm.events = ["Failed to pull image example.org/demo:1"]
    result, _ = run(spec(tmp_path / "w"))
    assert result.exit_code is None and result.error == (
        "the container group ended (Failed) without an exit: "
        "Failed to pull image example.org/demo:1"
    )
    assert arm.kinds()[-1] == "DELETE group" and arm.groups == {}


def test_a_container_that_never_starts_fails_with_the_last_event(
    arm: FakeArm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MULTIFLEXI_AZURE_START_TIMEOUT", "0.2")
    arm.state = lambda n: ("Waiting", None, "Pending")
    arm.events = ["Pulling image", "Failed to pull image example.org/demo:1: not found"]
    result, _ = run(spec(tmp_path / "w"))
    assert result.exit_code is None and result.error is not None
    assert result.error.startswith("the container did not start within ")
    assert result.error.endswith(" s: Failed to pull image example.org/demo:1: not found")
    assert arm.kinds()[-1] == "DELETE group" and arm.groups == {}


def test_a_terminated_container_without_an_exit_code_is_an_error(
    arm: FakeArm, tmp_path: Path
) -> None:
    arm.state = lambda n: ("Terminated", None, "Failed")
    result, _ = run(spec(tmp_path / "w"))
    assert result == RunResult(None, error="the container terminated without an exit code")


def test_a_refused_create_is_a_clear_error(arm: FakeArm, tmp_path: Path) -> None:
    arm.fail["PUT group"] = 403
    result, _ = run(spec(tmp_path / "w"))
    assert result.error is not None and result.error.startswith("azure API: 403")
    assert "denied by test" in result.error
    assert arm.kinds() == ["POST token", "PUT group", "DELETE group"]


def test_result_files_and_inputs_are_refused_before_any_call(arm: FakeArm, tmp_path: Path) -> None:
    job = spec(tmp_path / "w")
    with_result = spec(tmp_path / "w", env={**job.env, "RESULT_FILE": "/x/result.json"})
    result, _ = run(with_result)
    assert result.error == (
        "azure: RESULT_FILE is not supported: Azure Container Instances cannot copy files out"
    )
    (tmp_path / "w" / "upload.csv").write_text("a,b")
    result, _ = run(job)
    assert result.error == "azure: input files are not supported: ['upload.csv']"
    assert arm.calls == []


def test_unusable_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    azure_env(monkeypatch, "http://127.0.0.1:9")
    module, app = AzureExecutor(), AppInfo("a", "x", "img:1")
    assert module.unusable_reason(app) is None
    assert module.unusable_reason(AppInfo("a", "x", None)) == (
        "the application has no OCI image (ociimage)"
    )
    monkeypatch.setenv("MULTIFLEXI_AZURE_BASE_URL", "http://arm.example.org")
    assert module.unusable_reason(app) == (
        "MULTIFLEXI_AZURE_BASE_URL: expected an https URL (plain http only on loopback), "
        "got 'http://arm.example.org'"
    )
    monkeypatch.delenv("MULTIFLEXI_AZURE_BASE_URL")
    monkeypatch.delenv("AZURE_CLIENT_SECRET")
    assert module.unusable_reason(app) == (
        "AZURE_CLIENT_SECRET not set (no azure-identity installed for other logins)"
    )
    monkeypatch.delenv("MULTIFLEXI_AZURE_RESOURCE_GROUP")
    assert module.unusable_reason(app) == "MULTIFLEXI_AZURE_RESOURCE_GROUP is not set"


def _group(name: str, job_id: int, installation: str) -> dict[str, Any]:
    """A container group as ARM lists it (what an earlier attempt's PUT made)."""
    container = {
        "name": "job",
        "properties": {
            "image": "example.org/demo:1",
            "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}},
        },
    }
    return {
        "id": f"{GROUPS}/containerGroups/{name}",
        "name": name,
        "location": "northeurope",
        "tags": {"multiflexi.job": str(job_id), "multiflexi.installation": installation},
        "properties": {
            "containers": [container], "osType": "Linux", "provisioningState": "Succeeded",
        },
    }  # fmt: skip


def test_a_retry_deletes_its_previous_attempts_group(arm: FakeArm, tmp_path: Path) -> None:
    """A killed executor leaves its container group running; before the retry starts, the
    previous attempt's group (found by its tags in the resource group) is deleted, which is how
    ACI stops a container. Another installation's group of the same job id stays."""
    for name, job_id, inst in (("mf-job-6-aaa", 6, "ours"), ("mf-job-6-bbb", 6, "staging"),
                               ("mf-job-5-ccc", 5, "ours")):  # fmt: skip
        arm.groups[name] = _group(name, job_id, inst)
    arm.state = lambda n: ("Running", None, "Running")
    job = spec(tmp_path / "w", installation="ours", previous_attempt=6)

    assert AzureExecutor().clear_attempt(job, RecordingIO()) == Cleared(
        ("container group mf-job-6-aaa",), None
    )

    assert arm.kinds() == ["POST token", "GET groups", "GET group", "DELETE group"]
    assert arm.one("GET groups").path == f"{GROUPS}/containerGroups"
    assert arm.one("DELETE group").path == f"{GROUPS}/containerGroups/mf-job-6-aaa"
    assert sorted(arm.groups) == ["mf-job-5-ccc", "mf-job-6-bbb"]


def test_a_retry_does_not_start_when_the_groups_cannot_be_listed(
    arm: FakeArm, tmp_path: Path
) -> None:
    arm.fail = {"GET groups": 403}
    job = spec(tmp_path / "w", installation="ours", previous_attempt=6)
    with pytest.raises(AttemptGone, match="azure API: 403"):
        AzureExecutor().clear_attempt(job, RecordingIO())


def test_a_previous_attempt_whose_container_had_terminated_gives_its_exit_code(
    arm: FakeArm, tmp_path: Path
) -> None:
    arm.groups["mf-job-6-aaa"] = _group("mf-job-6-aaa", 6, "ours")
    arm.state = lambda n: ("Terminated", 4, "Succeeded")
    job = spec(tmp_path / "w", installation="ours", previous_attempt=6)
    handed: list[tuple[RunResult, list[str]]] = []

    class Ending(RecordingIO):
        def ended(self, result: RunResult) -> None:  # journaled while the group still exists
            handed.append((result, [c.kind for c in arm.calls if c.method == "DELETE"]))

    cleared = AzureExecutor().clear_attempt(job, Ending())
    assert cleared == Cleared(("container group mf-job-6-aaa",), 4)
    assert handed == [(RunResult(4), [])]
    assert arm.groups == {}


def test_the_exit_is_handed_over_before_the_group_is_deleted(arm: FakeArm, tmp_path: Path) -> None:
    seen: list[tuple[int | None, list[str]]] = []

    class Ending(RecordingIO):
        def ended(self, result: RunResult) -> None:
            seen.append((result.exit_code, [c.kind for c in arm.calls if c.method == "DELETE"]))

    result, _ = run(spec(tmp_path / "w"), Ending())
    assert result == RunResult(0)
    assert seen == [(0, [])]
    assert arm.kinds()[-1] == "DELETE group"


def test_leftovers_list_the_installations_groups_and_read_an_exit_only_when_asked(
    arm: FakeArm, tmp_path: Path
) -> None:
    """One list request per pass (ARM's read quota is per subscription); a group's instance
    view, with its container's exit code, is read only for a leftover about to be removed."""
    for name, job_id, inst in (("mf-job-6-aaa", 6, "ours"), ("mf-job-6-bbb", 6, "staging")):
        arm.groups[name] = _group(name, job_id, inst)
    arm.groups["mf-job-6-aaa"]["tags"]["multiflexi.worker"] = "3"
    arm.state = lambda n: ("Terminated", 5, "Succeeded")
    module = AzureExecutor()

    [found] = module.leftovers("ours")

    assert (found.ref, found.job_id, found.worker_id, found.exit_code) == (
        "mf-job-6-aaa",
        6,
        3,
        None,
    )
    assert arm.kinds() == ["POST token", "GET groups"]
    assert found.read_exit is not None and found.read_exit() == 5
    assert arm.kinds()[-1] == "GET group"
    module.leftovers("ours")  # the next pass signs in no more: its client is kept
    assert [c.kind for c in arm.calls].count("POST token") == 1
    module.remove_leftover("mf-job-6-aaa")
    assert sorted(arm.groups) == ["mf-job-6-bbb"]


def test_no_azure_configured_lists_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID", raising=False)
    monkeypatch.setenv("MULTIFLEXI_ENV_FILE", "/nonexistent")
    module = AzureExecutor()
    assert module.engine_problem() == "AZURE_SUBSCRIPTION_ID is not set"
    assert module.leftovers("ours") == []
