"""A malformed metrics Authorization header is a 401, never a server error.

`hmac.compare_digest` raises TypeError for str arguments with non-ASCII characters; a WSGI
header is latin-1 text, so an unauthenticated scraper sending one byte >= 0x80 crashes the
check (portal: 500 with an error page and a logged traceback; daemon port: wsgiref's 500).
"""

from __future__ import annotations

from pathlib import Path

from werkzeug.test import Client
from werkzeug.wrappers import Response

from multiflexi_web import create_app
from multiflexi_web.metrics.server import bearer_ok, guarded
from tests.conftest import make_settings, reset_schema


def test_bearer_check_refuses_non_ascii_instead_of_raising() -> None:
    assert bearer_ok("Bearer s3cret-m\xe9trics", "s3cret-metrics") is False


def test_daemon_port_answers_401_to_non_ascii_header() -> None:
    def inner(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"multiflexi_x 1\n"]

    client = Client(guarded(inner, "s3cret-metrics"), Response)
    resp = client.get("/", headers={"Authorization": "Bearer \xe9"})
    assert resp.status_code == 401


def test_portal_metrics_answers_401_to_non_ascii_header(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path, metrics_token="s3cret-metrics")
    app = create_app({"TESTING": False}, settings=settings)
    with app.app_context():
        reset_schema()
    resp = app.test_client().get("/metrics", headers={"Authorization": "Bearer caf\xe9"})
    assert resp.status_code == 401, resp.status_code
