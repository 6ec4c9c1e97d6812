"""The artifact files of a backup: copied from where the snapshot says they are, each checked
against the sha256 the snapshot recorded, and put back only inside the artifact folder."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from multiflexi_web.services.backup.manifest import ARTIFACTS, BackupError, write_private
from multiflexi_web.services.backup.snapshot import FileRef

INDEX = "index.json"
CHUNK = 1024 * 1024


@dataclass
class Copied:
    files: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)  # named, but absent or changed on disk


def save(refs: Iterable[FileRef], artifact_dir: Path, folder: Path) -> Copied:
    """Copy each file into `folder`/artifacts/<job id>/, as `index.json` lists them."""
    out, done = folder / ARTIFACTS, Copied()
    kept: list[dict[str, object]] = []
    root = artifact_dir.resolve()
    for ref in refs:
        source = Path(ref.path)
        if not _inside(source, root):
            # A row pointing outside the artifact folder is not the platform's file to copy.
            done.missing.append(f"{ref.path} (outside {root})")
            continue
        target = out / str(ref.job_id) / f"{len(kept)}-{source.name}"
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            digest, size = _copy(source, target)
        except OSError as exc:
            done.missing.append(f"{ref.path} ({exc.strerror or exc})")
            continue
        if digest != ref.sha256:
            target.unlink()
            done.missing.append(f"{ref.path} (its content differs from the recorded sha256)")
            continue
        kept.append({**asdict(ref), "saved": str(target.relative_to(out))})
        done.files, done.bytes = done.files + 1, done.bytes + size
    out.mkdir(exist_ok=True, mode=0o700)
    write_private(out / INDEX, json.dumps(kept, indent=1) + "\n")
    return done


@dataclass(frozen=True)
class Restore:
    """One file to put back: its copy in the backup, where it goes, what it must hash to."""

    saved: Path
    target: Path
    sha256: str


def check_restorable(folder: Path, old_dir: str, new_dir: str) -> list[Restore]:
    """The files to put back, each at its place under `new_dir` (this installation's artifact
    folder) that it had under `old_dir` (the backup's, as configured there); BackupError naming
    the first one that could not go there or is not in the backup."""
    out = folder / ARTIFACTS
    try:
        entries = json.loads((out / INDEX).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{out / INDEX}: unreadable ({exc})") from None
    root, found = Path(new_dir).resolve(), []
    for entry in entries:
        try:
            target = Path(new_dir) / Path(entry["path"]).relative_to(old_dir)
        except ValueError:
            raise BackupError(
                f"artifact {entry['path']}: not under the backup's artifact folder {old_dir}"
            ) from None
        if not _inside(target, root):
            raise BackupError(f"artifact {entry['path']}: would go outside {root}")
        saved = out / entry["saved"]
        if not _inside(saved, out.resolve()) or not saved.is_file():
            raise BackupError(f"artifact {entry['path']}: its copy {entry['saved']} is missing")
        found.append(Restore(saved, target, entry["sha256"]))
    return found


def put_back(files: list[Restore]) -> int:
    """Copy the files back where the restored database expects them; their count."""
    for item in files:
        item.target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        digest, _ = _copy(item.saved, item.target)
        if digest != item.sha256:
            raise BackupError(f"artifact {item.saved}: its copy changed since the backup")
    return len(files)


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root)


def _copy(source: Path, target: Path) -> tuple[str, int]:
    """Copy without following a link at either end; the sha256 and size of what was copied."""
    digest, size = hashlib.sha256(), 0
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as src:
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(out, "wb") as dst:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                dst.write(chunk)
                size += len(chunk)
    return digest.hexdigest(), size
