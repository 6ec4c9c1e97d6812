"""Claiming action runs: a claim takes at most its limit, claims never overlap, leases expire,
a run the dispatcher cannot perform fails alone, alike attempts are recorded together, and the
dispatcher lingers between passes only while runs trickle in."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from multiflexi_web.actions.base import ActionContext, Outcome
from multiflexi_web.actions.web_hook import WebHook
from multiflexi_web.extensions import db
from multiflexi_web.models import utcnow
from multiflexi_web.models.action import ActionConfig, ActionRun
from multiflexi_web.runner.actions import Dispatcher
from multiflexi_web.services.actions import runs
from tests.action_support import FAST, Peer, dispatch_all, http_peer
from tests.executor_support import shell_rt, wait_for
from tests.factories import make_job


def _queue(count: int) -> None:
    rt = shell_rt("exit 0")
    now = utcnow()
    for _ in range(count):
        job = make_job(rt)
        db.session.add(
            ActionRun(
                job_id=job.id,
                action="WebHook",
                mode="success",
                idempotency_key=f"claim-{job.id}",
                next_attempt_at=now,
            )
        )
    db.session.commit()


def test_a_claim_takes_its_limit_and_the_next_claim_the_following_runs(app: Flask) -> None:
    # 200 due runs in a fresh table: the plan PostgreSQL picks for so small a table ran the
    # picking subquery again per row and one claim took all 200 (fixed: a CTE, run once).
    _queue(200)
    first = runs.claim(1, 8, FAST)
    db.session.commit()
    second = runs.claim(2, 8, FAST)
    db.session.commit()
    assert len(first) == 8 and len(second) == 8
    assert not {c.id for c in first} & {c.id for c in second}
    running = select(func.count()).where(ActionRun.status == "running")
    assert db.session.scalar(running) == 16
    assert {c.attempts for c in first + second} == {1}


def test_an_expired_lease_is_claimed_again_by_another_owner(app: Flask) -> None:
    _queue(3)
    taken = runs.claim(1, 10, FAST)
    db.session.commit()
    assert len(taken) == 3
    assert runs.claim(2, 10, FAST) == []  # leased
    later = utcnow() + timedelta(seconds=FAST.lease + 1)
    again = runs.claim(2, 10, FAST, now=later)
    db.session.commit()
    assert sorted(c.id for c in again) == sorted(c.id for c in taken)
    assert {(c.owner_id, c.attempts) for c in again} == {(2, 2)}


def test_a_run_of_an_unknown_kind_fails_alone(app: Flask) -> None:
    """Its kind was removed (a downgrade, a renamed plug-in): the run is recorded failed with
    why, the other runs of the pass are delivered, and the dispatcher is not stuck on it."""
    rt = shell_rt("exit 0")
    now = utcnow()
    with http_peer() as peer:
        for kind, config in (("Gone", {}), ("WebHook", {"url": peer.url})):
            cfg = ActionConfig(runtemplate_id=rt.id, mode="success", action=kind, config=config)
            db.session.add(cfg)
            db.session.flush()
            job = make_job(rt)
            db.session.add(
                ActionRun(job_id=job.id, action=kind, mode="success", config_id=cfg.id,
                          idempotency_key=f"kind-{job.id}", next_attempt_at=now)
            )  # fmt: skip
        db.session.commit()
        dispatch_all(app)
        got = {a: s for a, s in db.session.execute(select(ActionRun.action, ActionRun.status))}
        [error] = db.session.scalars(select(ActionRun.error).where(ActionRun.action == "Gone"))
    assert got == {"Gone": "failed", "WebHook": "succeeded"}
    assert error is not None and "'Gone': unknown" in error
    assert len(peer.hits) == 1


def test_alike_attempts_are_recorded_together_and_a_lost_lease_is_not_overwritten(
    app: Flask,
) -> None:
    """A pass records its alike attempts in one statement; a run another owner took meanwhile
    (its lease expired) keeps that owner's claim, and only it is reported lost."""
    _queue(4)
    mine = runs.claim(1, 10, FAST)
    db.session.commit()
    later = utcnow() + timedelta(seconds=FAST.lease + 1)
    lost = mine[1]
    db.session.execute(
        ActionRun.__table__.update()
        .where(ActionRun.id == lost.id)
        .values(owner_id=2, attempts=2, claimed_at=later)
    )  # as another executor's claim of the expired lease leaves it
    ok, failed = Outcome(True, response="HTTP 200: ok"), Outcome(False, error="HTTP 400: no")
    outcomes = [ok, ok, ok, failed]
    statuses = runs.record_all([(c, o, []) for c, o in zip(mine, outcomes, strict=True)], FAST)
    db.session.commit()
    assert statuses == ["succeeded", None, "succeeded", "failed"]
    rows = {
        r.id: (r.status, r.owner_id, r.attempts, r.response, r.error)
        for r in db.session.scalars(select(ActionRun))
    }
    assert rows[mine[0].id] == rows[mine[2].id] == ("succeeded", 1, 1, "HTTP 200: ok", None)
    assert rows[lost.id] == ("running", 2, 2, None, None)
    assert rows[mine[3].id] == ("failed", 1, 1, None, "HTTP 400: no")


