"""A job's artifacts: inline view of text, JSON and images, and safe downloads."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from flask import Blueprint, abort, render_template, send_file
from werkzeug.wrappers import Response

from multiflexi_web.models import Artifact, Job, Role
from multiflexi_web.services import settings
from multiflexi_web.services.jobs.artifacts import content_of, safe_name
from multiflexi_web.views._helpers import get_or_404, owned_by_company

bp = Blueprint("job_artifacts", __name__, url_prefix="/jobs")
INLINE_VIEW_MAX = 2 * 1024 * 1024
# Raster images are shown inline; SVG and HTML never are (they can carry script).
INLINE_IMAGES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"}
_MIME_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
_TEXT_SUFFIXES = (".txt", ".log", ".csv", ".json", ".xml", ".yaml", ".yml", ".md", ".html", ".svg")


def _artifact(job_id: int, artifact_id: int) -> Artifact:
    owned_by_company(Job, job_id, Role.VIEWER)
    artifact = get_or_404(Artifact, artifact_id)
    if artifact.job_id != job_id:
        abort(404)
    return artifact


def view_kind(artifact: Artifact) -> str:
    """How the page shows it: "image", "json", "text", or "none" (download only)."""
    mime = artifact.mime_type.split(";")[0].strip().lower()
    if mime in INLINE_IMAGES:
        return "image"
    if artifact.size > INLINE_VIEW_MAX:
        return "none"
    if mime == "application/json" or artifact.filename.lower().endswith(".json"):
        return "json"
    if mime.startswith("text/") or mime in {
        "application/xml",
        "image/svg+xml",
        "application/x-empty",
    }:
        return "text"
    return "text" if artifact.filename.lower().endswith(_TEXT_SUFFIXES) else "none"


def _as_text(data: bytes, kind: str) -> str:
    text = data.decode("utf-8", errors="replace")
    if kind == "json":
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):  # not JSON after all, or nested too deep to indent
            return text
    return text


@bp.get("/<int:job_id>/artifacts/<int:artifact_id>")
def view(job_id: int, artifact_id: int) -> str:
    artifact = _artifact(job_id, artifact_id)
    kind = view_kind(artifact)
    body = _as_text(content_of(artifact), kind) if kind in {"json", "text"} else None
    return render_template("jobs/artifact.html", artifact=artifact, kind=kind, body=body)


@bp.get("/<int:job_id>/artifacts/<int:artifact_id>/download")
def download(job_id: int, artifact_id: int) -> Response:
    return send_artifact(_artifact(job_id, artifact_id), attachment=True)


@bp.get("/<int:job_id>/artifacts/<int:artifact_id>/image")
def image(job_id: int, artifact_id: int) -> Response:
    """The raw bytes of a raster image for <img>; anything else is refused."""
    artifact = _artifact(job_id, artifact_id)
    if view_kind(artifact) != "image":
        abort(404)
    return send_artifact(artifact, attachment=False)


def send_artifact(artifact: Artifact, *, attachment: bool) -> Response:
    mime = artifact.mime_type.split(";")[0].strip().lower()
    if not _MIME_RE.match(mime):
        mime = "application/octet-stream"
    path = _disk_path(artifact)
    source: Path | io.BytesIO = path if path else io.BytesIO(content_of(artifact))
    resp = send_file(
        source,
        mimetype=mime,
        as_attachment=attachment,
        download_name=safe_name(artifact.filename),
        conditional=False,
        etag=artifact.sha256 or False,
    )
    resp.headers["X-Content-Type-Options"] = "nosniff"
    # Even if a browser renders it, nothing in it may run or load anything.
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


def _disk_path(artifact: Artifact) -> Path | None:
    """A large artifact's file, only when it really lies under the artifact folder."""
    if artifact.content is not None or not artifact.storage_path:
        return None
    root = Path(settings().artifact_dir).resolve()
    path = Path(artifact.storage_path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        abort(404, description="the artifact's file is missing from the artifact folder")
    return path
