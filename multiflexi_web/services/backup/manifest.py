"""What a backup holds, written last into its folder: a folder without it is not a backup."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

FORMAT = 1
NAME = "manifest.json"
SQLITE_FILE, PG_FILE = "database.sqlite", "database.pgdump"
ARTIFACTS = "artifacts"


class BackupError(ValueError):
    """A backup cannot be made or put back; the message names the thing and the reason."""


@dataclass(frozen=True)
class Manifest:
    created_at: str  # ISO 8601, UTC: the moment of the database snapshot
    database: str  # "sqlite" | "postgresql"
    schema_revision: str | None
    version: str  # this program's version that made it
    artifact_dir: str  # where the artifacts lived (their paths in the database)
    jobs: int
    artifact_files: int
    artifact_bytes: int
    missing_files: list[str] = field(default_factory=list)  # named in the database, not on disk
    format: int = FORMAT

    @property
    def database_file(self) -> str:
        return SQLITE_FILE if self.database == "sqlite" else PG_FILE

    def write(self, folder: Path) -> None:
        write_private(folder / NAME, json.dumps(asdict(self), indent=2) + "\n")


def create_private(path: Path) -> Path:
    """A new empty file only the platform's user may read, whatever the process's umask: a
    backup holds every tenant's jobs, output and (encrypted) credentials."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    return path


def write_private(path: Path, text: str) -> None:
    create_private(path).write_text(text)


def read(folder: Path) -> Manifest:
    path = folder / NAME
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(f"{folder}: no {NAME}, not a complete backup") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path}: unreadable ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise BackupError(f"{path}: not a backup of format {FORMAT}")
    try:
        return Manifest(**raw)
    except TypeError as exc:
        raise BackupError(f"{path}: {exc}") from None
