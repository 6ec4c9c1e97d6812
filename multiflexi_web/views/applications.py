"""Applications: list with tags and search, detail, editor, JSON import with a report, export."""

from __future__ import annotations

import io
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)

from multiflexi_web.extensions import db
from multiflexi_web.models import Application
from multiflexi_web.security.secrets import MASK
from multiflexi_web.services.audit import record
from multiflexi_web.services.catalogue.app_edit import (
    AppEditError,
    AppSaved,
    base_document,
    save_app,
)
from multiflexi_web.services.catalogue.app_export import AppExportError, export_app_json
from multiflexi_web.services.catalogue.app_import import import_app_bytes
from multiflexi_web.services.catalogue.import_common import ImportResult
from multiflexi_web.services.runtemplates.executors import unrunnable
from multiflexi_web.views._change import Audit, Page, commit_change, flash_redirect
from multiflexi_web.views._helpers import (
    flag,
    get_or_404,
    global_admin,
    int_arg,
    is_htmx,
    me,
    page_size,
)
from multiflexi_web.views.app_form import (
    FIELD_TYPES,
    SEVERITIES,
    AppForm,
    ArtifactRow,
    ExitRow,
    FieldRow,
    errors_by_input,
)
from multiflexi_web.views.queries.catalogue import application_query, application_tags
from multiflexi_web.views.queries.paging import paginate

bp = Blueprint("applications", __name__, url_prefix="/applications")
MAX_FILES = 50
ROW_KINDS = {"field": FieldRow, "artifact": ArtifactRow, "exit": ExitRow}
MAX_ROW_INDEX = 9999  # app_form.ROW_INPUT reads up to four digits


@bp.get("/")
def index() -> str:
    search = request.args.get("q", "").strip()[:100]
    tag = request.args.get("tag", "").strip()[:64]
    query = application_query(search, tag)
    page = paginate(query, Application.id, int_arg("page") or 1, page_size())
    template = "applications/_list.html" if is_htmx() else "applications/index.html"
    filters = {"q": search, "tag": tag, "limit": request.args.get("limit")}
    return render_template(
        template, page=page, tags=application_tags(), tag=tag, q=search, filters=filters
    )


@bp.get("/<int:app_id>")
def detail(app_id: int) -> str:
    app = get_or_404(Application, app_id)
    return render_template("applications/detail.html", app=app, unrunnable=unrunnable(app))


@bp.route("/new", methods=["GET", "POST"])
def new() -> Page:
    global_admin()
    if request.method == "GET":
        return _editor(AppForm(), None)
    return _save(None)


@bp.route("/<int:app_id>/edit", methods=["GET", "POST"])
def edit(app_id: int) -> Page:
    global_admin()
    app = get_or_404(Application, app_id)
    if request.method == "GET":
        return _editor(AppForm.from_app(app), app)
    return _save(app)


@bp.get("/row")
def row() -> str:
    """One more empty row for the editor's table `kind` at index `i` (htmx "add a row")."""
    global_admin()
    kind, index = request.args.get("kind", "field"), int_arg("i") or 0
    if kind not in ROW_KINDS or index > MAX_ROW_INDEX:
        abort(404)
    return render_template(
        "applications/_row.html", kind=kind, i=index, row=ROW_KINDS[kind](), **_editor_context()
    )


def _save(app: Application | None) -> Page:
    form = AppForm.from_request(request.form)
    doc, inputs = form.document(base_document(app))
    if form.problems:
        return _editor(form, app, form.problems), 400

    def refused(exc: ValueError) -> tuple[str, int]:
        problems = exc.problems if isinstance(exc, AppEditError) else [("$", str(exc))]
        reloaded = get_or_404(Application, app.id) if app is not None else None
        return _editor(form, reloaded, errors_by_input(problems, inputs, form.row_keys())), 400

    return commit_change(
        lambda: save_app(doc, app, f"portal form by {me().login}"),
        _audit_save,
        _saved,
        refused,
        (AppEditError,),
    )


def _audit_save(saved: AppSaved) -> Audit:
    verb = "created" if saved.created else "updated"
    details: dict[str, Any] = {"changes": saved.changes}
    if saved.orphaned:
        details["orphaned_values"] = saved.orphaned
    summary = f"application {saved.app.name} {verb} in the portal"
    return Audit(
        "create" if saved.created else "update", "application", saved.app.id, summary, details
    )


def _saved(saved: AppSaved) -> Page:
    for key, names in saved.orphaned.items():
        flash(
            f"Field {key} was removed; these RunTemplates still hold a value for it (kept, "
            f"no longer shown): {', '.join(names)}.",
            "error",
        )
    verb = "created" if saved.created else "saved"
    return flash_redirect(f"Application {saved.app.name} {verb}.", ".detail", app_id=saved.app.id)


def _editor(form: AppForm, app: Application | None, errors: dict[str, str] | None = None) -> str:
    return render_template(
        "applications/form.html", form=form, app=app, errors=errors or {}, **_editor_context()
    )


def _editor_context() -> dict[str, Any]:
    blank = {"field": FieldRow(), "artifact": ArtifactRow(), "exit": ExitRow()}
    return {"field_types": FIELD_TYPES, "severities": SEVERITIES, "mask": MASK, "blank": blank}


@bp.get("/<int:app_id>/export")
def export(app_id: int) -> Response:
    app = get_or_404(Application, app_id)
    try:
        body = export_app_json(app, secret_defaults=me().is_admin)
    except AppExportError as exc:
        flash(f"Cannot export {app.name}: {exc}", "error")
        return redirect(url_for(".detail", app_id=app.id))  # type: ignore[return-value]
    # send_file writes the header as RFC 6266 wants (filename*=UTF-8''...): a name such as
    # "Přehled faktur" written raw is not Latin-1, and gunicorn failed to send the response.
    return send_file(
        io.BytesIO(body.encode()),
        mimetype="application/json",
        as_attachment=True,
        download_name=f"{_safe_name(app.name)}.multiflexi.app.json",
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
