"""Applications: list with tags and search, detail, JSON import with a report, export, enable."""

from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for

from multiflexi_web.extensions import db
from multiflexi_web.models import Application
from multiflexi_web.services.audit import record
from multiflexi_web.services.catalogue.app_export import AppExportError, export_app_json
from multiflexi_web.services.catalogue.app_import import import_app_bytes
from multiflexi_web.services.catalogue.import_common import ImportResult
from multiflexi_web.services.runtemplates.executors import unrunnable
from multiflexi_web.views._change import Audit, Page, commit_change, flash_redirect
from multiflexi_web.views._helpers import flag, get_or_404, global_admin, is_htmx
from multiflexi_web.views.queries.catalogue import applications

bp = Blueprint("applications", __name__, url_prefix="/applications")
MAX_FILES = 50


@bp.get("/")
def index() -> str:
    search = request.args.get("q", "").strip()[:100]
    tag = request.args.get("tag", "").strip()[:64]
    apps = applications(search)
    # Tags live in a JSON list; filtering them here keeps one query for SQLite and PostgreSQL.
    tags = sorted({t for a in apps for t in (a.tags or [])}, key=str.lower)
    if tag:
        apps = [a for a in apps if tag in (a.tags or [])]
    template = "applications/_list.html" if is_htmx() else "applications/index.html"
    return render_template(template, apps=apps, tags=tags, tag=tag, q=search)


@bp.get("/<int:app_id>")
def detail(app_id: int) -> str:
    app = get_or_404(Application, app_id)
    return render_template("applications/detail.html", app=app, unrunnable=unrunnable(app))


@bp.get("/<int:app_id>/export")
def export(app_id: int) -> Response:
    app = get_or_404(Application, app_id)
    try:
        body = export_app_json(app)
    except AppExportError as exc:
        flash(f"Cannot export {app.name}: {exc}", "error")
        return redirect(url_for(".detail", app_id=app.id))  # type: ignore[return-value]
    filename = f"{_safe_name(app.name)}.multiflexi.app.json"
    return Response(
        body,
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.post("/<int:app_id>/enabled")
def set_enabled(app_id: int) -> Page:
    global_admin()
    app = get_or_404(Application, app_id)

    def change() -> str:
        app.enabled = flag("enabled")
        return "enabled" if app.enabled else "disabled"

    return commit_change(
        change,
        lambda state: Audit("update", "application", app.id, f"application {app.name} {state}"),
        lambda state: flash_redirect(f"{app.name} {state}.", ".detail", app_id=app.id),
    )


@bp.route("/import", methods=["GET", "POST"])
def import_() -> str | tuple[str, int]:
    global_admin()
    if request.method == "GET":
        return render_template("applications/import.html", results=None, error=None)
    files = [f for f in request.files.getlist("files") if f.filename][:MAX_FILES]
    if not files:
        error = "Choose at least one *.multiflexi.app.json file."
        return render_template("applications/import.html", results=None, error=error), 400
    results = [import_app_bytes(f.filename or "upload.json", f.read()) for f in files]
    _audit_imports(results)
    db.session.commit()
    return render_template("applications/import.html", results=results, error=None)


def _audit_imports(results: list[ImportResult]) -> None:
    for r in results:
        if not r.failed:
            record("import", "application", r.id, f"application {r.name} {r.status} from {r.file}")


def _safe_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.")
    return cleaned or "application"
