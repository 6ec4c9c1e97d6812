"""This process's resident memory, for the daemons' MULTIFLEXI_MEMORY_LIMIT_MB ceiling."""

from __future__ import annotations

import ctypes
import os
import resource

M_ARENA_MAX = -8  # glibc's mallopt() parameter behind MALLOC_ARENA_MAX
DAEMON_ARENAS = 2


def rss_mb() -> float:
    """Current resident set size in MiB (from /proc; falls back to the peak)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except (OSError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def limit_malloc_arenas(arenas: int = DAEMON_ARENAS) -> bool:
    """Cap glibc's malloc arenas, as MALLOC_ARENA_MAX would; False when not applied (not glibc,
    or the environment already sets MALLOC_ARENA_MAX, which wins).

    glibc gives threads up to eight arenas per core, each keeping the memory its threads freed
    for later reuse; an executor's job, finisher and heartbeat threads take turns on the GIL, so
    they gain nothing from separate arenas, and under load each kept a few MiB more resident.
    Call before the daemon starts its threads: arenas already made stay."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt, nothing to cap
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))
