"""The deployment image and compose set, for real: the image built offline on this machine's
Docker engine (a private dockerd), PostgreSQL, the portal, two executors, two schedulers and an
eventor started from deploy/compose.yaml, and a smoke job run through them."""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import deploy_images
from tests.engines import _rootfs_tar, dockerd
from tests.services import need

ROOT = Path(__file__).resolve().parent.parent
# Minutes (an offline image build, seven containers): `make test-deploy`, which CI runs after
# `make test`, not inside it.
pytestmark = [pytest.mark.deploy, pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(3600)]


class Compose:
    def __init__(self, env: dict[str, str], files: list[Path], project: str) -> None:
        self.env, self.project = env, project
        self.base = ["docker-compose", "-p", project, *(a for f in files for a in ("-f", str(f)))]

    def __call__(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [*self.base, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            logs = subprocess.run(
                [*self.base, "logs", "--tail", "30"], env=self.env, capture_output=True, text=True
            ).stdout
            raise AssertionError(
                f"{args}: {done.stdout[-2000:]}{done.stderr[-3000:]}\n{logs[-6000:]}"
            )
        return done.stdout

    def cli(self, *args: str) -> Any:
        """`multiflexi ARGS --format json` inside the portal's container."""
        out = self(
            "exec", "-T", "portal", "multiflexi-entrypoint", "multiflexi", *args, "--format", "json"
        )
        return json.loads(out)


@pytest.fixture
def compose(tmp_path: Path) -> Iterator[Compose]:
    reason = deploy_images.missing_tools()
    need(reason is None, reason or "")
    # dockerd's sockets live below its folder: a short one (unix socket paths stop at 108 bytes)
    folder = Path(tempfile.mkdtemp(prefix="mf-dep-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, folder, True)
        engine = stack.enter_context(dockerd(folder, _rootfs_tar(folder)))
        yield from _compose_on(engine.host, tmp_path)


def _compose_on(host: str, tmp_path: Path) -> Iterator[Compose]:
    env = {
        **_plain_env(),
        "DOCKER_HOST": host,
        "SECRET_KEY": secrets.token_hex(32),
        "ENCRYPTION_MASTER_KEY": secrets.token_urlsafe(32),
        "POSTGRES_PASSWORD": "smoke",
        "MULTIFLEXI_IMAGE": deploy_images.IMAGE_TAG,
        "MULTIFLEXI_PORT": "127.0.0.1:0",
    }
    deploy_images.build(env)
    override = tmp_path / "compose.test.yaml"
    override.write_text(yaml.safe_dump(_override()))
    c = Compose(env, [ROOT / "deploy" / "compose.yaml", override], f"mf{secrets.token_hex(3)}")
    try:
        yield c
    finally:
        subprocess.run(
            [*c.base, "down", "-v", "-t", "5"], env=env, capture_output=True, timeout=300
        )


def _plain_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("MULTIFLEXI_", "DATABASE_"))}


def _override() -> dict[str, Any]:
    """Only PostgreSQL changes: no registry here, so the test's own Debian image runs it."""
    return {
        "services": {
            "postgres": {
                "image": deploy_images.BASE_TAG,
                "user": "postgres",
                "entrypoint": ["/bin/sh", "-c"],
                "command": [deploy_images.PG_SCRIPT.replace("$", "$$")],  # compose interpolates $
            }
        }
    }


def test_compose_set_runs_a_smoke_job(compose: Compose) -> None:
    compose("up", "-d", timeout=900)
    workers = _wait(lambda: _kinds(compose.cli("worker", "list")), 180, "every daemon registered")
    assert workers == {"executor": 2, "scheduler": 2, "eventor": 1}

    port = compose("port", "portal", "8000").strip().rsplit(":", 1)[1]
    health = _wait(lambda: _get(f"http://127.0.0.1:{port}/healthz"), 120, "the portal answering")
    assert health == 200

    compose.cli("app", "import", "--demo")
    hello = next(a for a in compose.cli("app", "list") if a["uuid"] == HELLO_UUID)
    compose.cli("company", "create", "Smoke", "--slug", "smoke")
    rt = compose.cli(
        "runtemplate", "create", "--company", "smoke", "--app", str(hello["id"]), "--name", "smoke"
    )
    compose.cli("runtemplate", "schedule", str(rt["id"]), "--count", "4")
    jobs = _wait(
        lambda: _all_done(compose.cli("job", "list", "--runtemplate", str(rt["id"]))),
        180,
        "the smoke jobs",
    )
    assert [j["status"] for j in jobs] == ["succeeded"] * 4, jobs
    assert all(j["worker_id"] for j in jobs)  # run by one of the executors
    out = compose(
        "exec",
        "-T",
        "portal",
        "multiflexi-entrypoint",
        "multiflexi",
        "job",
        "output",
        str(jobs[0]["id"]),
    )
    assert "Hello, World!" in out

    preview = compose.cli("prune", "--dry-run")
    assert preview["jobs"]["count"] == 0  # retention is off by default: nothing would go


HELLO_UUID = "df296520-c062-4955-ac89-2ee6e8940ee2"


def _kinds(rows: list[dict[str, Any]]) -> dict[str, int] | None:
    kinds: dict[str, int] = {}
    for r in rows:
        if not r["stale"]:
            kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    return (
        kinds
        if kinds.get("executor") == 2 and kinds.get("scheduler") == 2 and "eventor" in kinds
        else None
    )


def _all_done(rows: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    done = [r for r in rows if r["status"] not in ("scheduled", "running", "blocked")]
    return rows if len(rows) == 4 and len(done) == 4 else None


def _get(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except OSError:
        return None


def _wait(probe: Any, timeout: float, what: str) -> Any:
    """Poll a probe of other processes' state (no event reaches this test from them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = probe()
        except AssertionError:  # the containers are still starting
            found = None
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
