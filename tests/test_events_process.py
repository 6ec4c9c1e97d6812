"""Stored events become jobs: rules fire by priority, env mapping, unmatched events are kept."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, text

from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventRule, EventSource, EventStatus, Job, RunTemplate
from multiflexi_web.security.secrets import cipher
from multiflexi_web.services.events.catalog import (
    EventSourceError,
    RuleSpec,
    create_rule,
    create_source,
    spec_of,
    try_payload,
)
from multiflexi_web.services.events.process import has_pending, jobs_of, process_batch
from multiflexi_web.services.events.sink import DbSink
from multiflexi_web.services.events.store import Incoming, store_event
from multiflexi_web.sources import changes_db
from tests.factories import make_company, make_runtemplate


def _rt(active: bool = True) -> RunTemplate:
    return make_runtemplate(make_company(), active=active)


def _env(job: Job) -> dict[str, str]:
    assert job.env_override is not None
    env: dict[str, str] = cipher().decrypt_json(job.env_override)
    return env


def _store(source: EventSource, payload: Any, delivery: str | None = None) -> Event:
    event, _ = store_event(source, Incoming(payload=payload, delivery_id=delivery))
    db.session.commit()
    return event


def test_matching_rules_each_make_one_job_with_mapped_env(app: Flask) -> None:
    source = create_source("gh", "webhook")
    low, high, other = _rt(), _rt(), _rt()
    create_rule(source, RuleSpec(low.id, "low", env_mapping={"REPO": "$.repo.name"}, admin=True))
    create_rule(
        source,
        RuleSpec(
            high.id,
            "high",
            priority=10,
            conditions=[{"path": "$.action", "op": "in", "value": ["opened"]}],
        ),
    )
    create_rule(
        source, RuleSpec(other.id, "never", conditions=[{"path": "$.nope", "op": "exists"}])
    )
    db.session.commit()
    event = _store(source, {"action": "opened", "repo": {"name": "mf"}})

    [outcome] = process_batch()
    db.session.commit()

    jobs = jobs_of([event.id])[event.id]
    assert [j.runtemplate_id for j in jobs] == [high.id, low.id]  # priority order
    assert all(j.schedule_type == "event" and j.event_id == event.id for j in jobs)
    assert _env(jobs[1]) == {"EVENT_ID": str(event.id), "EVENT_SOURCE": "gh", "REPO": "mf"}
    db.session.refresh(event)
    assert event.status == EventStatus.PROCESSED.value and event.processed_at is not None
    assert len(event.matched_rules) == 2 and outcome.job_ids == tuple(j.id for j in jobs)
    assert process_batch() == [] and not has_pending()


def test_an_event_matching_nothing_is_kept_and_marked(app: Flask) -> None:
    source = create_source("quiet", "webhook")
    create_rule(source, RuleSpec(_rt().id, conditions=[{"path": "$.x", "value": 1}]))
    event = _store(source, {"x": 2})
    process_batch()
    db.session.commit()
    db.session.refresh(event)
    assert event.status == EventStatus.PROCESSED.value and event.matched_rules == []
    assert jobs_of([event.id]) == {event.id: []}


def test_an_inactive_runtemplate_gets_no_job_and_the_event_says_why(app: Flask) -> None:
    source = create_source("s", "webhook")
    rt = _rt(active=False)
    create_rule(source, RuleSpec(rt.id))
    event = _store(source, {})
    process_batch()
    db.session.commit()
    db.session.refresh(event)
    assert event.error and "inactive" in event.error and jobs_of([event.id])[event.id] == []


def test_one_broken_event_fails_alone_and_the_rest_make_their_jobs(app: Flask) -> None:
    good, broken = create_source("good", "webhook"), create_source("broken", "webhook")
    create_rule(good, RuleSpec(_rt().id))
    # A rule edited into nonsense behind the service's back.
    db.session.add(EventRule(source_id=broken.id, runtemplate_id=_rt().id, conditions="junk"))
    db.session.commit()
    first, bad, last = _store(good, {"n": 1}), _store(broken, {"n": 2}), _store(good, {"n": 3})
    outcomes = process_batch()
    db.session.commit()
    assert [o.event_id for o in outcomes] == [first.id, bad.id, last.id]
    made = jobs_of([first.id, bad.id, last.id])
    assert [len(made[e.id]) for e in (first, bad, last)] == [1, 0, 1]
    db.session.refresh(bad)
    assert bad.status == EventStatus.FAILED.value and "AttributeError" in (bad.error or "")


def test_events_are_claimed_once(app: Flask) -> None:
    source = create_source("s", "webhook")
    create_rule(source, RuleSpec(_rt().id))
    events = [_store(source, {"n": i}) for i in range(5)]
    assert len(process_batch(limit=3)) == 3
    db.session.commit()
    assert len(process_batch()) == 2
    db.session.commit()
    counts = {
        e.id: len(j) for e, j in zip(events, jobs_of([e.id for e in events]).values(), strict=True)
    }
    assert set(counts.values()) == {1}


def test_a_repeated_delivery_id_is_stored_once(app: Flask) -> None:
    source = create_source("s", "webhook")
    first = _store(source, {"n": 1}, "same")
    again, created = store_event(source, Incoming(payload={"n": 2}, delivery_id="same"))
    assert not created and again.id == first.id


def test_the_rule_tester_shows_matches_and_env(app: Flask) -> None:
    source = create_source("s", "webhook")
    rt = _rt()
    rule = create_rule(
        source,
        RuleSpec(
            rt.id,
            env_mapping={"N": "$.n"},
            conditions=[{"path": "$.n", "op": "exists"}],
            admin=True,
        ),
    )
    [hit] = try_payload(source, {"n": 5})
    assert hit.rule.id == rule.id and hit.env == {"EVENT_ID": "", "EVENT_SOURCE": "s", "N": "5"}
    assert try_payload(source, {"m": 5}) == []


def test_bad_source_and_rule_definitions_are_refused(app: Flask) -> None:
    with pytest.raises(EventSourceError, match="kind 'kafka': unknown"):
        create_source("k", "kafka")
    with pytest.raises(EventSourceError, match="config queue: required for a source of kind amqp"):
        create_source("q", "amqp", {"queue": ""})
    with pytest.raises(EventSourceError, match="config table 'x; drop': must be a plain SQL"):
        create_source("c", "changes-db", {"url": "sqlite:///a.db", "table": "x; drop"})
    with pytest.raises(EventSourceError, match="config url: not a database URL"):
        create_source("c", "changes-db", {"url": "nonsense"})
    source = create_source("s", "webhook")
    with pytest.raises(EventSourceError, match="name 's': another event source"):
        create_source("s", "webhook")
    with pytest.raises(EventSourceError, match="runtemplate 999: not found"):
        create_rule(source, RuleSpec(999))


def test_changes_db_poll_stores_each_change_once_and_moves_the_cursor(
    app: Flask, tmp_path: Path
) -> None:
    upstream = f"sqlite:///{tmp_path / 'acceptor.db'}"
    engine = create_engine(upstream)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE changes_cache (inversion INTEGER PRIMARY KEY, evidence TEXT,"
                " operation TEXT, recordid INTEGER, document_uri TEXT, context TEXT)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO changes_cache VALUES (3, 'banka', 'create', 11, NULL, NULL),"
                " (5, 'faktura-vydana', 'update', 12, 'https://x/12', '{\"kod\": \"FV1\"}')"
            )
        )
    source = create_source("abra", "changes-db", {"url": upstream})
    rt = _rt()
    create_rule(
        source,
        RuleSpec(
            rt.id,
            evidence="faktura-vydana",
            operation="update",
            env_mapping={"KOD": "$.kod"},
            admin=True,
        ),
    )
    db.session.commit()
    sink = DbSink(app, source.id, threading.Event())

    assert changes_db.poll_once(spec_of(source), sink) == 2
    assert changes_db.poll_once(spec_of(source), sink) == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM changes_cache")).scalar() == 0
    engine.dispose()
    db.session.commit()  # end the read snapshot taken before the sink's commits
    process_batch()
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(EventSource, source.id).last_processed_id == 5  # type: ignore[union-attr]
    [job] = db.session.query(Job).all()
    assert _env(job) == {
        "EVENT_ID": str(job.event_id),
        "EVENT_SOURCE": "abra",
        "EVENT_INVERSION": "5",
        "EVENT_EVIDENCE": "faktura-vydana",
        "EVENT_OPERATION": "update",
        "EVENT_RECORD_ID": "12",
        "EVENT_DOCUMENT_URI": "https://x/12",
        "KOD": "FV1",
    }


def test_a_company_source_starts_only_its_own_company_runtemplates(app: Flask) -> None:
    mine, theirs = make_company(), make_company()
    own, foreign = make_runtemplate(mine), make_runtemplate(theirs)
    source = create_source("erp", "webhook", company_id=mine.id)
    create_rule(source, RuleSpec(own.id, "own", env_mapping={"DOC": "$.doc"}, admin=True))
    with pytest.raises(
        EventSourceError,
        match=rf"runtemplate {foreign.id}: not a RunTemplate of the company of source",
    ):
        create_rule(source, RuleSpec(foreign.id, "cross", admin=True))
    # A global administrator's global source may start any company's RunTemplate.
    create_rule(create_source("global", "webhook"), RuleSpec(foreign.id, "any"))
    # A rule written before the check (or straight into the table) still starts nothing there.
    db.session.add(
        EventRule(source_id=source.id, runtemplate_id=foreign.id, name="old", conditions=[])
    )
    db.session.commit()
    event = _store(source, {"doc": "FV-1"})
    process_batch()
    db.session.commit()
    made = jobs_of([event.id])[event.id]
    assert [j.runtemplate_id for j in made] == [own.id]
    assert event.error is not None and f"RunTemplate {foreign.id} belongs to another" in event.error
