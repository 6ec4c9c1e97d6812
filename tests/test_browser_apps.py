"""The application editor in a real Chromium: add field rows with htmx, see an error, save.

Screenshots go to docs/screenshots/ with MULTIFLEXI_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from multiflexi_web import create_app
from multiflexi_web.extensions import db
from multiflexi_web.models import Application, Base
from tests.conftest import make_settings
from tests.factories import PASSWORD, make_user
from tests.services import need
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, DOCS_SCREENSHOTS, REPORT_VIOLATIONS

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    need(CHROMIUM.exists(), f"Chromium ({CHROMIUM}; apt-get install -y chromium)")
    tmp = tmp_path_factory.mktemp("apps")
    app = create_app(settings=make_settings(f"sqlite:///{tmp / 'portal.db'}", tmp))
    with app.app_context():
        Base.metadata.create_all(db.engine)
        make_user("admin", is_admin=True)
        db.session.remove()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", app
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def page(site: tuple[str, Any]) -> Iterator[Any]:
    try:
        from playwright import sync_api
    except ImportError:
        need(False, "the playwright Python package")
    url, _ = site
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(20_000)
        problems: list[str] = []
        context.expose_function("__cspViolation", lambda text: problems.append(text))
        context.add_init_script(REPORT_VIOLATIONS)
        pg = context.new_page()
        pg.problems = problems
        pg.on("console", lambda m: m.type == "error" and problems.append(m.text))
        pg.on("pageerror", lambda e: problems.append(str(e)))
        pg.goto(f"{url}/login")
        pg.fill("input[name=login]", "admin")
        pg.fill("input[name=password]", PASSWORD)
        pg.click("button[type=submit]")
        pg.wait_for_url(f"{url}/")
        yield pg
        context.close()
        browser.close()


def _shot(page: Any, name: str, tmp: Path) -> None:
    folder = DOCS_SCREENSHOTS if os.environ.get("MULTIFLEXI_SCREENSHOTS") == "1" else tmp
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_admin_creates_an_app_with_fields_through_the_form(
    site: tuple[str, Any], page: Any, tmp_path: Path
) -> None:
    url, flask_app = site
    page.goto(f"{url}/applications/")
    page.click("a:has-text('New application')")
    page.fill("input[name=name]", "Statement importer")
    page.fill("input[name=executable]", "/usr/bin/statement-import")
    page.fill("input[name=cmdparams]", "--account {ACCOUNT}")
    page.fill("input[name=version]", "not a version")
    page.fill("input[name=field-0-key]", "ACCOUNT")
    page.fill("input[name=field-0-description]", "Bank account")
    page.check("input[name=field-0-required]")
    page.click("#add-field")  # htmx brings row 1 and moves the button on to row 2
    page.fill("input[name=field-1-key]", "API_TOKEN")
    page.select_option("select[name=field-1-type]", "password")
    page.click("#add-field")
    page.wait_for_selector("input[name=field-2-key]")
    page.fill("input[name=exit-0-code]", "2")
    page.fill("input[name=exit-0-description]", "no statements today")
    page.click("#app-form button[type=submit]")
    # The importer's version rule refuses it; everything typed is still there.
    error = page.wait_for_selector("#err-version")
    assert "does not match" in error.inner_text()
    assert page.input_value("input[name=field-1-key]") == "API_TOKEN"
    assert page.input_value("input[name=exit-0-description]") == "no statements today"
    _shot(page, "application-editor", tmp_path)
    page.fill("input[name=version]", "2.1")
    page.click("#app-form button[type=submit]")
    page.wait_for_selector("h1:has-text('Statement importer')")
    assert "ACCOUNT" in page.inner_text("main") and "API_TOKEN" in page.inner_text("main")
    with flask_app.app_context():
        saved = db.session.scalars(select(Application)).one()
        keys = {f.keyname: (f.type, f.required) for f in saved.fields}
        assert keys == {"ACCOUNT": ("string", True), "API_TOKEN": ("password", False)}
        assert saved.version == "2.1" and saved.exit_codes[0].description == "no statements today"
        db.session.remove()
    # The refused save answered 400 on purpose; nothing else may complain.
    refused = "Failed to load resource: the server responded with a status of 400 (BAD REQUEST)"
    assert [p for p in page.problems if p != refused] == []
