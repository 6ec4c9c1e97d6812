"""Credential prototypes: list, detail, and import of *.credprototype.json / *.credtype.json."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from multiflexi_web.extensions import db
from multiflexi_web.models import CredentialPrototype
from multiflexi_web.services.audit import record
from multiflexi_web.services.catalogue.credproto_import import import_credproto_bytes
from multiflexi_web.views._helpers import get_or_404, global_admin
from multiflexi_web.views.queries.catalogue import prototypes

bp = Blueprint("credprototypes", __name__, url_prefix="/credential-prototypes")
MAX_FILES = 50


@bp.get("/")
def index() -> str:
    code = request.args.get("code", "").strip()[:64]
    return render_template("credprototypes/index.html", prototypes=prototypes(code), code=code)


@bp.get("/<int:prototype_id>")
def detail(prototype_id: int) -> str:
    proto = get_or_404(CredentialPrototype, prototype_id)
    return render_template("credprototypes/detail.html", proto=proto)


@bp.route("/import", methods=["GET", "POST"])
def import_() -> str | tuple[str, int]:
    global_admin()
    if request.method == "GET":
        return render_template("credprototypes/import.html", results=None, error=None)
    files = [f for f in request.files.getlist("files") if f.filename][:MAX_FILES]
    if not files:
        error = "Choose at least one *.credprototype.json or *.credtype.json file."
        return render_template("credprototypes/import.html", results=None, error=error), 400
    results = [import_credproto_bytes(f.filename or "upload.json", f.read()) for f in files]
    for r in results:
        if not r.failed:
            record("import", "credential_prototype", r.id, f"prototype {r.name} {r.status}")
    db.session.commit()
    return render_template("credprototypes/import.html", results=results, error=None)
