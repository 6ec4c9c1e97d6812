"""`multiflexi app ...` and `multiflexi credential-prototype ...`"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from sqlalchemy import func, select

from multiflexi_web.cli.common import domain_errors, emit, format_option, printable
from multiflexi_web.db.engine import write_session
from multiflexi_web.extensions import db
from multiflexi_web.models import Application, CredentialPrototype, CredentialPrototypeField
from multiflexi_web.security.secrets import MASK
from multiflexi_web.services import audit
from multiflexi_web.services.catalogue.app_export import AppExportError, export_app_json
from multiflexi_web.services.catalogue.app_import import import_app_paths, import_demo_apps
from multiflexi_web.services.catalogue.applications import ApplicationError, get_application
from multiflexi_web.services.catalogue.credentials import CredentialError, get_prototype
from multiflexi_web.services.catalogue.credproto_import import import_credproto_paths
from multiflexi_web.services.catalogue.fields import is_secret_field
from multiflexi_web.services.catalogue.import_common import ImportResult

APP_COLUMNS = ["id", "uuid", "name", "version", "enabled", "tags"]
PROTO_COLUMNS = ["id", "code", "name", "version", "source_format", "fields"]
FIELD_COLUMNS = ["type", "required", "secret", "default", "description"]
paths_argument = click.argument(
    "paths", nargs=-1, type=click.Path(path_type=Path), metavar="PATH..."
)


def app_row(a: Application) -> dict[str, Any]:
    return {
        "id": a.id,
        "uuid": a.uuid,
        "name": a.name,
        "version": a.version,
        "enabled": a.enabled,
        "tags": a.tags,
    }


def app_detail(a: Application) -> dict[str, Any]:
    fields = [
        {
            "keyname": f.keyname,
            "type": f.type,
            "required": f.required,
            "secret": is_secret_field(f),
            "default": MASK if is_secret_field(f) and f.default else f.default,
            "description": f.description,
        }
        for f in a.fields
    ]
    codes = {
        str(c.code): {"description": c.description, "severity": c.severity} for c in a.exit_codes
    }
    return app_row(a) | {
        "description": a.description,
        "executable": a.executable,
        "cmdparams": a.cmdparams,
        "cmdparams_template": a.cmdparams_template,
        "homepage": a.homepage,
        "ociimage": a.ociimage,
        "requirements": a.requirements,
        "artifacts": [art.get("path") for art in a.artifacts],
        "fields": fields,
        "exit_codes": codes,
    }


def show_detail(detail: dict[str, Any], fmt: str, key: str) -> None:
    """JSON as is; as text the scalar values, then the fields as a table."""
    if fmt == "json":
        emit(detail, fmt, [])
        return
    emit({k: v for k, v in detail.items() if k != "fields"}, fmt, [])
    click.echo("")
    emit(detail["fields"], fmt, [key, *FIELD_COLUMNS])


def report(results: list[ImportResult], fmt: str) -> None:
    """Print one line per file (or the JSON report) and exit non-zero when any failed."""
    if fmt == "json":
        emit([r.as_dict() for r in results], fmt, [])
    else:
        for r in results:
            _report_line(r)
    if any(r.failed for r in results):
        raise SystemExit(1)


def _report_line(r: ImportResult) -> None:
    # Names and messages from the imported file, which may come from anyone's catalogue.
    if r.failed:
        click.echo(printable(f"failed    {r.error}"))
        return
    click.echo(printable(f"{r.status:<9} {r.file}: {r.name} ({r.uuid})"))
    for warning in r.warnings:
        click.echo(printable(f"          warning: {warning}"))
    if r.changes:
        click.echo(printable(f"          changes: {', '.join(r.changes)}"))


def _audit(results: list[ImportResult], entity: str) -> None:
    for r in results:
        if not r.failed:
            audit.record("import", entity, r.id, f"{entity} {r.name} {r.status} from {r.file}")


@click.group("app")
def app_group() -> None:
    """Applications: import, export and list MultiFlexi app definitions."""


@app_group.command("import")
@paths_argument
@click.option("--demo", is_flag=True, help="Also import the bundled demo applications.")
@format_option
def import_(paths: tuple[Path, ...], demo: bool, fmt: str) -> None:
    """Import app JSON files, or every *.json file of the given folders."""
    if not paths and not demo:
        raise click.UsageError("give at least one PATH (file or folder), or --demo")
    write_session(db.session())
    results = (import_demo_apps() if demo else []) + import_app_paths(paths)
    _audit(results, "application")
    db.session.commit()
    report(results, fmt)


@app_group.command("list")
@format_option
def list_(fmt: str) -> None:
    """List applications."""
    apps = db.session.scalars(select(Application).order_by(Application.name, Application.id))
    emit([app_row(a) for a in apps], fmt, APP_COLUMNS)


@app_group.command("show")
@click.argument("ref", metavar="ID|UUID")
@format_option
@domain_errors(ApplicationError)
def show(ref: str, fmt: str) -> None:
    """Show an application with its config fields (secret defaults masked)."""
    show_detail(app_detail(get_application(ref)), fmt, "keyname")


@app_group.command("export")
@click.argument("ref", metavar="ID|UUID")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
@domain_errors(ApplicationError, AppExportError)
def export(ref: str, output: Path | None) -> None:
    """Write an application as MultiFlexi app JSON (to stdout, or to a file with -o)."""
    text = export_app_json(get_application(ref))
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    click.echo(f"exported to {output}")


def _set_enabled(ref: str, enabled: bool, fmt: str) -> None:
    write_session(db.session())
    app = get_application(ref)
    app.enabled = enabled
    word = "enable" if enabled else "disable"
    audit.record(word, "application", app.id, f"application {app.name} {word}d")
    db.session.commit()
    emit(app_row(app), fmt, APP_COLUMNS)


@app_group.command("enable")
@click.argument("ref", metavar="ID|UUID")
@format_option
@domain_errors(ApplicationError)
def enable(ref: str, fmt: str) -> None:
    """Allow the application to be scheduled and run."""
    _set_enabled(ref, True, fmt)


@app_group.command("disable")
@click.argument("ref", metavar="ID|UUID")
@format_option
@domain_errors(ApplicationError)
def disable(ref: str, fmt: str) -> None:
    """Keep the application, but stop it from being scheduled and run."""
    _set_enabled(ref, False, fmt)


def proto_row(p: CredentialPrototype, field_count: int) -> dict[str, Any]:
    return {
        "id": p.id,
        "code": p.code,
        "name": p.name,
        "version": p.version,
        "source_format": p.source_format,
        "fields": field_count,
        "uuid": p.uuid,
    }


@click.group("credential-prototype")
def credproto_group() -> None:
    """Credential prototypes: the kinds of credential applications require."""


@credproto_group.command("import")
@paths_argument
@format_option
def credproto_import(paths: tuple[Path, ...], fmt: str) -> None:
    """Import *.credprototype.json / *.credtype.json files, or folders of them."""
    if not paths:
        raise click.UsageError("give at least one PATH (file or folder)")
    write_session(db.session())
    results = import_credproto_paths(paths)
    _audit(results, "credential_prototype")
    db.session.commit()
    report(results, fmt)


@credproto_group.command("list")
@format_option
def credproto_list(fmt: str) -> None:
    """List credential prototypes."""
    protos = db.session.scalars(select(CredentialPrototype).order_by(CredentialPrototype.code))
    counts = _field_counts()
    emit([proto_row(p, counts.get(p.id, 0)) for p in protos], fmt, PROTO_COLUMNS)


def _field_counts() -> dict[int, int]:
    pid = CredentialPrototypeField.prototype_id
    rows = db.session.execute(select(pid, func.count()).group_by(pid))
    return {pid: n for pid, n in rows}


@credproto_group.command("show")
@click.argument("code")
@format_option
@domain_errors(CredentialError)
def credproto_show(code: str, fmt: str) -> None:
    """Show a credential prototype and its fields."""
    p = get_prototype(code)
    fields = [
        {
            "keyword": f.keyword,
            "type": f.type,
            "required": f.required,
            "secret": is_secret_field(f),
            "default": MASK if is_secret_field(f) and f.default else f.default,
            "description": f.description,
        }
        for f in p.fields
    ]
    extra = {"description": p.description, "homepage": p.homepage, "tags": p.tags}
    show_detail(proto_row(p, len(fields)) | extra | {"fields": fields}, fmt, "keyword")
