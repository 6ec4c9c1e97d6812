"""The first-day rough edges in a real Chromium: danger buttons that show, a job header that
keeps up with the live output, and the portal on a 390 px phone screen.

No executor: the test moves a job along the state table in the database and watches the page
follow through htmx. Screenshots go to docs/screenshots/ with MULTIFLEXI_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import update
from werkzeug.serving import make_server

from multiflexi_web import create_app
from multiflexi_web.extensions import db
from multiflexi_web.models import Base, Job, JobOutput, JobStatus
from tests.conftest import make_settings
from tests.factories import (
    PASSWORD,
    make_app,
    make_company,
    make_event_rule,
    make_event_source,
    make_job,
    make_runtemplate,
    make_user,
)
from tests.services import need
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, DOCS_SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE = {"width": 390, "height": 844}
# The collapsed top bar: one line with the brand and the Menu button.
NAV_MAX_HEIGHT = 64
FAILED_OUTPUT = "".join(
    f"2026-12-06 03:15:{i:02d} import batch {i}: fetched 250 statements from the bank API\n"
    for i in range(30)
) + ("ERROR: https://bank.example.com/api/v2/accounts/CZ6508000000192000145399/statements "
     "answered 503 Service Unavailable after 3 attempts\n")  # fmt: skip


@dataclass
class Site:
    url: str
    app: Flask
    ids: dict[str, int] = field(default_factory=dict)

    def move(self, job_id: int, status: JobStatus, output: bytes = b"") -> None:
        """The job's next status, with the output that came with it, in one commit."""
        with self.app.app_context():
            if output:
                db.session.add(JobOutput(job_id=job_id, seq=1, stream="stdout", data=output))
            db.session.execute(update(Job).where(Job.id == job_id).values(status=status.value))
            db.session.commit()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    need(CHROMIUM.exists(), f"Chromium ({CHROMIUM}; apt-get install -y chromium)")
    tmp = tmp_path_factory.mktemp("phone")
    app = create_app(settings=make_settings(f"sqlite:///{tmp / 'portal.db'}", tmp))
    with app.app_context():
        Base.metadata.create_all(db.engine)
        make_user("admin", is_admin=True)
        company = make_company("Contoso Accounting Services International")
        report = make_app("bank-statements-to-accounting-importer")
        rt = make_runtemplate(company, report)
        for status in (JobStatus.SUCCEEDED, JobStatus.FAILED) * 6:
            make_job(rt, status=status)
        source = make_event_source(company, name="bank webhook")
        make_event_rule(source, rt, name="import on push")
        ids = {
            "failed": make_job(rt, status=JobStatus.FAILED, output=FAILED_OUTPUT).id,
            "live": make_job(rt, status=JobStatus.SCHEDULED).id,
            "source": source.id,
        }
        db.session.remove()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(f"http://127.0.0.1:{server.server_port}", app, ids)
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright import sync_api
    except ImportError:
        need(False, "the playwright Python package")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


def _page(browser: Any, site: Site, **context_args: Any) -> Any:
    context = browser.new_context(**context_args)
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    page.goto(f"{site.url}/login")
    page.fill("input[name=login]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.url}/")
    return page


def _shots() -> Path | None:
    return DOCS_SCREENSHOTS if os.environ.get("MULTIFLEXI_SCREENSHOTS") == "1" else None


def _shot(page: Any, name: str, tmp: Path) -> None:
    page.screenshot(path=str((_shots() or tmp) / f"{name}.png"), full_page=True)


DANGER_WORDS = ("Delete", "Remove", "Revoke", "Cancel job", "Disable")


def _colours(locator: Any) -> tuple[str, str]:
    found = locator.evaluate(
        "e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]"
    )
    return found[0], found[1]


def test_dangerous_buttons_are_visible_and_look_alike(site: Site, browser: Any) -> None:
    page = _page(browser, site)
    page.goto(f"{site.url}/events/sources/{site.ids['source']}")
    rule_button = page.locator("table button:has-text('Delete')").first
    assert rule_button.is_visible()
    text, background = _colours(rule_button)
    # The report: white text on a transparent button over the white card.
    assert (text, background) == ("rgb(255, 255, 255)", "rgb(198, 40, 40)")
    source_button = page.locator("form button:has-text('Delete')").first
    assert _colours(source_button) == (text, background)
    for path in (f"/jobs/{site.ids['live']}", "/applications/1", "/account/tokens"):
        page.goto(f"{site.url}{path}")
        for word in DANGER_WORDS:
            for button in page.locator(f"main button:has-text('{word}')").all():
                assert "danger" in (button.get_attribute("class") or ""), (path, word)
                assert _colours(button) == (text, background), (path, word)
    safe = page.locator("main button[type=submit]:not(.danger)").first
    assert _colours(safe)[1] not in (background, "rgba(0, 0, 0, 0)")
    assert page.console_errors == []
    page.context.close()


