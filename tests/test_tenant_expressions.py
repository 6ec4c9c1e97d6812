"""Tenant-supplied expressions cannot stall a daemon: patterns run on RE2, walks are capped."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventRule, Job, Worker
from multiflexi_web.security.expressions import ExpressionError, check_path, compile_pattern
from multiflexi_web.services.catalogue.fields import FieldValueError, normalise_value
from multiflexi_web.services.events.catalog import RuleSpec, create_rule, create_source
from multiflexi_web.services.jobs import artifacts
from tests.executor_support import job, schedule, shell_rt, show_logs, start_daemon, stop
from tests.factories import make_company, make_runtemplate
from tests.test_eventor import spawn_eventor, wait_for
from tests.test_eventor import stop as stop_eventor

EVIL = "(a+)+$"  # exponential on Python's backtracking engine for "aaaa…!"
EVIL_NAME = "a" * 64 + "!"


@pytest.fixture(autouse=True)
def _logs_on_failure(tmp_path: Path) -> Iterator[None]:
    yield
    show_logs(tmp_path)


def test_evil_pattern_is_linear() -> None:
    assert compile_pattern(EVIL).search("a" * 100_000 + "!") is None
    assert compile_pattern(EVIL).search("xaaa") is not None


def test_patterns_re2_cannot_run_are_named() -> None:
    for pattern in (r"(a)\1", "x(?=y)", "(?<!a)b"):
        with pytest.raises(ExpressionError, match=r"pattern .*not supported"):
            compile_pattern(pattern)
    with pytest.raises(ExpressionError, match="longer than 500"):
        compile_pattern("a" * 501)


def test_long_email_value_is_refused_without_backtracking() -> None:
    """EMAIL_RE is quadratic on 'a@....' (minutes at 100 kB): the length is checked first."""
    with pytest.raises(FieldValueError, match="is not an e-mail address"):
        normalise_value("email", "a@" + "." * 100_000 + "x y")
    assert normalise_value("email", "ops@example.com") == "ops@example.com"


def test_json_path_bounds() -> None:
    check_path("$.a.b", 2, "path")
    with pytest.raises(ExpressionError, match="deeper than 32 steps"):
        check_path("$" + ".a" * 33, 33, "condition 1")
    with pytest.raises(ExpressionError, match="longer than 500 characters"):
        check_path("$." + "a" * 600, 1, "condition 1")


def test_artifact_scan_stops_at_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts, "SCAN_MAX", 50)
    monkeypatch.setattr(artifacts, "SCAN_DEPTH", 2)
    for i in range(80):
        (tmp_path / f"r{i:03}.json").write_text("x")
    deep = tmp_path / "d1" / "d2" / "d3"
    deep.mkdir(parents=True)
    (deep / "deep.json").write_text("x")
    found = artifacts.files_to_keep(tmp_path, [r"\.json$"], None)
    assert len(found) == 50
    assert found[0].name == "r000.json"
    assert not [p for p in found if p.name == "deep.json"]


@pytest.mark.slow
def test_evil_artifact_pattern_does_not_stall_the_executor(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    """A job leaving a file name that takes `(a+)+$` exponential time in `re`: the executor
    stores its artifacts, keeps beating, runs another company's job and obeys SIGTERM."""
    evil = shell_rt(
        f"touch {EVIL_NAME} aaa; mkdir d; cd d; seq 1 12000 | xargs touch; echo done",
        artifacts=[{"name": "a", "path": EVIL, "type": "file"}],
    )
    other = shell_rt("echo other")
    [evil_id] = schedule(evil)
    # A lease long enough that a loaded host's slow commits cannot fence the job (the beat
    # still comes every 2 s for the check below).
    proc = start_daemon(db_url, tmp_path, MULTIFLEXI_LOST_AFTER="12")
    try:
        wait_for(lambda: job(evil_id).status == "succeeded", 90, "the evil job to finish")
        beat = _heartbeat()
        [other_id] = schedule(other)
        wait_for(lambda: job(other_id).status == "succeeded", 60, "another job to run")
        wait_for(lambda: _heartbeat() > beat, 60, "the executor's heartbeat")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        stop(proc)
    names = {a.filename for a in artifacts.list_for_job(db.session(), evil_id)}
    assert "aaa" in names and EVIL_NAME not in names


def _heartbeat() -> datetime:
    db.session.rollback()
    beat = db.session.scalar(select(Worker.heartbeat_at).where(Worker.kind == "executor"))
    assert beat is not None
    return beat


@pytest.mark.slow
def test_evil_rules_and_paths_do_not_stall_the_eventor(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    """Rules stored before the caps (100,000-step paths, 100,000 'in' values, a 100,000-char
    selector) against large nested payloads: the eventor processes every event, keeps beating,
    and a sane rule still makes its jobs."""
    source = create_source("evil", "webhook")
    company = make_company()
    long_path = "$" + ".a" * 50_000
    evil = EventRule(
        source_id=source.id,
        runtemplate_id=make_runtemplate(company).id,
        name="evil",
        priority=1,
        conditions=[
            {"path": long_path, "op": "exists"},
            {"path": "$.list", "op": "in", "value": list(range(100_000))},
        ],
        env_mapping={"X": "$" + "[0]" * 50_000, "Y": "$." + "b" * 100_000},
    )
    db.session.add(evil)
    create_rule(
        source, RuleSpec(make_runtemplate(company).id, env_mapping={"N": "$.n"}, admin=True)
    )
    nested: object = {"leaf": 1}
    for _ in range(60):
        nested = {"a": nested}
    payloads = [{"n": i, "a": nested, "list": list(range(20_000))} for i in range(5)]
    db.session.add_all(Event(source_id=source.id, payload=p) for p in payloads)
    db.session.commit()
    log = tmp_path / "eventor.log"
    proc = spawn_eventor(db_url, log, "--poll", "0.05")
    try:
        wait_for(lambda: _eventor_beat() is not None, 30, "the eventor's worker row")
        wait_for(lambda: _jobs_made() == 5, 120, "the sane rule's five jobs")
        beat = _eventor_beat()
        wait_for(lambda: (_eventor_beat() or beat) > beat, 60, "the eventor's next heartbeat")
    finally:
        stop_eventor(proc, log)


def _jobs_made() -> int:
    return db.session.scalar(select(func.count(Job.id))) or 0


def _eventor_beat() -> Any:
    return db.session.scalar(select(Worker.heartbeat_at).where(Worker.kind == "eventor"))
