"""Artifacts: files kept from a job (output, RESULT_FILE, matches of the app's patterns)."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import stat
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from multiflexi_web.db.raw import driver
from multiflexi_web.models import Artifact, utcnow
from multiflexi_web.security.expressions import ExpressionError, Matcher, compile_pattern
from multiflexi_web.services.jobs import statements as job_sql

if TYPE_CHECKING:
    import magic

log = logging.getLogger(__name__)
SNIFF_BYTES = 64 * 1024
SMALL = 4096
# Bytes of UTF-8, not characters: file systems cap a name at 255 bytes, and 150 Czech letters
# are 300. What is left of 255 takes the "-N" that keeps names unique within a job.
MAX_NAME = 200
# The work directory scan for artifact patterns stops here: a job may leave millions of files.
SCAN_MAX = 10_000
SCAN_DEPTH = 32
_magic_lock = threading.Lock()
_magic: magic.Magic | None = None


# Every job names its output files alike (stdout.txt, stderr.txt): 2% of a busy executor's
# interpreter went to normalising the same two names again.
@lru_cache(maxsize=256)
def safe_name(name: str) -> str:
    """A flat file name that cannot point anywhere: no separators, no '..', no control chars."""
    name = unicodedata.normalize("NFC", name)
    parts = re.split(r"[/\\]+", name)
    kept = [p for p in parts if p not in ("", ".", "..")]
    flat = "_".join(kept)
    flat = "".join(c for c in flat if c.isprintable() and c != "\x00").strip().lstrip(".-")
    return _fitted(flat, MAX_NAME) or "artifact"


def _fitted(name: str, limit: int) -> str:
    """`name` cut to at most `limit` bytes of UTF-8, never inside a character, keeping a short
    extension (report.csv stays a .csv)."""
    if len(name.encode()) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    tail = f".{ext}" if dot and stem and len(ext.encode()) <= 16 else ""
    body = (stem if tail else name).encode()[: limit - len(tail.encode())]
    return body.decode(errors="ignore") + tail


def mime_of(head: bytes) -> str:
    if not head:
        return "application/x-empty"
    if len(head) <= SMALL:
        return _mime_small(head)
    return _mime(head)


# Short outputs repeat a lot (every run of a job prints the same banner) and libmagic takes
# milliseconds per call: remember the answers for small contents.
@lru_cache(maxsize=1024)
def _mime_small(head: bytes) -> str:
    return _mime(head)


def _mime(head: bytes) -> str:
    # One libmagic handle (its database maps ~8 MB) shared under a lock: handles are not
    # thread-safe, and one per job thread would cost that memory per thread.
    global _magic
    with _magic_lock:
        if _magic is None:
            import magic  # at the first artifact: an executor without any never maps libmagic

            _magic = magic.Magic(mime=True)
        return str(_magic.from_buffer(head))


class _Writer:
    """Hashes and keeps content: in memory up to the inline limit, then in a file."""

    def __init__(self, inline_max: int, disk_path: Path) -> None:
        self.inline_max, self.disk_path = inline_max, disk_path
        self.sha, self.size, self.head = hashlib.sha256(), 0, b""
        self.buf: BinaryIO = io.BytesIO()
        self.on_disk = False

    def write(self, data: bytes) -> None:
        if len(self.head) < SNIFF_BYTES:
            self.head += data[: SNIFF_BYTES - len(self.head)]
        self.sha.update(data)
        self.size += len(data)
        if not self.on_disk and self.size > self.inline_max:
            self.spill()
        self.buf.write(data)

    def spill(self) -> None:
        self.disk_path.parent.mkdir(parents=True, exist_ok=True)
        so_far = self.buf.getvalue() if isinstance(self.buf, io.BytesIO) else b""
        self.buf = open(self.disk_path, "wb")  # noqa: SIM115 - closed in row()
        self.buf.write(so_far)
        self.on_disk = True

    def row(self, job_id: int, name: str, note: str | None) -> dict[str, Any]:
        content = None
        if self.on_disk:
            self.buf.close()
        else:
            content = self.buf.getvalue() if isinstance(self.buf, io.BytesIO) else b""
        return {
            "job_id": job_id,
            "filename": name,
            "mime_type": mime_of(self.head),
            "size": self.size,
            "sha256": self.sha.hexdigest(),
            "content": content,
            "storage_path": str(self.disk_path) if self.on_disk else None,
            "note": note,
        }


class Collector:
    """Builds the artifact rows of one job; names are made safe and unique within the job."""

    def __init__(self, job_id: int, artifact_dir: Path, inline_max: int) -> None:
        self.job_id, self.dir, self.inline_max = job_id, artifact_dir / str(job_id), inline_max
        self.rows: list[dict[str, Any]] = []
        self._names: set[str] = set()

    def _unique(self, name: str) -> str:
        base, n = safe_name(name), 1
        name = base
        while name in self._names:
            n += 1
            stem, dot, ext = base.rpartition(".")
            name = f"{stem}-{n}.{ext}" if dot and stem else f"{base}-{n}"
        self._names.add(name)
        return name

    def add_chunks(
        self, name: str, chunks: Iterable[bytes], note: str | None = None, size: int = 0
    ) -> None:
        """Store chunks as one artifact; a known `size` over the inline limit goes to disk now."""
        name = self._unique(name)
        w = _Writer(self.inline_max, self.dir / name)
        if size > self.inline_max:
            w.spill()
        for chunk in chunks:
            w.write(chunk)
        self.rows.append(w.row(self.job_id, name, note))

    def add_job_file(self, workdir: Path, path: Path, name: str, note: str | None = None) -> None:
        """A file the job left in its work directory (see open_inside)."""
        with os.fdopen(open_inside(workdir, path), "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            self.add_chunks(name, iter(lambda: fh.read(1024 * 1024), b""), note, size)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _open_file(path: Path | str, dir_fd: int | None = None) -> int:
    """A regular file, its last component not followed if it is a link."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path}: not a regular file")
    return fd


