"""Images for the deployment test, made offline: a Debian root filesystem (debootstrap, once
per machine, cached) imported as the base, then the project's Dockerfile on top of it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE_TAG = "multiflexi-test/bookworm:latest"  # python3, venv, libmagic and PostgreSQL 15
IMAGE_TAG = "multiflexi-test/multiflexi:latest"
PACKAGES = "python3,python3-venv,libmagic1,ca-certificates,postgresql-15"
ROOTFS_CACHE = Path(os.environ.get("MULTIFLEXI_TEST_ROOTFS", "/tmp/multiflexi-test-rootfs"))
MIRROR = os.environ.get("MULTIFLEXI_TEST_MIRROR", "http://deb.debian.org/debian")
# What the PostgreSQL service runs instead of the official image's entry point: a throw-away
# cluster, trusted on the compose network only (tests only).
PG_SCRIPT = (
    "set -e; B=/usr/lib/postgresql/15/bin; D=/tmp/pg; "
    "$B/initdb -D $D -A trust -U multiflexi -E UTF8 --locale=C.UTF-8 >/dev/null; "
    'echo "host all all 0.0.0.0/0 trust" >> $D/pg_hba.conf; '
    "$B/pg_ctl -D $D -o \"-k /tmp -c listen_addresses=''\" -w start >/dev/null; "
    "$B/createdb -h /tmp -U multiflexi multiflexi; "
    "$B/pg_ctl -D $D -m fast -w stop >/dev/null; "
    "exec $B/postgres -D $D -k /tmp -c listen_addresses='*'"
)


def missing_tools() -> str | None:
    for tool in ("dockerd", "docker", "docker-compose", "debootstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install docker.io docker-compose debootstrap)"
    if os.geteuid() != 0:
        return "dockerd and debootstrap need root"
    return None


def rootfs() -> Path:
    """The cached root filesystem tarball; made with debootstrap when absent (minutes)."""
    tar = ROOTFS_CACHE / "rootfs.tar"
    if tar.exists():
        return tar
    work = ROOTFS_CACHE / "tree"
    shutil.rmtree(work, ignore_errors=True)
    ROOTFS_CACHE.mkdir(parents=True, exist_ok=True)
    cmd = ["debootstrap", "--variant=minbase", f"--include={PACKAGES}", "bookworm", str(work)]
    subprocess.run([*cmd, MIRROR], check=True, capture_output=True, timeout=1800)
    partial = tar.with_suffix(".partial")
    with tarfile.open(partial, "w") as t:
        t.add(work, arcname=".")
    partial.rename(tar)  # only a whole tarball is ever reused
    shutil.rmtree(work, ignore_errors=True)
    return tar


def build(env: dict[str, str]) -> None:
    """Import the base, make the wheels on this host, build the project's image offline."""
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    docker = ["docker", "import", "-c", f"ENV PATH={path}", str(rootfs()), BASE_TAG]
    subprocess.run(docker, env=env, check=True, capture_output=True, timeout=600)
    wheels = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(["deploy/wheels.sh"], cwd=ROOT, env=wheels, check=True, timeout=900)
    subprocess.run(
        [
            "docker", "build", "--quiet", "--network", "none",
            "--build-arg", f"BASE_IMAGE={BASE_TAG}", "-t", IMAGE_TAG, ".",
        ],
        cwd=ROOT, env={**env, "DOCKER_BUILDKIT": "0"}, check=True, capture_output=True,
        timeout=1200,
    )  # fmt: skip
