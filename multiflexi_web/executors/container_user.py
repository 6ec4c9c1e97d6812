"""Who a container runs as, and handing the job's work directory to that user and back.

The job user when the daemon runs jobs as one (MULTIFLEXI_JOB_USER: the work directory is
already that user's), else the daemon's own uid:gid, so whatever the job writes is the daemon's
to read and remove afterwards. MULTIFLEXI_CONTAINER_USER (uid:gid numbers) picks another one;
then a daemon running as root chowns the work directory to it before the start and back after.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from multiflexi_web.config import read_sources
from multiflexi_web.executors.base import RunAs

SETTING = "MULTIFLEXI_CONTAINER_USER"


@dataclass(frozen=True)
class ContainerUser:
    uid: int
    gid: int
    hand: bool = False  # the work directory is handed over for the run and taken back

    @property
    def spec(self) -> str:
        return f"{self.uid}:{self.gid}"

    def hand_over(self, workdir: Path) -> None:
        if self.hand:
            _chown_tree(workdir, self.uid, self.gid)

    def take_back(self, workdir: Path) -> None:
        if self.hand:
            _chown_tree(workdir, os.getuid(), os.getgid())


def for_job(run_as: RunAs | None) -> ContainerUser:
    """The user a job's container runs as; ValueError naming the setting when it is unusable."""
    found = configured()
    if found is not None:
        return found
    if run_as is not None:
        return ContainerUser(run_as.uid, run_as.gid)
    return ContainerUser(os.getuid(), os.getgid())


def configured() -> ContainerUser | None:
    """MULTIFLEXI_CONTAINER_USER, checked (None when unset)."""
    raw = read_sources().get(SETTING, "").strip()
    if not raw:
        return None
    uid, sep, gid = raw.partition(":")
    if not (uid.isdigit() and (not sep or gid.isdigit())):
        raise ValueError(f"{SETTING}={raw!r}: must be uid:gid numbers (e.g. 1000:1000)")
    ids = (int(uid), int(gid) if sep else int(uid))
    user = ContainerUser(*ids, hand=ids != (os.getuid(), os.getgid()))
    if user.hand and os.geteuid() != 0:
        raise ValueError(
            f"{SETTING}={raw!r}: only a daemon running as root can hand the job's work "
            "directory to another user; leave it empty to run as the daemon's own user"
        )
    return user


def _chown_tree(top: Path, uid: int, gid: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.chown(top, uid, gid)
    for root, dirs, files in os.walk(top):
        for name in (*dirs, *files):
            with contextlib.suppress(FileNotFoundError):
                os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)
