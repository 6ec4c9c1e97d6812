"""Texts the action kinds build: placeholders without code evaluation, code fences, bounds,
secret redaction."""

from __future__ import annotations

from multiflexi_web.actions.base import ConfigField
from multiflexi_web.actions.delivery import RESPONSE_LIMIT, bounded, redact, secret_values
from multiflexi_web.actions.render import fenced, issue_body, render
from multiflexi_web.security.secrets import MASK
from tests.action_peers import make_context


def test_render_fills_job_fields_and_leaves_the_rest_alone() -> None:
    ctx = make_context()
    text = render(
        "${app}/${company} #${job_id} ${status} ${exit_code} ${nope} $5 $$ ${job_url}", ctx
    )
    assert text == "Invoice Sync/ACME Ltd #42 failed 3 ${nope} $5 $ http://portal.test/job/42"


def test_render_evaluates_no_code() -> None:
    ctx = make_context()
    for template in (
        "${job_id.__class__}",
        "{job_id.__class__}",
        "${__import__('os')}",
        "%(job_id)s",
    ):
        assert render(template, ctx) == template


def test_render_of_a_missing_exit_code_is_empty() -> None:
    assert render("[${exit_code}]", make_context(exit_code=None, exit_meaning=None)) == "[]"


def test_fence_outgrows_backticks_in_the_output() -> None:
    assert fenced("a ``` b") == "````\na ``` b\n````"
    assert fenced("plain") == "```\nplain\n```"


def test_issue_body_names_the_job_and_never_the_environment() -> None:
    body = issue_body(make_context(env={"DB_PASSWORD": "hunter2"}, exit_code=None))
    assert "MultiFlexi job 42 of nightly sync (ACME Ltd): failed" in body
    assert "Exit code: none" in body
    assert "hunter2" not in body


def test_bounded_cuts_to_the_limit_in_bytes() -> None:
    text = bounded("é" * RESPONSE_LIMIT)
    assert len(text.encode()) <= RESPONSE_LIMIT
    assert text.endswith("...")
    assert bounded("short") == "short"


def test_redact_covers_quoted_forms_and_webhook_paths() -> None:
    fields = (
        ConfigField("token", "password", secret=True),
        ConfigField("hook", "url", secret=True),
        ConfigField("user", "string"),
    )
    values = {"token": "a b/c", "hook": "https://h.test/hooks/k3y-0123456789", "user": "bot"}
    secrets = secret_values(fields, values)
    text = redact("a b/c a%20b%2Fc a%20b/c /hooks/k3y-0123456789 k3y-0123456789 bot", secrets)
    assert text == " ".join([MASK] * 5 + ["bot"])