def test_the_job_header_keeps_up_with_the_live_output(
    site: Site, browser: Any, tmp_path: Path
) -> None:
    page = _page(browser, site)
    job_id = site.ids["live"]
    page.goto(f"{site.url}/jobs/{job_id}")
    header = page.locator("#job-summary")
    assert header.get_attribute("data-status") == "scheduled"
    assert page.locator("button:has-text('Cancel job')").is_visible()
    assert page.locator("button:has-text('Re-run')").count() == 0  # nothing ran yet
    site.move(job_id, JobStatus.RUNNING, b"step 1 of 3: downloading statements\n")
    page.wait_for_selector("#console :text('step 1 of 3')")
    # The output and the header came in the same answer: no moment of "scheduled" with output.
    assert header.get_attribute("data-status") == "running"
    assert page.locator("#job-status .status-running").is_visible()
    assert page.locator("#job-summary button:has-text('Re-run')").count() == 0
    assert page.locator("#job-summary button:has-text('Cancel job')").is_visible()
    site.move(job_id, JobStatus.SUCCEEDED)
    page.wait_for_selector("#job-summary[data-status=succeeded]")
    page.wait_for_selector("#output-poller:not([hx-get])")  # polling stopped by itself
    assert page.locator("#job-summary button:has-text('Re-run')").is_visible()
    assert page.locator("#job-summary button:has-text('Cancel job')").count() == 0
    assert page.console_errors == []
    page.context.close()


def _no_sideways_scroll(page: Any, what: str) -> None:
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{what}: page {widths[0]} px wide on a {widths[1]} px screen"


def test_a_failed_job_can_be_checked_on_a_phone(site: Site, browser: Any, tmp_path: Path) -> None:
    page = _page(browser, site, viewport=PHONE, device_scale_factor=2, is_mobile=True)
    topbar = page.locator("header.topbar")
    assert topbar.bounding_box()["height"] <= NAV_MAX_HEIGHT
    assert not page.locator("nav.mainnav").is_visible()
    _no_sideways_scroll(page, "dashboard")
    _shot(page, "phone-dashboard", tmp_path)
    page.click("label.nav-toggle-label")
    assert page.locator("nav.mainnav a:has-text('Jobs')").is_visible()
    assert topbar.bounding_box()["height"] <= 6 * NAV_MAX_HEIGHT  # two columns, not a tower
    _shot(page, "phone-menu", tmp_path)
    page.click("nav.mainnav a:has-text('Jobs')")
    page.wait_for_url(f"{site.url}/jobs/")
    _no_sideways_scroll(page, "jobs list")
    table = page.locator("#jobs-table .table")
    # The wide table scrolls inside itself.
    assert table.evaluate("e => e.scrollWidth > e.clientWidth")
    assert table.evaluate("e => getComputedStyle(e).overflowX") == "auto"
    _shot(page, "phone-jobs", tmp_path)
    page.goto(f"{site.url}/jobs/{site.ids['failed']}")
    _no_sideways_scroll(page, "job page")
    status = page.locator("#job-status")
    assert status.inner_text() == "failed" and status.is_visible()
    assert page.locator("#console").bounding_box()["width"] <= PHONE["width"]
    assert "answered 503" in page.locator("#console").inner_text()
    exit_box = page.locator("#exit-code").bounding_box()
    assert exit_box["x"] + exit_box["width"] <= PHONE["width"]
    _shot(page, "phone-job", tmp_path)
    assert page.console_errors == []
    page.context.close()


def test_the_slug_is_suggested_while_the_name_is_typed(site: Site, browser: Any) -> None:
    page = _page(browser, site)
    page.goto(f"{site.url}/companies/new")
    page.type("input[name=name]", "Nový Dům s.r.o.")
    page.wait_for_selector("#company-slug[placeholder='novy-dum-s-r-o']")
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=Company Nový Dům s.r.o. created.")
    assert "novy-dum-s-r-o" in page.locator("main").inner_text()
    assert page.console_errors == []
    page.context.close()
