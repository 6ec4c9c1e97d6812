"""The portal under its Content-Security-Policy in a real Chromium: no violation, htmx works.

No executor here: the test moves a job's status in the database itself and watches the pages
follow through htmx polling. A positive control proves violations would be seen.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import update
from werkzeug.serving import make_server

from multiflexi_web import create_app
from multiflexi_web.extensions import db
from multiflexi_web.models import Base, Job, JobStatus
from tests.conftest import make_settings
from tests.factories import PASSWORD, make_company, make_job, make_runtemplate, make_user
from tests.services import need
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Recorded in the page before any of its own scripts run (init scripts are not subject to CSP).
WATCH = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__violations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
"""
# Colours that used to be inline style attributes (256-colour and 24-bit).
OUTPUT = "\x1b[38;5;196mred\x1b[0m \x1b[48;2;0;0;255mblue\x1b[0m plain\n"


@dataclass
class Site:
    url: str
    app: Flask
    jobs: dict[str, int] = field(default_factory=dict)

    def set_status(self, job_id: int, status: JobStatus) -> None:
        with self.app.app_context():
            db.session.execute(update(Job).where(Job.id == job_id).values(status=status.value))
            db.session.commit()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    need(CHROMIUM.exists(), f"Chromium ({CHROMIUM}; apt-get install -y chromium)")
    tmp = tmp_path_factory.mktemp("csp")
    settings = make_settings(f"sqlite:///{tmp / 'portal.db'}", tmp)
    app = create_app(settings=settings)
    with app.app_context():
        Base.metadata.create_all(db.engine)
        make_user("admin", is_admin=True)
        rt = make_runtemplate(make_company())
        jobs = {
            name: make_job(rt, status=JobStatus.RUNNING, output=OUTPUT).id
            for name in ("polled", "cancelled", "dashboard")
        }
        db.session.remove()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(f"http://127.0.0.1:{server.server_port}", app, jobs)
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def page(site: Site) -> Iterator[Any]:
    try:
        from playwright import sync_api
    except ImportError:
        need(False, "the playwright Python package")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context()
        context.set_default_timeout(20_000)
        context.add_init_script(WATCH)
        pg = context.new_page()
        pg.console_errors = []
        pg.on("console", lambda m: m.type == "error" and pg.console_errors.append(m.text))
        pg.on("pageerror", lambda e: pg.console_errors.append(str(e)))
        pg.goto(f"{site.url}/login")
        pg.fill("input[name=login]", "admin")
        pg.fill("input[name=password]", PASSWORD)
        pg.click("button[type=submit]")
        pg.wait_for_url(f"{site.url}/")
        yield pg
        context.close()
        browser.close()


def _clean(page: Any) -> None:
    """No policy violation and no error in the console since the page loaded."""
    assert page.evaluate("window.__violations") == []
    assert page.console_errors == []
    # htmx's default indicator <style> would have been a violation; the rules are in app.css.
    assert page.evaluate("document.querySelectorAll('style').length") == 0


def test_the_policy_is_enforced_and_violations_are_seen(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/")
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.__ran = true'; document.head.appendChild(s); }"
    )
    # Waits on the event itself (wait_for_function's string predicates need eval: refused).
    page.evaluate(
        "() => window.__violations.length || new Promise((done) =>"
        " document.addEventListener('securitypolicyviolation', done, {once: true}))"
    )
    assert page.evaluate("window.__ran === undefined")
    assert page.evaluate("window.__violations")[0].startswith("script-src")
    page.console_errors.clear()


def test_dashboard_polls_under_the_policy(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/")
    page.wait_for_selector("#dashboard-live[hx-get]")
    with page.expect_request(lambda r: r.url == f"{site.url}/" and r.headers.get("hx-request")):
        pass  # the live part asks for itself again within its 5 s
    _clean(page)
    for job_id in site.jobs.values():
        site.set_status(job_id, JobStatus.SUCCEEDED)
    # The next poll brings the quiet dashboard, which stops polling: swapped in by htmx.
    page.wait_for_selector("#dashboard-live:not([hx-get])", timeout=30_000)
    assert page.inner_text("#stat-running") == "0"
    _clean(page)
    for job_id in site.jobs.values():
        site.set_status(job_id, JobStatus.RUNNING)


def test_job_page_polls_shows_colours_and_confirms_under_the_policy(site: Site, page: Any) -> None:
    job_id = site.jobs["polled"]
    page.goto(f"{site.url}/jobs/{job_id}")
    page.wait_for_selector("#output-poller[hx-get]")
    red = page.locator("#console span.ansi-fg-c196").first
    assert red.inner_text() == "red"
    assert red.evaluate("e => getComputedStyle(e).color") == "rgb(255, 0, 0)"
    blue = page.locator("#console span.ansi-bg-c21").first
    assert blue.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(0, 0, 255)"
    site.set_status(job_id, JobStatus.SUCCEEDED)
    page.wait_for_selector("#job-status .status-succeeded", timeout=30_000)
    page.wait_for_selector("#output-poller:not([hx-get])")
    _clean(page)


def test_a_refused_confirmation_sends_nothing(site: Site, page: Any) -> None:
    job_id = site.jobs["cancelled"]
    page.goto(f"{site.url}/jobs/{job_id}")
    posts: list[str] = []
    page.on("request", lambda r: r.method == "POST" and posts.append(r.url))
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("button:has-text('Cancel job')")
    page.wait_for_selector("#output-poller[hx-get]")  # still the same, live page
    assert posts == [] and page.url.endswith(f"/jobs/{job_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Cancel job')")
    page.wait_for_selector("text=Cancel requested")
    assert any(p.endswith(f"/jobs/{job_id}/cancel") for p in posts)
    _clean(page)
