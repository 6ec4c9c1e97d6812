"""A job's environment and files as a remote container sees them (kubernetes, azure)."""

from __future__ import annotations

import os
from pathlib import Path

from multiflexi_web.executors.base import JobSpec

# Taken from the daemon's own environment for local jobs; inside an image they would replace
# the image's own values (a host PATH breaks most images), so they are dropped when unchanged.
HOST_KEYS = ("PATH", "HOME", "USER", "LOGNAME")


def container_env(spec: JobSpec, mount: str) -> dict[str, str]:
    """The job's env with the daemon's host keys dropped and work-directory paths under `mount`
    (MULTIFLEXI_TMP, RESULT_FILE and any value naming a file in the work directory)."""
    root = str(spec.workdir)
    env: dict[str, str] = {}
    for key, value in spec.env.items():
        if key in HOST_KEYS and os.environ.get(key) == value:
            continue
        env[key] = _remap(value, root, mount)
    return env


def _remap(value: str, root: str, mount: str) -> str:
    if value == root:
        return mount
    if value.startswith(root + "/"):
        return mount + value[len(root) :]
    return value


def input_files(workdir: Path) -> list[str]:
    """Files already in the work directory before the run (uploaded inputs), relative names."""
    if not workdir.is_dir():
        return []
    return sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*") if p.is_file())