def open_inside(workdir: Path, path: Path) -> int:
    """A job's file, read with the daemon's rights (which may exceed the job user's), and the
    job may still have a process running that changes its work directory meanwhile:

    - every component is opened from the work directory's descriptor without following a link,
      so a directory swapped for a link to /etc after files_to_keep checked it is refused
      (O_NOFOLLOW on the path alone guards only its last component);
    - a file with other hard links that the work directory's owner (the job user) does not own
      is refused: a link the job made to a file it cannot read (where the kernel's
      fs.protected_hardlinks does not stop it) must not become its artifact."""
    parts = path.relative_to(workdir).parts
    if not parts:
        raise OSError(f"{path}: not a file")
    flags = os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW
    base = os.open(workdir, flags)
    owner = os.fstat(base).st_uid
    try:
        for part in parts[:-1]:
            inner = os.open(part, flags, dir_fd=base)
            os.close(base)
            base = inner
        fd = _open_file(parts[-1], dir_fd=base)
    finally:
        os.close(base)
    st = os.fstat(fd)
    if st.st_nlink > 1 and st.st_uid != owner:
        os.close(fd)
        raise OSError(f"{path}: another owner's file linked into the work directory")
    return fd


def files_to_keep(workdir: Path, patterns: Iterable[str], result_file: Path | None) -> list[Path]:
    """RESULT_FILE first, then files matching a pattern; only regular files inside workdir.

    Bounded whatever the job left behind: patterns run on RE2 (linear time) and the walk stops
    after SCAN_MAX entries or below SCAN_DEPTH directories (logged), so a job's own files can
    never keep its executor busy.
    """
    regexes = _compile(patterns)
    found: list[Path] = []
    if result_file is not None and _inside_regular(result_file, workdir):
        found.append(result_file)
    if regexes:
        for path, rel in _walk(workdir):
            matched = any(r.search(path.name) or r.search(rel) for r in regexes)
            if matched and path not in found and _inside_regular(path, workdir):
                found.append(path)
    return found


def _walk(workdir: Path) -> Iterator[tuple[Path, str]]:
    """Files under workdir in name order, at most SCAN_MAX entries and SCAN_DEPTH levels deep."""
    seen = 0
    for root, dirs, files in os.walk(workdir, followlinks=False):
        depth = len(Path(root).relative_to(workdir).parts)
        dirs[:] = sorted(dirs) if depth < SCAN_DEPTH else []
        for fname in sorted(files):
            seen += 1
            if seen > SCAN_MAX:
                log.warning("artifact scan of %s stopped after %d files", workdir, SCAN_MAX)
                return
            path = Path(root, fname)
            yield path, str(path.relative_to(workdir))


def _compile(patterns: Iterable[str]) -> list[Matcher]:
    out = []
    for p in patterns:
        try:
            out.append(compile_pattern(p))
        except ExpressionError as exc:  # stored before patterns were checked on save
            log.warning("artifact %s: ignored", exc)
    return out


def _inside_regular(path: Path, workdir: Path) -> bool:
    """A regular file (not a link) whose real location is inside the work directory."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    real = os.path.realpath(path)
    return stat.S_ISREG(st.st_mode) and real.startswith(os.path.realpath(workdir) + os.sep)


def store(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        now = utcnow()
        driver(session).many(job_sql.ARTIFACT_INSERT, [{**r, "created_at": now} for r in rows])


def store_returning(
    session: Session, rows: list[dict[str, Any]]
) -> Callable[[], list[tuple[int, str]]]:
    """store(), sent without waiting (a PostgreSQL pipeline), a statement per ARTIFACT_ROWS
    rows: the function gives each stored artifact's (id, file name) in id order once the
    answers are in, for the action runs a finish hands over with their links."""
    now = utcnow()
    drv = driver(session)
    step = job_sql.ARTIFACT_ROWS
    sent = []
    for start in range(0, len(rows), step):
        part = rows[start : start + step]
        params = {f"{k}_{i}": v for i, r in enumerate(part) for k, v in r.items()}
        params.update({f"created_at_{i}": now for i in range(len(part))})
        sent.append(drv.send_rows(job_sql.ARTIFACT_INSERT_RETURNING[len(part) - 1], params))

    def ids() -> list[tuple[int, str]]:
        return sorted((int(row[0]), str(row[1])) for answer in sent for row in answer())

    return ids


def list_for_job(session: Session, job_id: int) -> list[Artifact]:
    return list(
        session.scalars(select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.id))
    )


def content_of(artifact: Artifact) -> bytes:
    if artifact.content is not None:
        return bytes(artifact.content)
    if artifact.storage_path:
        return Path(artifact.storage_path).read_bytes()
    return b""
