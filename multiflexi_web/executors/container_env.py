"""A job's environment and files as a container sees them (docker, podman, kubernetes, azure)."""

from __future__ import annotations

import os
import re
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
        env[key] = remap(value, root, mount)
    return env


def remap(value: str, root: str, mount: str) -> str:
    """The work directory's path as the container sees it, wherever it appears in the value
    (`/tmp/job-5/in.csv`, `--out=/tmp/job-5/r.json`); `/tmp/job-55` is another path."""
    return re.sub(re.escape(root) + r"(?=/|$|[^\w.-])", mount, value)


def input_files(workdir: Path) -> list[str]:
    """Files already in the work directory before the run (uploaded inputs), relative names."""
    if not workdir.is_dir():
        return []
    return sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*") if p.is_file())