def _webhook_runs(rt_url: str, count: int) -> None:
    rt = shell_rt("exit 0")
    cfg = ActionConfig(
        runtemplate_id=rt.id, mode="success", action="WebHook", config={"url": rt_url}
    )
    db.session.add(cfg)
    db.session.flush()
    for _ in range(count):
        job = make_job(rt)
        db.session.add(
            ActionRun(job_id=job.id, action="WebHook", mode="success", config_id=cfg.id,
                      idempotency_key=f"linger-{job.id}", next_attempt_at=utcnow())
        )  # fmt: skip
    db.session.commit()


def test_a_trickle_lingers_a_backlog_does_not_and_close_ends_a_linger(app: Flask) -> None:
    """With an hour's linger: an idle dispatcher's first pass claims at once; a backlog (claims
    that fill every free thread) is delivered pass after pass without waiting; once a pass
    found fewer runs than free threads, the next waits, and close() ends that wait."""
    settings = replace(FAST, threads=2, linger=3600.0)
    with http_peer() as peer:
        _webhook_runs(peer.url, 6)
        d = Dispatcher(app, 1, settings, threading.Event()).start()
        try:
            wait_for(lambda: len(peer.hits) == 6, timeout=60, what="the backlog delivered")
            _webhook_runs(peer.url, 1)
            d.nudge()
            time.sleep(0.5)  # a run the lingering loop must not take (it is an hour away)
            assert len(peer.hits) == 6
        finally:
            closing = threading.Thread(target=d.close)
            closing.start()
            closing.join(30)
        assert not closing.is_alive(), "close() waited out the linger"


def test_a_delivery_outliving_its_lease_keeps_it_and_reaches_the_peer_once(app: Flask) -> None:
    """A peer that answers only after two leases: the delivering dispatcher stamps its lease
    again meanwhile, so another executor's claims find nothing, and the answer is recorded by
    the claim that made it. Without the renewal the second claim below takes the run once the
    first lease ran out, and the peer receives it twice."""
    settings = replace(FAST, threads=1, lease=2.0, timeout=30.0, linger=0.0)
    with http_peer(Peer(hang=threading.Event())) as peer:
        assert peer.hang is not None
        _webhook_runs(peer.url, 1)
        d = Dispatcher(app, 1, settings, threading.Event()).start()
        try:
            wait_for(lambda: len(peer.hits) == 1, timeout=30, what="the delivery to start")
            # The lease's expiry is a matter of time: another executor claims over two leases.
            end = time.monotonic() + 2 * settings.lease
            while time.monotonic() < end:
                assert runs.claim(2, 10, settings) == []
                db.session.commit()
                time.sleep(0.05)
            peer.hang.set()
            wait_for(lambda: _statuses() == ["succeeded"], timeout=30, what="the answer recorded")
        finally:
            peer.hang.set()
            d.close()
    assert len(peer.hits) == 1
    run = db.session.scalars(select(ActionRun)).one()
    assert (run.owner_id, run.attempts) == (1, 1)


def _statuses() -> list[str]:
    db.session.rollback()
    return list(db.session.scalars(select(ActionRun.status)))


def test_a_stuck_delivery_lets_its_lease_lapse_and_its_thread_be_replaced(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An attempt still running past every bound of its steps (2 x timeout + lease: here a
    plug-in blocked where no timeout reaches) is stuck: its lease is no longer stamped and its
    thread no longer counts, so the run is claimed again once the lease lapsed, here by the
    same one-thread dispatcher, and delivered. The stuck attempt's late outcome is not
    recorded over that one. (Renewed for ever, or its thread still counted, the run would
    never be retried: the test times out.)"""
    calls, release = [], threading.Event()

    def first_blocks(self: WebHook, ctx: ActionContext) -> Outcome:
        calls.append(ctx.attempt)
        if len(calls) == 1:
            release.wait(60)
            return Outcome(True, response="late")
        return Outcome(True, response="retried")

    monkeypatch.setattr(WebHook, "perform", first_blocks)
    settings = replace(FAST, threads=1, lease=1.0, timeout=0.5, linger=0.0)
    assert settings.stuck_after == 2.0
    _webhook_runs("http://127.0.0.1:9/hook", 1)
    d = Dispatcher(app, 1, settings, threading.Event()).start()
    try:
        wait_for(lambda: _statuses() == ["succeeded"], timeout=60, what="the retry delivered")
    finally:
        release.set()
        d.close()
    run = db.session.scalars(select(ActionRun)).one()
    assert (run.status, run.attempts, run.response) == ("succeeded", 2, "retried")
    assert calls == [1, 2]
    assert "action=delivery_stuck" in caplog.text and "thread_replaced=True" in caplog.text


def test_close_abandons_a_stuck_delivery_and_leaves_its_run_to_its_lease(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Closing waits at most its timeout for deliveries under way: a stuck one is abandoned
    (logged), its run stays claimed until its lease lapses, and the close returns (before, it
    waited on the stuck thread for ever)."""
    entered, release = threading.Event(), threading.Event()

    def blocks(self: WebHook, ctx: ActionContext) -> Outcome:
        entered.set()
        release.wait(120)
        return Outcome(True, response="late")

    monkeypatch.setattr(WebHook, "perform", blocks)
    _webhook_runs("http://127.0.0.1:9/hook", 1)
    d = Dispatcher(app, 1, replace(FAST, threads=1, linger=0.0), threading.Event()).start()
    try:
        assert entered.wait(60)
        d.close(timeout=0.2)
        assert "action=deliveries_abandoned threads=action_0" in caplog.text
        assert _statuses() == ["running"]
    finally:
        release.set()
