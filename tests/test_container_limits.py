"""Every docker and podman job runs under the administrator's process and memory ceilings
(MULTIFLEXI_CONTAINER_PIDS, MULTIFLEXI_CONTAINER_MEMORY): a template may only lower them, so a
fork bomb or a memory hog in one tenant's container cannot exhaust the executor's host."""

from __future__ import annotations

import threading
from pathlib import Path

import docker
import pytest

from multiflexi_web.executors import container_options
from multiflexi_web.executors.container_options import Ceilings
from tests.engines import Engines, engines_fixture  # noqa: F401  (fixture)
from tests.test_containers import Recorder, run, spec

GIB = 1024**3


def test_a_template_without_options_still_gets_a_process_and_memory_limit() -> None:
    args = container_options.parse({}).host_config()
    assert "pids_limit" in args, f"no process limit for a container job: {args}"
    assert "mem_limit" in args, f"no memory limit for a container job: {args}"


def test_a_template_may_lower_the_ceilings_but_not_raise_them() -> None:
    top = Ceilings(pids=1024, memory=2 * GIB)
    assert container_options.problem({"pids": "2048"}, top) == (
        "executor option pids=2048: above this platform's ceiling of 1024 "
        "(MULTIFLEXI_CONTAINER_PIDS); a template may only lower it"
    )
    assert container_options.problem({"memory": "3g"}, top) == (
        "executor option memory=3g: above this platform's ceiling of 2g "
        "(MULTIFLEXI_CONTAINER_MEMORY); a template may only lower it"
    )
    assert container_options.problem({"pids": "32", "memory": "64m"}, top) is None
    lowered = container_options.parse({"pids": "32", "memory": "64m"}, top)
    assert (lowered.pids, lowered.memory) == (32, 64 * 1024**2)


def test_a_ceiling_lowered_after_the_save_applies_at_run() -> None:
    opts = container_options.parse({"pids": "2048", "memory": "4g"}, Ceilings(100, GIB))
    assert (opts.pids, opts.memory) == (100, GIB)


def test_the_ceilings_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTIFLEXI_CONTAINER_PIDS", "0")  # 0: no ceiling
    monkeypatch.setenv("MULTIFLEXI_CONTAINER_MEMORY", "512m")
    assert Ceilings.configured() == Ceilings(0, 512 * 1024**2)
    assert container_options.problem({"pids": "100000"}) is None
    assert "pids_limit" not in container_options.parse({}).host_config()
    monkeypatch.setenv("MULTIFLEXI_CONTAINER_MEMORY", "lots")
    assert "MULTIFLEXI_CONTAINER_MEMORY" in (container_options.problem({}) or "")


def test_the_engine_applies_the_ceilings(
    engines: Engines, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng = engines.get("docker")  # podman shares every line of the run (executors/containers.py)
    for key in ("MULTIFLEXI_PODMAN_HOST", "CONTAINER_HOST"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv(eng.env_key, eng.host)
    monkeypatch.setenv("MULTIFLEXI_CONTAINER_PIDS", "77")
    monkeypatch.setenv("MULTIFLEXI_CONTAINER_MEMORY", "96m")
    io = Recorder(expect=b"ready")
    job = threading.Thread(
        target=run,
        args=(eng, spec(eng, tmp_path, "echo ready; sleep 30", kill_grace=0.5), io),
        daemon=True,
    )
    job.start()
    try:
        assert io.seen.wait(30), "the job's container did not start"
        assert io.container_id is not None
        api = docker.DockerClient(base_url=eng.host).api
        limits = api.inspect_container(io.container_id)["HostConfig"]
        assert (limits["PidsLimit"], limits["Memory"]) == (77, 96 * 1024**2)
    finally:
        io.stop.set()
        job.join(30)
