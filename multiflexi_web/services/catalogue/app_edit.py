"""Creating and editing an application from the portal, through the JSON importer's own rules."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError

from multiflexi_web.errors import first_line
from multiflexi_web.extensions import db
from multiflexi_web.models import Application, RunTemplate, RunTemplateConfig
from multiflexi_web.services.catalogue.app_export import SCHEMA_URL, app_document
from multiflexi_web.services.catalogue.app_import import KIND, import_app_document
from multiflexi_web.services.catalogue.app_schema import app_validator
from multiflexi_web.services.catalogue.import_common import ImportResult
from multiflexi_web.services.catalogue.json_load import FileImportError, schema_problems

# check_lengths says "<column> is longer than N characters" at the object's path.
_TOO_LONG = re.compile(r"^(\w+) (is longer than .*)$")


class AppEditError(ValueError):
    """The definition was refused; `problems` holds (JSON path, reason) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {reason}" for path, reason in problems))


@dataclass
class AppSaved:
    """What a save did: the changes the importer reports, and RunTemplates left with values
    for fields that are gone (removed key -> their names)."""

    app: Application
    created: bool
    changes: list[str] = field(default_factory=list)
    orphaned: dict[str, list[str]] = field(default_factory=dict)


def base_document(app: Application | None) -> dict[str, Any]:
    """The document a form edits: the stored app (keeping what the form does not show) or,
    for a new app, a skeleton with a fresh uuid (never matched to another app by name)."""
    if app is not None:
        return app_document(app)
    return {"$schema": SCHEMA_URL, "uuid": str(uuid.uuid4()), "environment": {}}


def save_app(doc: dict[str, Any], app: Application | None, source: str) -> AppSaved:
    """Validate `doc` with the importer's schema and rules and store it (add + flush)."""
    problems = schema_problems(doc, app_validator())
    if problems:
        raise AppEditError(problems)
    before = {f.keyname for f in app.fields} if app is not None else set()
    result = ImportResult(source, kind=KIND)
    try:
        with db.session.begin_nested():
            saved = import_app_document(source, doc, result)
    except FileImportError as exc:
        raise AppEditError([_problem(source, str(exc))]) from None
    except (IntegrityError, DataError) as exc:
        reason = f"the database refused it: {first_line(exc.orig or exc)}"
        raise AppEditError([("$", reason)]) from None
    removed = before - {f.keyname for f in saved.fields}
    return AppSaved(saved, app is None, result.changes, orphaned_values(saved.id, removed))


def orphaned_values(app_id: int, keys: set[str]) -> dict[str, list[str]]:
    """RunTemplates of the app holding a value for one of `keys` (values are kept)."""
    if not keys:
        return {}
    rows = db.session.execute(
        select(RunTemplateConfig.key, RunTemplate.name)
        .join(RunTemplate, RunTemplate.id == RunTemplateConfig.runtemplate_id)
        .where(RunTemplate.application_id == app_id, RunTemplateConfig.key.in_(keys))
        .order_by(RunTemplateConfig.key, RunTemplate.name)
    )
    found: dict[str, list[str]] = {}
    for key, name in rows:
        found.setdefault(key, []).append(name)
    return found


def _problem(source: str, message: str) -> tuple[str, str]:
    """An importer message ("<source>: $.path: reason") as a (path, reason) pair."""
    message = message.removeprefix(f"{source}: ")
    path, sep, reason = message.partition(": ")
    if not sep or not path.startswith("$"):
        return "$", message
    long = _TOO_LONG.match(reason)
    return (f"{path}.{long.group(1)}", long.group(2)) if long else (path, reason)
