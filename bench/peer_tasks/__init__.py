"""The job every peer runs in bench/peers.py, and each peer's task module around it.

A worker process imports its peer's module; BENCH_STORE (a URL) says where that peer keeps
its queue and results, BENCH_NAME the queue's name.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

ARGV = ["/bin/sh", "-c", "echo hello; echo err 1>&2"]


def run_job() -> dict[str, Any]:
    """The same subprocess as the project's bench job: its output and wall-clock start and end
    (one clock for every process on the host: the harness times from them)."""
    started = time.time()
    done = subprocess.run(ARGV, capture_output=True, check=True)
    return {
        "stdout": done.stdout.decode(),
        "stderr": done.stderr.decode(),
        "started": started,
        "finished": time.time(),
    }
