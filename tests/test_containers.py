"""The docker and podman modules against real engines (tests/engines.py starts private ones)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import docker
import pytest

from multiflexi_web.executors import container_options, registry
from multiflexi_web.executors.base import AppInfo, JobSpec, RunAs, RunResult
from multiflexi_web.executors.container_env import container_env, remap
from multiflexi_web.executors.container_labels import LABEL_JOB
from tests.engines import Engine, engine_fixture, engines_fixture  # noqa: F401  (fixtures)

DEADLINE = 30.0


class Recorder:
    """A JobIO that keeps what the module reports; `seen` fires when `expect` was output."""

    def __init__(self, expect: bytes = b"", stop: threading.Event | None = None) -> None:
        self.chunks: list[tuple[str, bytes]] = []
        self.container_id: str | None = None
        self.expect, self.seen = expect, threading.Event()
        self.stop = stop or threading.Event()

    def started(self, pid: int | None = None, container_id: str | None = None) -> None:
        self.container_id = container_id

    def output(self, stream: str, data: bytes) -> None:
        self.chunks.append((stream, data))
        if self.expect and self.expect in self.text("stdout"):
            self.seen.set()

    def should_stop(self) -> bool:
        return self.stop.is_set()

    def ended(self, result: RunResult) -> None:
        pass

    def text(self, stream: str) -> bytes:
        return b"".join(d for s, d in self.chunks if s == stream)


def spec(eng: Engine, tmp_path: Path, script: str, job_id: int = 1, **kw: object) -> JobSpec:
    workdir = tmp_path / f"job-{job_id}"
    workdir.mkdir(mode=0o700)
    env = {"MULTIFLEXI_TMP": str(workdir), **kw.pop("env", {})}  # type: ignore[dict-item]
    return JobSpec(
        job_id=job_id,
        argv=("sh", "-c", script),
        env=env,
        workdir=workdir,
        app=AppInfo("busybox", "sh", eng.image),
        worker_id=7,
        **kw,  # type: ignore[arg-type]
    )


def run(eng: Engine, s: JobSpec, io: Recorder) -> RunResult:
    return registry.get(eng.name).run(s, io)


def containers(eng: Engine) -> list[object]:
    client = docker.DockerClient(base_url=eng.host)
    return list(client.api.containers(all=True, filters={"label": LABEL_JOB}))


def test_env_arrives_literally_and_streams_are_separate(engine: Engine, tmp_path: Path) -> None:
    nasty = {"QUOTED": 'it\'s "quoted"', "SPACED": "a  b  c", "SUBST": "$(id) `id` ${HOME}"}
    s = spec(
        engine,
        tmp_path,
        'printf "%s|" "$QUOTED" "$SPACED" "$SUBST"; echo oops >&2; id -u; pwd; '
        'echo "$MULTIFLEXI_TMP"; exit 3',
        env=nasty,
    )
    io = Recorder()
    result = run(engine, s, io)
    assert result.exit_code == 3 and result.error is None
    out = io.text("stdout").decode()
    assert out.startswith('it\'s "quoted"|a  b  c|$(id) `id` ${HOME}|')
    assert out.split("|")[-1] == f"{os.getuid()}\n/work\n/work\n"  # MULTIFLEXI_TMP rewritten
    assert io.text("stderr") == b"oops\n"
    assert io.container_id and containers(engine) == []


def test_result_file_and_uploads_share_the_work_directory(engine: Engine, tmp_path: Path) -> None:
    s = spec(engine, tmp_path, 'cat "$INPUT" > "$RESULT_FILE"; echo "$RESULT_FILE"')
    (s.workdir / "in.json").write_text('{"a": 1}')
    s.env.update(INPUT=str(s.workdir / "in.json"), RESULT_FILE=str(s.workdir / "out.json"))
    io = Recorder()
    assert run(engine, s, io).exit_code == 0
    assert io.text("stdout") == b"/work/out.json\n"
    assert (s.workdir / "out.json").read_text() == '{"a": 1}'
    assert (s.workdir / "out.json").stat().st_uid == os.getuid()


def test_a_configured_user_gets_the_work_directory_and_gives_it_back(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0:
        pytest.skip("handing the work directory to another user needs root")
    monkeypatch.setenv("MULTIFLEXI_CONTAINER_USER", "4321:4321")
    s = spec(engine, tmp_path, "id -u; mkdir /work/out && echo made > /work/out/f")
    io = Recorder()
    assert run(engine, s, io).exit_code == 0
    assert io.text("stdout") == b"4321\n"
    for path in (s.workdir, s.workdir / "out", s.workdir / "out" / "f"):
        assert (path.stat().st_uid, path.stat().st_gid) == (os.getuid(), os.getgid())


def test_the_job_user_runs_the_container(engine: Engine, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("a job user needs a daemon running as root")
    s = spec(engine, tmp_path, "id -u; echo made > /work/f", run_as=RunAs("job", 4322, 4322))
    os.chown(s.workdir, 4322, 4322)  # as runner/run.py does for a job user
    io = Recorder()
    assert run(engine, s, io).exit_code == 0
    assert io.text("stdout") == b"4322\n"
    assert (s.workdir / "f").stat().st_uid == 4322  # the job's own, like a native job's files


def test_output_is_live_before_the_container_ends(engine: Engine, tmp_path: Path) -> None:
    script = "echo first; while [ ! -e /work/go ]; do sleep 0.05; done; echo last"
    s = spec(engine, tmp_path, script)
    io = Recorder(expect=b"first\n")
    box: dict[str, RunResult] = {}
    t = threading.Thread(target=lambda: box.setdefault("r", run(engine, s, io)))
    t.start()
    try:
        assert io.seen.wait(DEADLINE), "no live output"
        assert "r" not in box and io.text("stdout") == b"first\n"
    finally:
        (s.workdir / "go").touch()
        t.join(DEADLINE)
    assert box["r"].exit_code == 0 and io.text("stdout") == b"first\nlast\n"


def test_memory_hog_is_killed_by_the_limit(engine: Engine, tmp_path: Path) -> None:
    s = spec(
        engine,
        tmp_path,
        "exec dd if=/dev/zero of=/dev/null bs=64M count=1",
        options={"memory": "16m"},
    )
    result = run(engine, s, Recorder())
    assert result.exit_code == 137
    assert result.error and "memory limit (16 MiB)" in result.error
    assert containers(engine) == []


@pytest.mark.parametrize("how", ["timeout", "cancel"])
def test_timeout_and_cancel_leave_no_container(engine: Engine, tmp_path: Path, how: str) -> None:
    stop = threading.Event()
    io = Recorder(expect=b"up\n", stop=stop)
    script = "trap 'echo term; exit 143' TERM; echo up; while true; do sleep 0.1; done"
    s = spec(engine, tmp_path, script, timeout=1.0 if how == "timeout" else None, kill_grace=5.0)
    box: dict[str, RunResult] = {}
    t = threading.Thread(target=lambda: box.setdefault("r", run(engine, s, io)))
    t.start()
    assert io.seen.wait(DEADLINE)
    if how == "cancel":
        stop.set()
    t.join(DEADLINE)
    result = box["r"]
    assert (result.timed_out, result.cancelled) == (how == "timeout", how == "cancel")
    assert result.exit_code == 143 and b"term\n" in io.text("stdout")
    assert containers(engine) == []


def test_missing_image_with_never_pull_is_refused(engine: Engine, tmp_path: Path) -> None:
    s = spec(engine, tmp_path, "true", options={"pull": "never"})
    s = JobSpec(**{**s.__dict__, "app": AppInfo("x", "sh", "multiflexi-test/absent:1")})
    result = run(engine, s, Recorder())
    assert result.exit_code is None
    assert result.error == (
        "image 'multiflexi-test/absent:1' is not on the engine and the pull policy is never"
    )


def test_work_directory_paths_are_rewritten_exactly(tmp_path: Path) -> None:
    host = "/var/tmp/job-5"
    assert remap("/var/tmp/job-5", host, "/work") == "/work"
    assert remap("/var/tmp/job-5/in.csv", host, "/work") == "/work/in.csv"
    assert remap("--out=/var/tmp/job-5/r.json", host, "/work") == "--out=/work/r.json"
    assert remap("/var/tmp/job-55/x", host, "/work") == "/var/tmp/job-55/x"  # another job's
    assert remap("/var/tmp/job-5.bak", host, "/work") == "/var/tmp/job-5.bak"
    s = JobSpec(
        1,
        ("sh",),
        {"PATH": os.environ["PATH"], "A": f"{tmp_path}/a"},
        tmp_path,
        AppInfo("x", "sh", "img"),
    )
    assert container_env(s, "/work") == {"A": "/work/a"}  # the daemon's PATH is not the image's


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"memory": "1x"}, "executor option memory='1x': must be bytes or a size like 512m, 2g"),
        ({"memory": "1m"}, "executor option memory='1m': must be at least 6m"),
        ({"cpus": "many"}, "executor option cpus='many': must be a number of CPUs like 0.5 or 2"),
        ({"pids": "0"}, "executor option pids='0': must be a positive whole number"),
        ({"network": "host"}, "executor option network='host': must be one of none, bridge"),
        (
            {"pull": "sometimes"},
            "executor option pull='sometimes': must be one of if-missing, always, never",
        ),
        (
            {"privileged": "1"},
            "executor option 'privileged': unknown (known: pull, memory, cpus, pids, network)",
        ),
    ],
)
def test_options_are_refused_with_the_key(options: dict[str, str], message: str) -> None:
    assert container_options.problem(options) == message


def test_options_become_limits() -> None:
    opts = container_options.parse({"memory": "64m", "cpus": "0.5", "pids": "32"})
    assert opts.host_config() == {
        "network_mode": "none",
        "mem_limit": 64 * 1024 * 1024,
        "memswap_limit": 64 * 1024 * 1024,
        "nano_cpus": 500_000_000,
        "pids_limit": 32,
    }
    assert opts.pull == "if-missing"


def test_the_exit_is_handed_over_before_the_container_is_removed(
    engine: Engine, tmp_path: Path
) -> None:
    """JobIO.ended() (the daemon journals the exit there) comes while the exited container is
    still on the engine: an executor killed between the two leaves the engine's exit code for
    the next one to record (runner/engines.py), never a job with neither."""
    seen: list[tuple[int | None, list[str]]] = []

    class Ending(Recorder):
        def ended(self, result: RunResult) -> None:
            states = [str(c["State"]) for c in containers(engine)]  # type: ignore[index]
            seen.append((result.exit_code, states))

    result = run(engine, spec(engine, tmp_path, "echo hi; exit 5"), Ending())
    assert result.exit_code == 5
    assert seen == [(5, ["exited"])]
    assert containers(engine) == []
