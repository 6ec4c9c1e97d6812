"""Uploaded input files of a job, written into its work directory before it runs.

The job's own uploads (Run now) win; the RunTemplate's uploads fill the fields the job has no
file for. Each file field's env value becomes the file's absolute path (source "upload").
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from multiflexi_web.models import FileUpload

FILE_MODE = 0o600


class UploadError(ValueError):
    """An uploaded file cannot be written into the work directory."""


def template_fields(session: Session, rt_id: int) -> frozenset[str]:
    """Fields with a file stored with the RunTemplate itself."""
    rows = session.scalars(
        select(FileUpload.field).where(
            FileUpload.runtemplate_id == rt_id, FileUpload.job_id.is_(None)
        )
    )
    return frozenset(rows)


def load(
    session: Session, job_id: int, rt_id: int, *, templated: bool
) -> dict[str, tuple[str, bytes]]:
    """Field -> (file name, content): the job's files, then the template's for other fields."""
    which = [FileUpload.job_id == job_id]
    if templated:
        which.append(and_(FileUpload.runtemplate_id == rt_id, FileUpload.job_id.is_(None)))
    rows = session.execute(
        select(FileUpload.field, FileUpload.filename, FileUpload.content, FileUpload.job_id)
        .where(or_(*which))
        .order_by(FileUpload.id)
    ).all()
    chosen: dict[str, tuple[str, bytes]] = {}
    for field, name, content, _owner in sorted(rows, key=lambda r: r[3] is not None):
        chosen[field] = (name, bytes(content))  # job rows come last and so win
    return chosen


def materialise(
    workdir: Path, files: dict[str, tuple[str, bytes]], owner: tuple[int, int] | None = None
) -> dict[str, str]:
    """Write the files (mode 0600, never executable) into workdir, owned by `owner` (the job
    user) when given; field -> absolute path. The job's command is never looked up in workdir
    (PATH has absolute entries only), so a file named like a command shadows nothing."""
    paths: dict[str, str] = {}
    used: set[str] = set()
    for field in sorted(files):
        name, content = files[field]
        safe = _single_name(name, f"uploaded file {name!r} of {field}")
        target = workdir / safe
        if safe in used:  # two fields with one file name: each keeps its own copy
            sub = workdir / _single_name(field, f"field name {field!r}")
            sub.mkdir(mode=0o700)  # never an existing one: it could be a link planted there
            if owner is not None:
                os.chown(sub, *owner, follow_symlinks=False)
            target = sub / safe
        used.add(safe)
        _write(target, content, owner)
        paths[field] = str(target.absolute())
    return paths


def _single_name(name: str, what: str) -> str:
    """A name that stays in its directory (the portal sanitises names; this is the last guard)."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise UploadError(f"{what}: the name would escape the job's work directory")
    if name.startswith((".", "-")) or not name.isprintable():
        raise UploadError(f"{what}: hidden, option-like or control characters in the name")
    return name


def _write(target: Path, content: bytes, owner: tuple[int, int] | None) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(target, flags, FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), FILE_MODE)  # whatever the umask: never executable
        if owner is not None:
            os.fchown(fh.fileno(), *owner)
        fh.write(content)
