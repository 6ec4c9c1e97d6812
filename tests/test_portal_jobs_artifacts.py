"""Artifact view and download: right bytes, safe names, nothing executable inline."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from multiflexi_web.extensions import db
from multiflexi_web.models import Artifact, Job, Role
from tests.factories import (
    isolate_requests,
    make_artifact,
    make_company,
    make_job,
    make_runtemplate,
)
from tests.portal_b_helpers import member_client

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Each request in its own app context and session, as in production."""
    isolate_requests(app)
    return app.test_client()


def _job(client: FlaskClient) -> Job:
    company = make_company()
    member_client(client, company, Role.VIEWER)
    return make_job(make_runtemplate(company))


def _artifact(job: Job, filename: str, content: bytes, mime: str) -> Artifact:
    art = make_artifact(job, filename=filename, content=content)
    art.mime_type = mime
    db.session.commit()
    return art


def test_json_is_pretty_printed_inline(app: Flask, client: FlaskClient) -> None:
    job = _job(client)
    art = _artifact(job, "result.json", b'{"b":[1,2],"a":"<x>"}', "application/json")
    page = client.get(f"/jobs/{job.id}/artifacts/{art.id}").text
    assert "{\n  &#34;b&#34;: [\n    1,\n    2\n  ],\n  &#34;a&#34;: &#34;&lt;x&gt;&#34;\n}" in page


def test_download_is_an_attachment_with_exact_bytes(app: Flask, client: FlaskClient) -> None:
    job = _job(client)
    content = bytes(range(256)) * 10
    art = _artifact(job, "../../etc/da ta\r\n.bin", content, "application/octet-stream")
    resp = client.get(f"/jobs/{job.id}/artifacts/{art.id}/download")
    assert resp.status_code == 200 and resp.data == content
    disposition = resp.headers["Content-Disposition"]
    assert (
        disposition.startswith("attachment;") and "/" not in disposition and "\n" not in disposition
    )
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.mimetype == "application/octet-stream"
    assert "sandbox" in resp.headers["Content-Security-Policy"]


def test_html_and_svg_are_shown_as_escaped_text_never_inline(
    app: Flask, client: FlaskClient
) -> None:
    job = _job(client)
    html = _artifact(job, "report.html", b"<script>alert(1)</script>", "text/html")
    svg = _artifact(job, "x.svg", b"<svg onload=alert(1)></svg>", "image/svg+xml")
    page = client.get(f"/jobs/{job.id}/artifacts/{html.id}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    svg_page = client.get(f"/jobs/{job.id}/artifacts/{svg.id}").text
    assert "&lt;svg onload" in svg_page and "<img" not in svg_page.split("<main>")[1]
    assert client.get(f"/jobs/{job.id}/artifacts/{svg.id}/image").status_code == 404
    download = client.get(f"/jobs/{job.id}/artifacts/{html.id}/download")
    assert download.headers["Content-Disposition"].startswith("attachment")


def test_png_is_shown_inline_as_an_image(app: Flask, client: FlaskClient) -> None:
    job = _job(client)
    art = _artifact(job, "chart.png", PNG, "image/png")
    page = client.get(f"/jobs/{job.id}/artifacts/{art.id}").text
    assert f'src="/jobs/{job.id}/artifacts/{art.id}/image"' in page
    img = client.get(f"/jobs/{job.id}/artifacts/{art.id}/image")
    assert img.data == PNG and img.mimetype == "image/png"
    assert "attachment" not in img.headers.get("Content-Disposition", "")


def test_large_artifact_on_disk_is_served_only_from_the_artifact_folder(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    job = _job(client)
    folder = Path(app.config["MULTIFLEXI"].artifact_dir) / str(job.id)
    folder.mkdir(parents=True)
    data = b"x" * 100_000
    (folder / "big.log").write_bytes(data)
    art = _artifact(job, "big.log", b"", "text/plain")
    art.content, art.storage_path, art.size = None, str(folder / "big.log"), len(data)
    outside = tmp_path / "secret.txt"
    outside.write_text("not yours")
    other = _artifact(job, "evil.txt", b"", "text/plain")
    other.content, other.storage_path = None, str(outside)
    db.session.commit()
    resp = client.get(f"/jobs/{job.id}/artifacts/{art.id}/download")
    assert hashlib.sha256(resp.data).hexdigest() == hashlib.sha256(data).hexdigest()
    assert client.get(f"/jobs/{job.id}/artifacts/{other.id}/download").status_code == 404


def test_artifact_of_another_job_or_company_is_not_found(app: Flask, client: FlaskClient) -> None:
    job = _job(client)
    foreign_job = make_job(make_runtemplate(make_company()))
    foreign = make_artifact(foreign_job)
    sibling = make_job(make_runtemplate(job.company))
    mine = make_artifact(sibling)
    assert client.get(f"/jobs/{foreign_job.id}/artifacts/{foreign.id}").status_code == 404
    assert client.get(f"/jobs/{job.id}/artifacts/{foreign.id}/download").status_code == 404
    assert client.get(f"/jobs/{job.id}/artifacts/{mine.id}/download").status_code == 404
    assert client.get(f"/jobs/{sibling.id}/artifacts/{mine.id}/download").status_code == 200
