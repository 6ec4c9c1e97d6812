"""Private container engines for tests: a dockerd and a `podman system service` of our own.

Exactly the set-up TESTING.md found working here: own data roots and sockets under a temp dir,
no iptables or bridge, podman with one consistent configuration from its first call, and an
offline busybox image imported into each (no registry is reachable).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.services import need

IMAGE = "multiflexi-test/busybox:latest"
APPLETS = ("sh", "ls", "cat", "echo", "env", "sleep", "mkdir", "true", "id", "head", "dd", "tail")
START_DEADLINE = 60.0

CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
STORAGE_CONF = """[storage]
driver = "overlay"
runroot = "{root}/run"
graphroot = "{root}/graph"
"""


@dataclass(frozen=True)
class Engine:
    name: str  # the executor module: docker or podman
    host: str  # unix:///…/x.sock
    env_key: str  # the setting that points the module at it
    image: str = IMAGE


def _rootfs_tar(folder: Path) -> Path:
    root = folder / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    for extra in ("tmp", "work", "etc"):
        (root / extra).mkdir(mode=0o1777 if extra == "tmp" else 0o755)
    tar = folder / "rootfs.tar"
    with tarfile.open(tar, "w") as t:
        t.add(root, arcname=".")
    return tar


def _wait_socket(sock: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    import docker

    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited: {log.read_text()[-2000:]}")
        if sock.exists():
            with contextlib.suppress(Exception):
                docker.DockerClient(base_url=f"unix://{sock}", timeout=2).ping()
                return
        time.sleep(0.05)  # waiting on a process we started; no event to wait on
    raise RuntimeError(f"{sock} did not answer within {START_DEADLINE}s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def dockerd(folder: Path, tar: Path) -> Iterator[Engine]:
    d = folder / "docker"
    d.mkdir()
    sock, log = d / "docker.sock", d / "log"
    cmd = [
        "dockerd",
        "--data-root", str(d / "data"), "--exec-root", str(d / "exec"),
        "--pidfile", str(d / "pid"), "-H", f"unix://{sock}",
        "--iptables=false", "--ip6tables=false", "--bridge=none",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_socket(sock, proc, log)
        env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
        subprocess.run(
            ["docker", "import", "-c", "ENV PATH=/bin", str(tar), IMAGE],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        yield Engine("docker", f"unix://{sock}", "DOCKER_HOST")
    finally:
        _stop(proc)


def podman_env(p: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CONTAINERS_CONF": str(p / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(p / "storage.conf"),
    }


@contextlib.contextmanager
def podman(folder: Path, tar: Path) -> Iterator[Engine]:
    p = folder / "podman"
    p.mkdir()
    (p / "containers.conf").write_text(CONTAINERS_CONF)
    (p / "storage.conf").write_text(STORAGE_CONF.format(root=p))
    env, sock, log = podman_env(p), p / "podman.sock", p / "log"
    base = ["podman", "--tmpdir", str(p / "tmp")]
    subprocess.run(
        [*base, "import", "-c", "ENV PATH=/bin", str(tar), IMAGE],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*base, "system", "service", "--time=0", f"unix://{sock}"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        _wait_socket(sock, proc, log)
        yield Engine("podman", f"unix://{sock}", "MULTIFLEXI_PODMAN_HOST")
    finally:
        _stop(proc)
        subprocess.run([*base, "rm", "-af"], env=env, capture_output=True, timeout=60)


def missing(name: str) -> str | None:
    binaries = {"docker": ("dockerd", "docker"), "podman": ("podman",)}[name]
    absent = [b for b in (*binaries, "busybox") if shutil.which(b) is None]
    if absent or os.geteuid() != 0:
        why = f"missing {', '.join(absent)}" if absent else "needs root"
        return f"{name} engine ({why}; `make test-system-deps` installs them)"
    return None


class Engines:
    """Starts each engine on first use and keeps it for the session."""

    def __init__(self) -> None:
        self.stack = contextlib.ExitStack()
        self.folder = Path(self.stack.enter_context(tempfile.TemporaryDirectory(prefix="mf-eng-")))
        self.started: dict[str, Engine] = {}
        self.tar: Path | None = None

    def __enter__(self) -> Engines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def get(self, name: str) -> Engine:
        if name not in self.started:
            why = missing(name)
            need(why is None, why or name)
            self.tar = self.tar or _rootfs_tar(self.folder)
            start = dockerd if name == "docker" else podman
            self.started[name] = self.stack.enter_context(start(self.folder, self.tar))
        return self.started[name]


@pytest.fixture(scope="session", name="engines")
def engines_fixture() -> Iterator[Engines]:
    e = Engines()
    with e.stack:
        yield e


@pytest.fixture(params=["docker", "podman"], name="engine")
def engine_fixture(
    request: pytest.FixtureRequest, engines: Engines, monkeypatch: pytest.MonkeyPatch
) -> Engine:
    """One real engine, the module pointed at it through its setting."""
    eng = engines.get(request.param)
    for key in ("DOCKER_HOST", "MULTIFLEXI_PODMAN_HOST", "CONTAINER_HOST"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv(eng.env_key, eng.host)
    return eng
