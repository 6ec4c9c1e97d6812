"""Tenant-supplied expressions cannot stall a daemon: patterns run on RE2, walks are capped."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import Worker
from multiflexi_web.security.expressions import ExpressionError, check_path, compile_pattern
from multiflexi_web.services.jobs import artifacts
from tests.executor_support import job, schedule, shell_rt, show_logs, start_daemon, stop, wait_for

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
    proc = start_daemon(db_url, tmp_path, MULTIFLEXI_LOST_AFTER="3")
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
