"""Shared parts of the JSON importers: per-file reports, savepoints, localized text, field types."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError

from multiflexi_web.errors import first_line
from multiflexi_web.extensions import db
from multiflexi_web.models import Base, FieldType
from multiflexi_web.services.catalogue.json_load import FileImportError

# Older app files and the credential formats spell field types differently.
TYPE_ALIASES = {
    "directory": FieldType.FILE_PATH.value,
    "file": FieldType.FILE_PATH.value,
    "checkbox": FieldType.BOOL.value,
    "boolean": FieldType.BOOL.value,
    "switch": FieldType.BOOL.value,
    "number": FieldType.INTEGER.value,
    "select": FieldType.SET.value,
    "textarea": FieldType.TEXT.value,
    "secret": FieldType.PASSWORD.value,
}
CANONICAL_TYPES = {t.value for t in FieldType}


@dataclass
class ImportResult:
    """What happened to one file: imported, updated or failed, and why."""

    file: str
    status: str = "failed"
    kind: str = ""
    id: int | None = None
    name: str | None = None
    uuid: str | None = None
    warnings: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


ImportOne = Callable[[Path, ImportResult], None]


def run_imports(
    paths: Iterable[str | Path], kind: str, import_one: ImportOne
) -> list[ImportResult]:
    """Import each file, and each `*.json` file of each folder, on its own."""
    results: list[ImportResult] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            results.append(import_file(path, kind, import_one))
            continue
        files = sorted(p for p in path.glob("*.json") if p.is_file())
        if not files:
            results.append(ImportResult(str(path), kind=kind, error=f"{path}: no *.json files"))
        results.extend(import_file(p, kind, import_one) for p in files)
    return results


def import_file(path: Path, kind: str, import_one: ImportOne) -> ImportResult:
    """One file in its own savepoint: a failure leaves nothing of it behind."""
    result = ImportResult(str(path), kind=kind)
    try:
        with db.session.begin_nested():
            import_one(path, result)
    except FileImportError as exc:
        result.status, result.error = "failed", str(exc)
    except (IntegrityError, DataError) as exc:
        reason = first_line(exc.orig or exc)
        result.status, result.error = "failed", f"{path}: the database refused it: {reason}"
    return result


def localized(value: Any) -> tuple[str, dict[str, str] | None]:
    """The text for a column (`en`, else the first language) and the originals when localized."""
    if isinstance(value, dict):
        text = value["en"] if "en" in value else next(iter(value.values()), "")
        return str(text), dict(value)
    return ("" if value is None else str(value)), None


def localized_out(text: str | None, originals: Any) -> Any:
    """Back to file form: the originals while the column still holds one of their texts."""
    if isinstance(originals, dict) and text in originals.values():
        return originals
    return text


def normalise_type(raw: str) -> tuple[str, bool]:
    """(canonical field type, whether the spelling was known); unknown types become string."""
    low = raw.strip().lower()
    if low in CANONICAL_TYPES:
        return low, True
    if low in TYPE_ALIASES:
        return TYPE_ALIASES[low], True
    return FieldType.STRING.value, False


def default_text(value: Any) -> str | None:
    """A default of any JSON type as the stored string ('true'/'false' for booleans)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


def check_lengths(model: type[Base], values: dict[str, Any], where: str) -> None:
    """Refuse text longer than its column before the database does (`where` names the place)."""
    columns = model.__table__.columns
    for key, value in values.items():
        length = getattr(columns[key].type, "length", None) if key in columns else None
        if isinstance(value, str) and length is not None and len(value) > length:
            raise FileImportError(f"{where}: {key} is longer than {length} characters")
