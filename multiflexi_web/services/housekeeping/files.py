"""Files nobody needs: artifact files without a row, work directories of finished jobs.

Both stores are named by job id (`<artifact_dir>/<job id>/<name>`, `<tmp_dir>/job-<id>`). A
job that is not finished (live, or not yet recorded: a journaled finish stays `running`) keeps
everything; anything else must also be older than a grace period, so a file being written
now is never taken.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from multiflexi_web.models import Artifact, Job
from multiflexi_web.models.job import LIVE_STATUSES

log = logging.getLogger(__name__)
ORPHAN_MIN_AGE = 3600.0  # seconds: an artifact file younger than this is never an orphan
WORKDIR_PREFIX = "job-"
_LIVE = sorted(s.value for s in LIVE_STATUSES)


@dataclass
class FilePlan:
    orphans: list[Path] = field(default_factory=list)
    orphan_bytes: int = 0
    workdirs: list[Path] = field(default_factory=list)
    workdir_bytes: int = 0


def _job_dirs(root: Path, prefix: str) -> Iterator[tuple[int, Path]]:
    """(job id, directory) of the entries named <prefix><digits>; links and files are skipped."""
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return
    for entry in sorted(entries, key=lambda e: e.name):
        digits = entry.name.removeprefix(prefix)
        named = entry.name.startswith(prefix) and digits.isdigit()
        if named and entry.is_dir(follow_symlinks=False):
            yield int(digits), Path(entry.path)


def _live(session: Session, ids: Iterable[int]) -> set[int]:
    wanted, live = sorted(set(ids)), set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        live |= set(session.scalars(select(Job.id).where(Job.id.in_(chunk), Job.status.in_(_LIVE))))
    return live


def _old(path: Path, min_age: float, now: float) -> bool:
    try:
        return now - os.lstat(path).st_mtime >= min_age
    except FileNotFoundError:
        return False


def _size(path: Path) -> int:
    if not path.is_dir() or path.is_symlink():
        return os.lstat(path).st_size
    total = 0
    for root, _dirs, files in os.walk(path, followlinks=False):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def orphan_artifacts(session: Session, artifact_dir: Path, now: float | None = None) -> list[Path]:
    """Files under the artifact store that no artifact row names, of finished or gone jobs."""
    now = time.time() if now is None else now
    dirs = dict(_job_dirs(artifact_dir, ""))
    live = _live(session, dirs)
    found: list[Path] = []
    for job_id, folder in dirs.items():
        if job_id in live:
            continue
        stored = session.scalars(select(Artifact.storage_path).where(Artifact.job_id == job_id))
        known = {os.path.realpath(p) for p in stored if p}
        for entry in sorted(folder.iterdir()):
            if os.path.realpath(entry) not in known and _old(entry, ORPHAN_MIN_AGE, now):
                found.append(entry)
    return found


def stale_workdirs(
    session: Session, tmp_dir: Path, hours: float, now: float | None = None
) -> list[Path]:
    """Work directories of jobs that are finished or gone, untouched for `hours`."""
    now = time.time() if now is None else now
    dirs = dict(_job_dirs(tmp_dir, WORKDIR_PREFIX))
    live = _live(session, dirs)
    return [d for i, d in dirs.items() if i not in live and _old(d, hours * 3600, now)]


def plan_files(session: Session, artifact_dir: Path, tmp_dir: Path, hours: float) -> FilePlan:
    out = FilePlan(orphans=orphan_artifacts(session, artifact_dir))
    out.workdirs = stale_workdirs(session, tmp_dir, hours)
    out.orphan_bytes = sum(_size(p) for p in out.orphans)
    out.workdir_bytes = sum(_size(p) for p in out.workdirs)
    return out


def remove(paths: Iterable[Path]) -> int:
    """Remove files or directories (gone already is fine); empty job folders go with them."""
    removed = 0
    for path in paths:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
        except OSError as exc:  # not ours to remove (permissions): logged, the pass goes on
            log.warning("housekeeping: cannot remove %s: %s", path, exc)
            continue
        _rmdir_empty(path.parent)
    return removed


def _rmdir_empty(folder: Path) -> None:
    if folder.name.isdigit():  # a job's artifact folder, emptied
        with contextlib.suppress(OSError):
            folder.rmdir()
