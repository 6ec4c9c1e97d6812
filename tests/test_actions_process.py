"""Action delivery with real executor processes: kill -9 mid-delivery, two executors sharing
500 runs on PostgreSQL (each delivered exactly once)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import RunTemplate, Worker, utcnow
from multiflexi_web.models.action import ActionRun
from multiflexi_web.services.actions import configure
from tests.action_support import Peer, http_peer
from tests.executor_support import schedule, shell_rt, show_logs, start_daemon, stop, wait_for
from tests.factories import make_job

pytestmark = pytest.mark.slow
PG_ONLY = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


@pytest.fixture(autouse=True)
def _logs_on_failure(tmp_path: Path) -> Iterator[None]:
    yield
    show_logs(tmp_path)


def _workers() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).where(Worker.status == "running")) or 0


def _run() -> ActionRun:
    db.session.rollback()
    run = db.session.scalar(select(ActionRun))
    assert run is not None
    return run


def test_kill_9_mid_delivery_is_delivered_once_after_restart(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    release = threading.Event()

    def answer(n: int) -> tuple[int, str]:
        if n == 0:
            release.wait(30)  # the first delivery hangs until its executor is dead
        return 200, "ok"

    with http_peer(Peer(answer=answer)) as peer:
        rt = shell_rt("exit 0")
        configure.put(rt, "success", "WebHook", {"url": peer.url})
        schedule(rt)
        env = {"MULTIFLEXI_ACTION_TIMEOUT": "20", "MULTIFLEXI_ACTION_LEASE": "2"}
        first = start_daemon(db_url, tmp_path, log_name="first", **env)
        wait_for(lambda: len(peer.hits) == 1, 60, "the first delivery to reach the peer")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        release.set()
        assert _run().status == "running"  # the dead executor's lease is still on it
        second = start_daemon(db_url, tmp_path, log_name="second", **env)
        try:
            wait_for(lambda: _run().status == "succeeded", 60, "the run to be delivered again")
        finally:
            stop(second)
    run = _run()
    assert run.attempts == 2 and len(peer.hits) == 2
    assert set(peer.keys()) == {run.idempotency_key}  # the peer can tell it is one delivery


@PG_ONLY
def test_two_executors_deliver_500_runs_exactly_once(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    threads = 8
    both = threading.Event()  # more deliveries in flight than one executor has threads
    lock, in_flight = threading.Lock(), [0]
    give_up: list[float] = []  # 60 s after the first hit every delivery goes on (a failure)

    def answer(n: int) -> tuple[int, str]:
        # Every delivery waits here until more are in flight than one executor can hold: only
        # when the second executor claims too, while the first is busy, do they go on.
        with lock:
            in_flight[0] += 1
            if in_flight[0] > threads:
                both.set()
            give_up[:] = give_up or [time.monotonic() + 60]
        both.wait(max(0.0, give_up[0] - time.monotonic()))
        with lock:
            in_flight[0] -= 1
        return 200, "ok"

    peer = Peer(answer=answer)
    with http_peer(peer):
        rt = shell_rt("exit 0")
        config = configure.put(rt, "success", "WebHook", {"url": peer.url})
        jobs = [make_job(rt) for _ in range(500)]
        # The attempt timeout outlasts the hold above: no delivery is retried because of it.
        env = {"MULTIFLEXI_ACTION_THREADS": str(threads), "MULTIFLEXI_ACTION_TIMEOUT": "90"}
        procs = [start_daemon(db_url, tmp_path, log_name=f"ex{i}", **env) for i in (1, 2)]
        try:
            wait_for(lambda: _workers() == 2, 60, "both executors to start")
            for j in jobs:  # the outbox rows of 500 finished jobs, as their finishes left them
                db.session.add(
                    ActionRun(
                        job_id=j.id,
                        action="WebHook",
                        mode="success",
                        config_id=config.id,
                        idempotency_key=f"multiflexi-{j.id}-{config.id}",
                        next_attempt_at=utcnow(),
                    )
                )
            db.session.commit()

            def delivered() -> bool:
                db.session.rollback()
                done = select(func.count()).where(ActionRun.status == "succeeded")
                return db.session.scalar(done) == 500

            wait_for(delivered, 180, "500 delivered runs")
        finally:
            for proc in procs:
                stop(proc)
    counts = Counter(peer.keys())
    assert len(counts) == 500 and set(counts.values()) == {1}
    # Both delivered: a claim takes at most the claimer's free threads (it once took every due
    # run, and the other executor found none), so the second finds runs while the first is busy.
    assert both.is_set(), "never more deliveries in flight than one executor's threads"
    owners = select(ActionRun.owner_id).where(ActionRun.status == "succeeded").distinct()
    assert len(db.session.scalars(owners).all()) == 2


def _delivery_process(executor: int) -> int | None:
    """The executor's forked delivery process: its one child with the executor's command line."""
    own = Path(f"/proc/{executor}/cmdline").read_bytes()
    try:
        kids = Path(f"/proc/{executor}/task/{executor}/children").read_text().split()
    except OSError:
        return None
    for kid in map(int, kids):
        try:
            if Path(f"/proc/{kid}/cmdline").read_bytes() == own:
                return kid
        except OSError:
            continue
    return None


def _nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # a zombie: dead, waiting for whoever reaps it


def _delivered(n: int) -> bool:
    db.session.rollback()
    done = select(func.count()).where(ActionRun.status == "succeeded")
    return db.session.scalar(done) == n


def _hooked_executor(
    peer: Peer, db_url: str, tmp_path: Path, **env: str
) -> tuple[RunTemplate, subprocess.Popen[bytes]]:
    """A template with a WebHook to `peer`, and a started executor (registered)."""
    rt = shell_rt("exit 0")
    configure.put(rt, "success", "WebHook", {"url": peer.url})
    db.session.commit()
    proc = start_daemon(db_url, tmp_path, **env)
    wait_for(lambda: _workers() == 1, 60, "the executor to start")
    return rt, proc


def test_deliveries_run_in_a_niced_child_that_dies_with_the_executor(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    with http_peer() as peer:
        rt, proc = _hooked_executor(peer, db_url, tmp_path, MULTIFLEXI_ACTION_NICE="7")
        try:
            child = _delivery_process(proc.pid)
            assert child is not None, "no delivery process beside the executor"
            assert _nice(child) == _nice(proc.pid) + 7
            schedule(rt)
            wait_for(lambda: _delivered(1), 60, "the run to be delivered")
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            # It is part of the executor: killed with it, its runs left to their leases.
            wait_for(lambda: _gone(child), 30, "the delivery process to die with the executor")
        finally:
            stop(proc)
    assert len(peer.hits) == 1


def test_a_dead_delivery_process_is_replaced_by_a_thread(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    with http_peer() as peer:
        rt, proc = _hooked_executor(peer, db_url, tmp_path)
        try:
            child = _delivery_process(proc.pid)
            assert child is not None
            os.kill(child, signal.SIGKILL)
            log = tmp_path / "executor.log"
            wait_for(lambda: "dispatch_process_lost" in log.read_text(), 30, "the loss noticed")
            schedule(rt)
            wait_for(lambda: _delivered(1), 60, "the run to be delivered by the executor's thread")
            assert stop(proc) == 0
        finally:
            stop(proc)
    assert len(peer.hits) == 1
