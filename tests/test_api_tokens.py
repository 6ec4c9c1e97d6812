"""Token issuing rules, the CLI's exact spelling, and the rate limiter's fixed window."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from multiflexi_web.api.v1.ratelimit import (
    LOCAL_FILE,
    FixedWindow,
    SqlWindow,
    counter_for,
    local_engine,
)
from multiflexi_web.extensions import db
from multiflexi_web.models import ApiToken
from multiflexi_web.services.accounts import tokens
from tests.api_helpers import make_scene
from tests.factories import reread


def test_fixed_window_counts_per_key_and_rolls_over() -> None:
    limiter = FixedWindow(2, 60)
    assert limiter.hit("a", 120.0) == (1, 0)
    assert limiter.hit("a", 130.0) == (0, 0)
    assert limiter.hit("a", 170.5) == (0, 10)  # wait until the window ends at 180
    assert limiter.hit("b", 170.5) == (1, 0)
    assert limiter.hit("a", 180.0) == (1, 0)


def _hits(url: str, folder: str, n: int) -> list[int]:
    """In another process: n requests of one token, each one's requests-left (-1: refused)."""
    from sqlalchemy import create_engine

    counter = counter_for(create_engine(url), folder, 60, 3600)
    return [
        left if not wait else -1
        for left, wait in (counter.hit("token:1", 7200.0 + i) for i in range(n))
    ]


def test_every_worker_process_shares_one_count(app: Flask) -> None:
    """Gunicorn's workers are processes: two of them hitting one token's limit at the same time
    let through exactly `limit` requests between them (the main database on PostgreSQL, the
    host's counter file on SQLite)."""
    url = db.engine.url.render_as_string(hide_password=False)
    folder = app.config["MULTIFLEXI"].tmp_dir
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.starmap(_hits, [(url, folder, 50), (url, folder, 50)])
    allowed = [left for run in results for left in run if left >= 0]
    assert len(allowed) == 60 and sorted(allowed) == list(range(60))
    counter = counter_for(db.engine, folder, 60, 3600)
    assert counter.hit("token:1", 7300.0)[1] > 0  # this process sees the spent window too
    assert counter.hit("token:2", 7300.0) == (59, 0)  # each token has its own


def test_issue_rules(app: Flask) -> None:
    s = make_scene(app)
    with pytest.raises(tokens.TokenError, match="not a member"):
        tokens.issue(s.viewer, "x", company=s.b)
    with pytest.raises(tokens.TokenError, match="expires_days"):
        tokens.issue(s.viewer, "x", expires_days=0)
    issued = tokens.issue(s.admin, "", company=s.b)  # a global admin may scope to any company
    assert issued.secret.startswith(tokens.PREFIX) and issued.token.name.startswith("token ")
    assert issued.token.token_hash == tokens.digest(issued.secret)
    assert issued.secret not in issued.token.token_hash


def test_cli_create_prints_the_token_once(app: Flask, runner: FlaskCliRunner) -> None:
    s = make_scene(app)
    args = ["token", "create", "--user", "operator", "--company", str(s.a.id), "--read-only"]
    result = runner.invoke(args=[*args, "--expires-days", "7", "--format", "json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["token"].startswith("mfx_") and out["read_only"] is True
    assert out["company_id"] == s.a.id and out["expires_at"]
    reread()
    assert db.session.query(ApiToken).one().token_hash == tokens.digest(out["token"])
    bad = runner.invoke(args=["token", "create", "--user", "nobody", "--format", "json"])
    assert bad.exit_code != 0 and "nobody" in bad.output
    foreign = runner.invoke(
        args=["token", "create", "--user", "viewer", "--company", "beta", "--format", "json"]
    )
    assert foreign.exit_code != 0 and "not a member" in foreign.output
    again = runner.invoke(args=["token", "revoke", str(out["id"])])
    assert again.exit_code == 0
    twice = runner.invoke(args=["token", "revoke", str(out["id"])])
    assert twice.exit_code != 0 and "already revoked" in twice.output


def _open_counter_file(folder: str, start: Any) -> int:
    """In another process: open the host's counter file the moment every process is ready."""
    start.wait(30)
    counter = SqlWindow(local_engine(folder), 10, 60)
    return counter.hit("token:1", 7200.0)[0]


def test_worker_processes_creating_the_counter_file_together_all_open_it(
    tmp_path: Path,
) -> None:
    """A new SQLite installation's gunicorn workers open the counter file at once; switching
    it to WAL or creating its table answered "database is locked" / "already exists" to all
    but one of them (seen as an intermittent failure of the test above)."""
    ctx = multiprocessing.get_context("spawn")
    for round_ in range(3):
        folder = str(tmp_path / f"round{round_}")
        with ctx.Manager() as manager:
            start = manager.Barrier(6)
            with ctx.Pool(6) as pool:
                left = pool.starmap(_open_counter_file, [(folder, start)] * 6)
        assert sorted(left) == [4, 5, 6, 7, 8, 9]  # six hits of one window, none refused
        assert (Path(folder) / LOCAL_FILE).stat().st_mode & 0o777 == 0o600
