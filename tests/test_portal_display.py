"""Rules every page follows: danger buttons look dangerous, times carry their zone, translated
texts come in the reader's language."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from flask import Flask

from multiflexi_web.config import PROJECT_ROOT
from multiflexi_web.extensions import db
from multiflexi_web.models import Application, JobStatus
from multiflexi_web.services.catalogue.app_import import import_app_bytes
from multiflexi_web.views.display import translated, when
from tests.factories import (
    client_for,
    make_company,
    make_job,
    make_runtemplate,
    make_user,
)
from tests.test_portal_access import build_world, is_public, methods, portal_rules, url

TEMPLATES = PROJECT_ROOT / "templates"
# A route is dangerous when its endpoint or its button says it destroys or stops something.
DANGER = re.compile(r"delete|disable|revoke|cancel|remove|pause|drain", re.I)


def _templates() -> Iterator[tuple[Path, str]]:
    for path in sorted(TEMPLATES.rglob("*.html")):
        yield path, path.read_text()


def _call_args(text: str, start: int) -> list[str]:
    """The top-level arguments of the Jinja call whose "(" is at `start`."""
    args, depth, quote, current = [], 0, "", ""
    for ch in text[start + 1 :]:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                return [*args, current.strip()]
            depth -= 1
        elif ch == "," and depth == 0:
            args, current = [*args, current.strip()], ""
            continue
        current += ch
    raise AssertionError(f"unclosed call at {start}")


def _cls(args: list[str]) -> str:
    named = [a.split("=", 1)[1] for a in args if re.match(r"cls\s*=", a)]
    positional = [a for a in args[:3] if not re.match(r"\w+\s*=", a)]
    return named[0] if named else (positional[2] if len(positional) > 2 else "")


def dangerous_controls() -> Iterator[tuple[str, str, str]]:
    """(where, what, its class) for every control that posts to or links to a dangerous route:
    post_button() calls, hand-written POST forms and button-styled links."""
    for path, text in _templates():
        where = str(path.relative_to(PROJECT_ROOT))
        for m in re.finditer(r"post_button\(", text):
            args = _call_args(text, m.end() - 1)
            if DANGER.search(args[0]) or DANGER.search(args[1]):
                yield where, f"{args[0]} {args[1]}", _cls(args)
        for form in re.finditer(r"<form\b[^>]*>.*?</form>", text, re.S):
            action = re.search(r"""action="[^"]*url_for\('([\w.]+)'""", form.group(0))
            if action and DANGER.search(action.group(1)):
                for button in re.finditer(r"<button\b[^>]*>", form.group(0)):
                    found = re.search(r'class="([^"]*)"', button.group(0))
                    yield where, action.group(1), found.group(1) if found else ""
        for link in re.finditer(r"<a\b[^>]*class=\"([^\"]*\bbutton\b[^\"]*)\"[^>]*>", text):
            target = re.search(r"url_for\('([\w.]+)'", link.group(0))
            if target and DANGER.search(target.group(1)):
                yield where, target.group(1), link.group(1)


def test_every_dangerous_action_wears_the_danger_class() -> None:
    controls = list(dangerous_controls())
    # Delete (events, credentials, types, companies, RunTemplates), remove (env, members,
    # memberships, actions), revoke, cancel, disable: the scan must see them all.
    assert len(controls) >= 14, controls
    plain = [c for c in controls if "danger" not in c[2]]
    assert plain == []


def test_the_danger_class_is_one_rule_unlike_the_safe_buttons() -> None:
    css = (PROJECT_ROOT / "static" / "app.css").read_text()
    rule = re.search(r"button\.danger, \.button\.danger \{([^}]*)\}", css)
    assert rule and "var(--bad)" in rule.group(1) and "color:#fff" in rule.group(1)
    # The invisible button of the report: a text-only button white on the white page.
    assert re.search(r"(?m)^button\.link \{[^}]*color:var\(--accent\)", css)


# Times: the filter, the templates, the rendered pages.


def test_when_shows_utc_or_the_schedules_zone_with_utc_beside_it() -> None:
    winter = datetime(2026, 1, 5, 11, 0, 0, tzinfo=UTC)
    utc = '<time datetime="2026-01-05T11:00:00Z">2026-01-05 11:00:00 UTC</time>'
    assert str(when(winter)) == utc
    assert "2026-01-05 12:00:00 CET (11:00 UTC)" in when(winter, "Europe/Prague")
    assert "Mon 2026-01-05 11:00:00 UTC" in when(winter, "UTC", weekday=True)
    assert when(winter.replace(tzinfo=None)) == when(winter)  # naive: taken as UTC
    assert "&ndash;" in when(None) and "<time" not in when(None)


def test_no_template_formats_a_time_itself() -> None:
    # A date <input>'s value is the only place a template may write a date by hand.
    own = re.compile(r"strftime\(|isoformat\(\)(?![^<]*type=\"date\")")
    found = [
        f"{path.relative_to(PROJECT_ROOT)}: {line.strip()[:100]}"
        for path, text in _templates()
        for line in text.splitlines()
        if own.search(line) and 'type="date"' not in line
    ]
    assert found == []
    # Nor labels its column or its time with a zone by hand: the filter says UTC.
    labelled = [
        str(path.relative_to(PROJECT_ROOT))
        for path, text in _templates()
        if re.search(r"\(UTC\)</th>|\}\} UTC\b", text)
    ]
    assert labelled == []


RAW_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}")
# A <time> the `when` filter wrote: UTC, or a schedule's zone with UTC beside it.
ZONED = re.compile(r'<time datetime="[^"]+Z">[^<]* (UTC|[A-Z]{3,5} \([0-9:]+ UTC\))</time>')


def test_every_time_on_every_page_carries_its_zone(app: Flask) -> None:
    world = build_world()
    client = client_for(app, world.users["global"])
    times = 0
    for rule in portal_rules(app):
        if "GET" not in methods(rule) or is_public(rule) or rule.endpoint.startswith("job_art"):
            continue
        html = client.get(url(rule, world.params["a"])).get_data(as_text=True)
        times += len(ZONED.findall(html))
        # <pre> holds what is quoted, not shown as a time: job output, API examples.
        prose = re.sub(r"<pre\b.*?</pre>", " ", ZONED.sub(" ", html), flags=re.S)
        visible = re.sub(r"<[^>]+>", " ", prose)
        assert not RAW_TIME.search(visible), (rule.rule, RAW_TIME.findall(visible))
    assert times > 20


# Translations.

APP_TEXTS = {"en": "Bank report", "cs": "Výpis z banky"}


def test_translated_picks_the_readers_language_or_english(app: Flask) -> None:
    with app.test_request_context(headers={"Accept-Language": "cs-CZ,cs;q=0.9,en;q=0.5"}):
        assert translated(APP_TEXTS) == "Výpis z banky"
        assert translated("Bank report", APP_TEXTS) == "Výpis z banky"
        assert translated("Edited after import", APP_TEXTS) == "Edited after import"
        assert translated("plain") == "plain" and translated(None) == ""
    with app.test_request_context(headers={"Accept-Language": "de"}):
        assert translated(APP_TEXTS) == "Bank report"
        assert translated({"cs": "jen česky"}) == "jen česky"
    with app.test_request_context():
        assert translated(APP_TEXTS) == "Bank report"


BILINGUAL_APP = {
    "$schema": "https://raw.githubusercontent.com/VitexSoftware/php-vitexsoftware-multiflexi-core/refs/heads/main/schema/application.json",
    "uuid": "0b6f0a53-4a59-4cf5-9d7e-1f5d3c9f2a10",
    "name": {"en": "Bank report", "cs": "Výpis z banky"},
    "description": {"en": "Writes the bank report", "cs": "Napíše výpis z banky"},
    "executable": "/bin/true",
    "environment": {
        "ACCOUNT": {"type": "string", "description": {"en": "Account", "cs": "Účet"}},
    },
    "artifacts": [
        {"name": {"en": "Report", "cs": "Výpis"}, "path": "^r\\.txt$", "type": "file",
         "description": {"en": "The report file", "cs": "Soubor s výpisem"}},
    ],
    "exitCodes": {"3": {"description": {"en": "No statements", "cs": "Žádné výpisy"}}},
}  # fmt: skip


def test_every_translated_text_is_shown_in_the_readers_language(app: Flask) -> None:
    result = import_app_bytes("bank.app.json", json.dumps(BILINGUAL_APP).encode())
    assert not result.failed, result.error
    company = make_company()
    rt = make_runtemplate(company, db.session.get(Application, result.id))
    job = make_job(rt, status=JobStatus.FAILED, exit_code=3)
    db.session.commit()
    client = client_for(app, make_user(is_admin=True))
    pages = {
        f"/applications/{result.id}": ("Napíše výpis z banky", "Účet", "Soubor s výpisem", "Výpis"),
        "/applications/": ("Výpis z banky", "Napíše výpis z banky"),
        f"/jobs/{job.id}": ("Žádné výpisy",),
        f"/runtemplates/{rt.id}/edit": ("Účet", "Výpis z banky for"),
        f"/runtemplates/{rt.id}": ("Výpis z banky for",),
    }
    for path, czech in pages.items():
        html = client.get(path, headers={"Accept-Language": "cs,en;q=0.5"}).text
        assert all(text in html for text in czech), (path, [t for t in czech if t not in html])
        assert "{'en'" not in html and "&#39;en&#39;" not in html, path
        english = client.get(path, headers={"Accept-Language": "de-DE"}).text
        assert not any(text in english for text in czech), path
        assert "{'en'" not in english and "&#39;en&#39;" not in english, path
    detail = client.get(f"/applications/{result.id}").text  # no Accept-Language: English
    assert "The report file" in detail and "Writes the bank report" in detail
