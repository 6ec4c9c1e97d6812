"""`multiflexi event-source|event-rule|event` commands."""

from __future__ import annotations

import json

from flask.testing import FlaskCliRunner

from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventSource
from multiflexi_web.services.events.process import process_batch
from tests.factories import make_company, make_runtemplate


def _json(runner: FlaskCliRunner, *args: str, stdin: str | None = None) -> object:
    result = runner.invoke(args=[*args, "--format", "json"], input=stdin)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_webhook_source_create_prints_its_path_and_keeps_the_secret_hidden(
    runner: FlaskCliRunner,
) -> None:
    out = _json(
        runner,
        "event-source",
        "create",
        "gh",
        "--kind",
        "webhook",
        "--secret-stdin",
        stdin="hmac-key\n",
    )
    assert isinstance(out, dict)
    assert out["webhook_path"] == f"/webhook/{out['token']}" and len(out["token"]) >= 32
    assert out["has_secret"] is True and "hmac-key" not in json.dumps(out)
    stored = db.session.get(EventSource, out["id"])
    assert stored is not None and stored.secret and "hmac-key" not in stored.secret
    text = runner.invoke(args=["event-source", "list"])
    assert "gh" in text.output and "webhook" in text.output and "hmac-key" not in text.output


def test_source_config_values_are_typed_and_checked(runner: FlaskCliRunner) -> None:
    out = _json(
        runner,
        "event-source",
        "create",
        "bus",
        "--kind",
        "mqtt",
        "--config",
        "topic=a/b",
        "--config",
        "port=1884",
    )
    assert isinstance(out, dict) and out["config"]["port"] == 1884 and out["token"] is None
    bad = runner.invoke(args=["event-source", "create", "q", "--kind", "amqp", "--config", "url="])
    assert bad.exit_code != 0 and "config url: required for a source of kind amqp" in bad.output


def test_rule_create_list_and_test(runner: FlaskCliRunner) -> None:
    rt = make_runtemplate(make_company())
    _json(runner, "event-source", "create", "gh", "--kind", "webhook")
    rule = _json(
        runner,
        "event-rule",
        "create",
        "--source",
        "gh",
        "--runtemplate",
        str(rt.id),
        "--name",
        "on-open",
        "--when",
        "$.action=opened",
        "--exists",
        "$.repo",
        "--in",
        "$.n=1,2",
        "--env",
        "REPO=$.repo.name",
        "--priority",
        "5",
    )
    assert isinstance(rule, dict) and rule["conditions"] == [
        {"path": "$.action", "op": "equals", "value": "opened"},
        {"path": "$.repo", "op": "exists"},
        {"path": "$.n", "op": "in", "value": [1, 2]},
    ]
    listed = _json(runner, "event-rule", "list", "--source", "gh")
    assert isinstance(listed, list) and [r["id"] for r in listed] == [rule["id"]]
    payload = json.dumps({"action": "opened", "repo": {"name": "mf"}, "n": 2})
    hits = _json(runner, "event-rule", "test", "--source", "gh", "--payload", payload)
    assert hits == [
        {
            "rule_id": rule["id"],
            "name": "on-open",
            "priority": 5,
            "runtemplate_id": rt.id,
            "env": {"EVENT_ID": "", "EVENT_SOURCE": "gh", "REPO": "mf"},
        }
    ]
    miss = runner.invoke(
        args=["event-rule", "test", "--source", "gh", "--payload", "@-"],
        input='{"action": "closed"}',
    )
    assert miss.exit_code == 0 and "no rule matches" in miss.output
    text = runner.invoke(args=["event-rule", "test", "--source", "gh", "--payload", payload])
    assert "REPO=mf" in text.output


def test_bad_rule_input_is_a_clear_error(runner: FlaskCliRunner) -> None:
    _json(runner, "event-source", "create", "gh", "--kind", "webhook")
    rt = make_runtemplate(make_company())
    bad_env = runner.invoke(
        args=[
            "event-rule",
            "create",
            "--source",
            "gh",
            "--runtemplate",
            str(rt.id),
            "--env",
            "1X=$.a",
        ]
    )
    assert bad_env.exit_code != 0 and "env_mapping key '1X'" in bad_env.output
    unknown = runner.invoke(args=["event-rule", "list", "--source", "nope"])
    assert unknown.exit_code != 0 and "event source 'nope': not found" in unknown.output
    bad_json = runner.invoke(args=["event-rule", "test", "--source", "gh", "--payload", "{x"])
    assert bad_json.exit_code != 0 and "not valid JSON" in bad_json.output


def test_event_list_shows_matches_jobs_and_unmatched_events(runner: FlaskCliRunner) -> None:
    rt = make_runtemplate(make_company())
    source = _json(runner, "event-source", "create", "gh", "--kind", "webhook")
    assert isinstance(source, dict)
    _json(
        runner,
        "event-rule",
        "create",
        "--source",
        "gh",
        "--runtemplate",
        str(rt.id),
        "--when",
        "$.go=true",
    )
    db.session.add_all(
        [
            Event(source_id=source["id"], payload={"go": True}),
            Event(source_id=source["id"], payload={"go": False}),
        ]
    )
    db.session.commit()
    process_batch()
    db.session.commit()
    events = _json(runner, "event", "list", "--source", "gh")
    assert isinstance(events, list)
    unmatched, matched = events  # newest first
    assert len(matched["jobs"]) == 1 and matched["matched_rules"]
    assert unmatched["jobs"] == [] and unmatched["matched_rules"] == []
    assert unmatched["status"] == "processed"


def test_a_password_in_a_source_url_is_masked_in_listings(runner: FlaskCliRunner) -> None:
    _json(
        runner,
        "event-source",
        "create",
        "rabbit",
        "--kind",
        "amqp",
        "--config",
        "url=amqp://bob:hunter2@127.0.0.1:5672/%2F",
        "--config",
        "queue=q",
    )
    listed = runner.invoke(args=["event-source", "list", "--format", "json"])
    assert "hunter2" not in listed.output and "amqp://bob:" in listed.output


def test_a_rule_of_a_company_source_cannot_target_another_company(
    runner: FlaskCliRunner,
) -> None:
    mine, theirs = make_company(), make_company()
    foreign = make_runtemplate(theirs)
    _json(runner, "event-source", "create", "erp", "--kind", "webhook", "--company", mine.slug)
    result = runner.invoke(
        args=["event-rule", "create", "--source", "erp", "--runtemplate", str(foreign.id)]
    )
    assert result.exit_code != 0
    assert f"runtemplate {foreign.id}: not a RunTemplate of the company of source 'erp'" in (
        result.output
    )
    assert _json(runner, "event-rule", "list", "--source", "erp") == []
