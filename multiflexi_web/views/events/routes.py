"""Event sources, their rules, the rule tester and received events with the jobs they made."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, abort, render_template, request, url_for

from multiflexi_web.models import Company, Event, EventSource, Role
from multiflexi_web.models.bounds import SIGNATURE_TOLERANCE, BoundError, parse_id
from multiflexi_web.services.events import catalog
from multiflexi_web.services.events.bodies import BODY_FORMATS, content_type_of
from multiflexi_web.services.events.catalog import EventSourceError
from multiflexi_web.services.events.process import jobs_of
from multiflexi_web.sources import KINDS
from multiflexi_web.views._change import (
    Audit,
    Page,
    commit_change,
    discard_changes,
    flash_redirect,
)
from multiflexi_web.views._helpers import field_errors, flag, get_or_404, is_htmx, me, text
from multiflexi_web.views.events.queries import recent, runtemplates_by_id, visible_sources
from multiflexi_web.views.events.rules import (
    can_manage,
    create_rule,
    delete_rule,
    edit_rule,
    source_for,
)
from multiflexi_web.views.queries.accounts import companies_with_role

bp = Blueprint("events", __name__, url_prefix="/events")
SOURCE_FIELDS = (
    "name",
    "kind",
    "company",
    "config",
    "secret",
    "require_timestamp",
    "signature_tolerance",
)

# Rule pages live beside, on this blueprint.
bp.add_url_rule(
    "/sources/<int:source_id>/rules/new", "create_rule", create_rule, methods=["GET", "POST"]
)
bp.add_url_rule("/rules/<int:rule_id>/edit", "edit_rule", edit_rule, methods=["GET", "POST"])
bp.add_url_rule("/rules/<int:rule_id>/delete", "delete_rule", delete_rule, methods=["POST"])


def managed_companies() -> list[Company]:
    return companies_with_role(me(), (Role.ADMIN,))


@bp.get("/")
def index() -> str:
    sources = visible_sources(me())
    return render_template(
        "events/index.html",
        sources=sources,
        events=recent([s.id for s in sources]),
        names={s.id: s.name for s in sources},
        can_create=bool(managed_companies()) or me().is_admin,
    )


@bp.route("/sources/new", methods=["GET", "POST"])
def create_source() -> Page:
    companies = managed_companies()
    if not companies and not me().is_admin:
        abort(403)
    if request.method == "GET":
        return _source_form(None, {"kind": "webhook", "config": "{}"}, {}, companies)
    company_id = parse_id(text("company"))

    def change() -> EventSource:
        if not can_manage(company_id):
            raise EventSourceError("company: choose a company you administer")
        source = catalog.create_source(
            text("name"),
            text("kind", 16),
            _config(),
            secret=request.form.get("secret") or None,
            company_id=company_id,
            enabled=flag("enabled"),
            admin=me().is_admin,
        )
        _set_signing(source)
        return source

    return commit_change(
        change,
        lambda s: Audit("create", "event_source", s.id, f"event source {s.name} created"),
        lambda s: flash_redirect(f"Event source {s.name} created.", ".source", source_id=s.id),
        lambda exc: _source_refused(None, exc, companies),
        (EventSourceError,),
    )


@bp.get("/sources/<int:source_id>")
def source(source_id: int) -> str:
    src = source_for(source_id)
    return _source_page(src)


def _source_page(src: EventSource, **extra: Any) -> str:
    rules = catalog.list_rules(src.id)
    rts = runtemplates_by_id([r.runtemplate_id for r in rules])
    webhook_url = (
        url_for("webhook.receive_webhook", token=src.token, _external=True)
        if src.kind == "webhook" and src.token
        else None
    )
    return render_template(
        "events/source.html",
        source=src,
        rules=rules,
        runtemplates=rts,
        events=recent([src.id], 20),
        can_manage=can_manage(src.company_id),
        webhook_url=webhook_url,
        config_json=json.dumps(catalog.redacted_config(src.config), indent=2, sort_keys=True),
        kind=KINDS.get(src.kind),
        body_formats=BODY_FORMATS,
        **extra,
    )


@bp.route("/sources/<int:source_id>/edit", methods=["GET", "POST"])
def edit_source(source_id: int) -> Page:
    src = source_for(source_id, Role.ADMIN)
    companies = managed_companies()
    if request.method == "GET":
        form = {
            "name": src.name,
            "kind": src.kind,
            "enabled": src.enabled,
            "config": json.dumps(catalog.redacted_config(src.config), indent=2, sort_keys=True),
            "require_timestamp": src.require_timestamp,
            "signature_tolerance": src.signature_tolerance,
        }
        return _source_form(src, form, {}, companies)

    def change() -> None:
        catalog.update_source(
            src,
            name=text("name"),
            config=_config(),
            enabled=flag("enabled"),
            secret=request.form.get("secret") or None,
            clear_secret=flag("clear_secret"),
            admin=me().is_admin,
        )
        _set_signing(src)

    return commit_change(
        change,
        lambda _: Audit("update", "event_source", src.id, f"event source {src.name} edited"),
        lambda _: flash_redirect("Event source saved.", ".source", source_id=src.id),
        lambda exc: _source_refused(src, exc, companies),
        (EventSourceError,),
    )


@bp.post("/sources/<int:source_id>/delete")
def delete_source(source_id: int) -> Page:
    src = source_for(source_id, Role.ADMIN)
    name = src.name
    return commit_change(
        lambda: catalog.delete_source(src),
        lambda _: Audit("delete", "event_source", source_id, f"event source {name} deleted"),
        lambda _: flash_redirect(f"Event source {name} deleted.", ".index"),
    )


@bp.post("/sources/<int:source_id>/test")
def test_payload(source_id: int) -> Page:
    """The rule tester: which rules this payload would fire, with their environment."""
    src = source_for(source_id)
    raw = request.form.get("payload", "")
    content_type = text("content_type", 255)
    hits: list[catalog.RuleHit] = []
    read_as, error = None, None
    try:
        payload, read_as = catalog.read_test_body(src, raw, content_type)
        hits = catalog.try_payload(src, payload)
    except EventSourceError as exc:
        error = str(exc)
    targets = runtemplates_by_id([h.rule.runtemplate_id for h in hits])
    discard_changes()  # the tester never writes
    context = {
        "hits": hits,
        "test_error": error,
        "payload": raw,
        "content_type": content_type,
        "read_as": read_as,
        "targets": targets,
        "tested": True,
    }
    if is_htmx():
        return render_template("events/_test_result.html", source=src, **context)
    return _source_page(src, **context), 400 if error else 200


@bp.get("/<int:event_id>")
def event(event_id: int) -> str:
    ev = get_or_404(Event, event_id)
    src = source_for(ev.source_id)
    return render_template(
        "events/event.html",
        event=ev,
        source=src,
        jobs=jobs_of([ev.id])[ev.id],
        payload_json=json.dumps(ev.payload, indent=2, ensure_ascii=False, sort_keys=True),
        raw_text=(ev.raw_body or b"")[:65536].decode("utf-8", errors="replace"),
        content_type=content_type_of(ev.headers or {}),
    )


def _set_signing(src: EventSource) -> None:
    """The webhook signing inputs (absent on other kinds' forms: the defaults)."""
    try:
        tolerance = SIGNATURE_TOLERANCE.parse(text("signature_tolerance", 40) or "300")
    except BoundError as exc:
        raise EventSourceError(str(exc)) from None
    catalog.set_signing(src, require_timestamp=flag("require_timestamp"), tolerance=tolerance)


def _config() -> dict[str, Any]:
    raw = request.form.get("config", "").strip() or "{}"
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise EventSourceError(f"config: not valid JSON ({exc})") from None
    except (ValueError, RecursionError):  # a number of over 4,300 digits, a nesting too deep
        raise EventSourceError(
            "config: not JSON this form takes (a huge number or deep nesting)"
        ) from None
    if not isinstance(value, dict):
        raise EventSourceError("config: must be a JSON object")
    return value


def _source_refused(
    src: EventSource | None, exc: ValueError, companies: list[Company]
) -> tuple[str, int]:
    return _source_form(src, request.form, field_errors(exc, SOURCE_FIELDS), companies), 400


def _source_form(
    src: EventSource | None, form: Any, errors: dict[str, str], companies: list[Company]
) -> str:
    return render_template(
        "events/source_form.html",
        source=src,
        form=form,
        errors=errors,
        companies=companies,
        # A company admin may set up only kinds without host reach (sources/base.py).
        kinds={k: v for k, v in KINDS.items() if me().is_admin or not v.admin_only},
        admin_only={k: v.admin_only for k, v in KINDS.items() if v.admin_only},
    )
