"""The portal in a real Chromium against a real server and a real executor daemon.

Import an app, create a company and a RunTemplate through the wizard, Run now, watch the output
arrive live, download an artifact, cancel a long job. Screenshots go to docs/screenshots/.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from multiflexi_web import create_app
from multiflexi_web.config import load_settings
from multiflexi_web.extensions import db
from multiflexi_web.security.secrets import generate_key
from multiflexi_web.services.accounts.users import create_user
from tests.conftest import create_schema
from tests.services import need

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Where page screenshots go: docs/screenshots/ when MULTIFLEXI_SCREENSHOTS=1 (to refresh the
# committed ones), else a temporary folder so a test run leaves the tree clean.
DOCS_SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
ADMIN, PASSWORD = "admin", "browser-test-password"
# Prints a green line every 200 ms, one line to stderr, then leaves a report in its work dir.
TICKER = """#!/bin/sh
i=1
while [ "$i" -le "${TICKS:-10}" ]; do
  printf '\\033[32mtick %d\\033[0m of %s\\n' "$i" "$TICKS"
  i=$((i + 1))
  sleep 0.2
done
echo "ticker done" >&2
printf 'report for %s\\n' "$LABEL" > report.txt
"""


VIOLATIONS: list[str] = []
CONSOLE: list[str] = []  # the browser's console errors and uncaught exceptions, for failures
REPORT_VIOLATIONS = """document.addEventListener('securitypolicyviolation', (e) =>
  window.__cspViolation(location.pathname + ': ' + e.violatedDirective + ' ' + e.blockedURI));"""


@dataclass
class Stack:
    url: str
    tmp: Path
    app_file: Path
    executor_log: Path


def _app_json(tmp: Path) -> Path:
    script = tmp / "ticker.sh"
    script.write_text(TICKER)
    script.chmod(0o755)
    definition: dict[str, Any] = {
        "$schema": "https://raw.githubusercontent.com/VitexSoftware/php-vitexsoftware-multiflexi-core/refs/heads/main/schema/application.json",
        "name": {"en": "Ticker"},
        "description": {"en": "Prints a line every 200 ms"},
        "executable": str(script),
        "uuid": str(uuid.uuid4()),
        "version": "1.0",
        "tags": ["test"],
        "environment": {
            "TICKS": {"type": "integer", "description": {"en": "How many lines"}, "defval": "10"},
            "LABEL": {"type": "string", "description": {"en": "Report label"}, "required": True},
        },
        "artifacts": [{"name": {"en": "Report"}, "path": "report\\.txt$", "type": "text"}],
        "exitCodes": {"0": {"description": {"en": "all lines printed"}, "severity": "success"}},
    }
    path = tmp / "ticker.multiflexi.app.json"
    path.write_text(json.dumps(definition))
    return path


def _environment(tmp: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": f"sqlite:///{tmp / 'portal.db'}",
        "SECRET_KEY": "browser-test",
        "ENCRYPTION_MASTER_KEY": generate_key(),
        "MULTIFLEXI_TMP": str(tmp / "work"),
        "MULTIFLEXI_ARTIFACT_DIR": str(tmp / "artifacts"),
        "MULTIFLEXI_ENV_FILE": str(tmp / "absent.env"),
        "MULTIFLEXI_LOCAL_ENV": str(tmp / "absent-local.env"),
        "MULTIFLEXI_CYCLE_PAUSE": "0.2",
        "MULTIFLEXI_KILL_GRACE": "2",
        "MULTIFLEXI_MAX_PARALLEL": "2",
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    need(CHROMIUM.exists(), f"Chromium ({CHROMIUM}; apt-get install -y chromium)")
    tmp = tmp_path_factory.mktemp("browser")
    env = _environment(tmp)
    app = create_app(settings=load_settings(env))
    with app.app_context():
        create_schema(db.engine)
        create_user(ADMIN, PASSWORD, is_admin=True)
        db.session.commit()
        db.session.remove()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    log = tmp / "executor.log"
    executor = Path(sys.executable).parent / "multiflexi-executor"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(executor)], env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield Stack(f"http://127.0.0.1:{server.server_port}", tmp, _app_json(tmp), log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def page(stack: Stack) -> Iterator[Any]:
    try:
        from playwright import sync_api
    except ImportError:
        need(False, "the playwright Python package")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, accept_downloads=True
        )
        context.set_default_timeout(20_000)
        # Every Content-Security-Policy violation on any page this module visits.
        context.expose_function("__cspViolation", lambda text: VIOLATIONS.append(text))
        context.add_init_script(REPORT_VIOLATIONS)
        pg = context.new_page()
        pg.on("console", lambda m: CONSOLE.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda exc: CONSOLE.append(f"uncaught: {exc}"))
        pg.goto(f"{stack.url}/login")
        pg.fill("input[name=login]", ADMIN)
        pg.fill("input[name=password]", PASSWORD)
        pg.click("button[type=submit]")
        pg.wait_for_url(f"{stack.url}/")
        yield pg
        context.close()
        browser.close()


@pytest.fixture(scope="module")
def shots(stack: Stack) -> Path:
    folder = DOCS_SCREENSHOTS if os.environ.get("MULTIFLEXI_SCREENSHOTS") == "1" else stack.tmp
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shot(page: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def runtemplate_url(stack: Stack, page: Any, shots: Path) -> str:
    """Import the app, create a company and a RunTemplate, all through the pages."""
    page.goto(f"{stack.url}/applications/import")
    page.set_input_files("input[name=files]", str(stack.app_file))
    page.click("main form button[type=submit]")
    assert "Ticker" in page.inner_text("#import-report")
    page.goto(f"{stack.url}/companies/new")
    page.fill("input[name=name]", "Browser Test Ltd")
    page.fill("input[name=slug]", "browser-test")
    page.click("main form button[type=submit]")
    page.wait_for_selector("text=Browser Test Ltd")
    page.goto(f"{stack.url}/runtemplates/new")
    page.click("a.choice:has-text('Browser Test Ltd')")
    page.click("a.choice:has-text('Ticker')")
    page.fill("#name", "Ticker every five minutes")
    page.fill("#cfg-TICKS", "10")
    _check_live_cron_preview(page)
    _required_label(page, shots)
    page.fill("#cfg-LABEL", "browser")
    shot(page, shots, "runtemplate-wizard")
    page.click("#save")
    _actions_step(page, shots)
    page.click("#wizard-finish")
    page.wait_for_selector("h1:has-text('Ticker every five minutes')")
    url: str = page.url
    return url


def _required_label(page: Any, shots: Path) -> None:
    """LABEL is required and has no default: saving without it is refused on that field, on
    the step that holds it, with everything typed still there."""
    page.click("#save")
    page.wait_for_selector("#err-cfg-LABEL:has-text('LABEL is required')")
    assert page.locator(".wizard-steps li.current.has-error a").inner_text() == "Configuration"
    assert page.input_value("#name") == "Ticker every five minutes"
    assert page.input_value("#cron") == "*/5 * * * *"
    assert page.input_value("#cfg-TICKS") == "10"
    shot(page, shots, "runtemplate-wizard-required")


def _actions_step(page: Any, shots: Path) -> None:
    """Step 7: the saved RunTemplate's actions; Add opens the form inline (htmx), Save comes
    back to the step with the action listed."""
    page.wait_for_selector(".wizard-steps li.current:has-text('Actions')")
    page.click("#actions-failure a[data-kind='failure-WebHook']")
    page.wait_for_selector("#action-form-slot #action-form")
    page.fill("#action-form-slot input[name=cfg_url]", "http://127.0.0.1:9/hook")
    shot(page, shots, "runtemplate-wizard-actions")
    page.click("#action-form-slot #action-save")
    page.wait_for_selector("text=Failure action WebHook saved.")
    assert "WebHook" in page.inner_text("#actions-failure table")
    assert page.locator(".wizard-steps li.current").inner_text() == "Actions"


def _five_next_runs(page: Any) -> None:
    # A locator assertion, not wait_for_function: string predicates need eval, which the
    # portal's Content-Security-Policy refuses.
    from playwright.sync_api import expect

    expect(page.locator("#schedule-preview li")).to_have_count(5)


def _check_live_cron_preview(page: Any) -> None:
    page.select_option("#interval", "c")
    page.fill("#cron", "*/5 * * * *")
    _five_next_runs(page)
    page.fill("#cron", "*/5 * *")
    page.wait_for_selector("#schedule-error:has-text('must have 5 fields')")
    page.fill("#cron", "*/5 * * * *")
    _five_next_runs(page)


def _run_now(page: Any, rt_url: str, env: dict[str, str]) -> None:
    page.goto(rt_url)
    page.click("#run-now-link")
    for key, value in env.items():  # the app's fields: a one-time change is an edit
        page.fill(f"#cfg-{key}", value)
    page.click("#run-now")
    page.wait_for_selector("#console")


AT_END = """(() => {
  const c = document.getElementById('console');
  return c.scrollHeight - c.scrollTop - c.clientHeight < 40;
})()"""


def test_output_appears_live_and_the_artifact_downloads(
    stack: Stack, page: Any, runtemplate_url: str, shots: Path
) -> None:
    _run_now(page, runtemplate_url, {"LABEL": "one-off", "TICKS": "20"})
    page.evaluate("window.__sameDocument = true")
    # A console a few lines high, so that following the output means scrolling (set through
    # the CSSOM: the page's CSP refuses an added <style> element).
    page.evaluate(
        "document.getElementById('console').style.setProperty('max-height', '6em', 'important')"
    )
    page.wait_for_selector("#console :text('tick 8 of 20')")
    early = page.inner_text("#console").count("tick ")
    assert page.evaluate(AT_END), "the console should follow new output"
    page.evaluate("document.getElementById('console').scrollTop = 0")
    page.wait_for_selector("#console :text('tick 20 of 20')")
    later = page.inner_text("#console").count("tick ")
    assert 8 <= early < later == 20, (early, later)
    assert page.evaluate("document.getElementById('console').scrollTop") == 0, "reader scrolled up"
    assert page.evaluate("window.__sameDocument") is True  # no reload: htmx appended it
    assert page.locator("#console span.ansi-fg-c2").first.inner_text().startswith("tick 1")
    page.wait_for_selector("#job-status .status-succeeded")
    page.wait_for_selector("#output-poller:not([hx-get])")
    assert "ticker done" in page.inner_text("#console")
    assert "all lines printed" in page.inner_text("#exit-code")
    page.evaluate(
        "document.getElementById('console').style.setProperty('max-height', 'none', 'important')"
    )
    shot(page, shots, "job-detail")
    with page.expect_download() as info:
        page.click("#artifacts tr:has-text('report.txt') a:has-text('Download')")
    download = info.value
    assert download.suggested_filename == "report.txt"
    assert Path(download.path()).read_bytes() == b"report for one-off\n"


def test_run_now_lists_the_fields_with_their_values(
    stack: Stack, page: Any, runtemplate_url: str, shots: Path
) -> None:
    from playwright.sync_api import expect

    page.goto(runtemplate_url)
    page.click("#run-now-link")
    assert page.input_value("#cfg-TICKS") == "10"
    assert page.input_value("#cfg-LABEL") == "browser"
    fields = page.inner_text("#run-fields")
    assert "How many lines" in fields and "Report label" in fields
    extra = page.locator("#run-extra input[name=env_key]").first
    expect(extra).to_be_hidden()
    page.click("#run-extra summary")  # another name, as before, under the env-name rules
    expect(extra).to_be_visible()
    shot(page, shots, "run-now")


def test_long_job_is_cancelled_from_its_page(stack: Stack, page: Any, runtemplate_url: str) -> None:
    _run_now(page, runtemplate_url, {"TICKS": "1000"})
    page.wait_for_selector("#console :text('tick 2 of 1000')")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Cancel job')")
    page.wait_for_selector("#job-status .status-cancelled", timeout=30_000)
    lines = page.inner_text("#console").count("tick ")
    assert lines < 1000
    page.wait_for_selector("#output-poller:not([hx-get])")


def test_lists_and_queue_render(stack: Stack, page: Any, runtemplate_url: str, shots: Path) -> None:
    page.goto(f"{stack.url}/jobs/")
    assert page.locator("#jobs-table tbody tr").count() >= 1
    shot(page, shots, "jobs")
    page.goto(f"{stack.url}/queue/")
    page.wait_for_selector("#queue-table")
    shot(page, shots, "queue")
    page.goto(f"{stack.url}/runtemplates/")
    shot(page, shots, "runtemplates")
    page.goto(runtemplate_url)
    shot(page, shots, "runtemplate-detail")
    page.goto(f"{stack.url}/")
    shot(page, shots, "dashboard")


def test_no_page_broke_the_content_security_policy(stack: Stack, page: Any) -> None:
    """Runs last: the wizard, live output, cancel, lists and dashboard above ran under it."""
    page.goto(f"{stack.url}/applications/")
    with page.expect_response(lambda r: "q=tick" in r.url) as answer:
        page.fill("input[name=q]", "tick")  # the live filter (hx-trigger with a from: selector)
    assert answer.value.status == 200
    try:
        page.wait_for_selector("#app-list :text('Ticker')")
    except Exception as exc:  # seen once in CI-like runs, not reproduced: say what was there
        shown = page.inner_text("#app-list") if page.locator("#app-list").count() else "none"
        raise AssertionError(
            f"{exc}; url={page.url}; #app-list: {shown[:1500]!r}; console: {CONSOLE[-10:]}; "
            f"answer: {answer.value.text()[:1500]!r}"
        ) from exc
    assert VIOLATIONS == []
