"""Action runs handed over in memory: queued claimed by the executor's own dispatcher, with
the facts the finish holds, so that the dispatcher neither claims nor reads them
(runner/actions.py Handed, services/actions/outbox.py, services/actions/context.py)."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from daemons.runtime import Runtime
from multiflexi_web.extensions import db
from multiflexi_web.models import AppExitCode, RunTemplate
from multiflexi_web.models.action import ActionConfig, ActionDefault, ActionRun
from multiflexi_web.runner import action_process, actions
from multiflexi_web.runner import run as run_module
from multiflexi_web.runner.action_process import ActionProcess
from multiflexi_web.runner.actions import Dispatcher, Handed
from multiflexi_web.runner.pool import Executor
from multiflexi_web.services.actions import context, runs
from multiflexi_web.services.actions.context import Gathered
from multiflexi_web.services.actions.settings import ActionSettings
from multiflexi_web.services.jobs.output import OutputSink, store
from tests.action_support import http_peer
from tests.executor_support import schedule, shell_rt, wait_for

FAST = ActionSettings(
    timeout=5.0, backoff=0.0, lease=30.0, threads=4, linger=0.0, record_linger=0.0
)


@pytest.fixture(autouse=True)
def facts_stay_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """A job's facts are handed over only if read less than FACTS_FRESH (1 s) before its end:
    on a loaded machine `echo hello` took longer, the facts were left out, and the tests of
    what is handed over failed. They are kept fresh here; the test of the bound sets it to 0."""
    monkeypatch.setattr(run_module, "FACTS_FRESH", 3600.0)


class Collector:
    """Stands in for the executor's delivery process: keeps what the finishes hand over."""

    def __init__(self) -> None:
        self.owner_id: int | None = None
        self.items: list[Handed] = []

    def owner(self) -> int | None:
        return self.owner_id

    def hand_over(self, items: list[Handed]) -> None:
        self.items += items


def _drain_handing_to(app: Flask, collector: Collector) -> None:
    """An executor of this process runs every job, handing its action runs to `collector`."""
    db.session.commit()
    rt = Runtime("executor", app)
    rt.register()
    collector.owner_id = rt.worker_id
    actions.receive_handed(collector)
    try:
        Executor(rt, drain=True).serve()
    finally:
        actions.receive_handed(None)
        rt.unregister()
        db.session.rollback()


def _template(script: str, *, artifact: bool, pattern: str = "result.txt") -> RunTemplate:
    rt = shell_rt(script, artifacts=[{"path": pattern}] if artifact else None)
    db.session.add(AppExitCode(application_id=rt.application_id, code=3, description="no data"))
    db.session.add(ActionDefault(action="WebHook", config={"note": "from the defaults"}))
    for mode in ("success", "failure"):
        config = {"url": f"http://127.0.0.1:9/{mode}"}
        db.session.add(
            ActionConfig(runtemplate_id=rt.id, mode=mode, action="WebHook", config=config)
        )
    db.session.commit()
    return rt


@pytest.mark.parametrize(
    ("script", "artifact"),
    [
        ("echo hello; echo err 1>&2", False),
        (
            "for i in $(seq 1 40); do echo a$i; echo b$i 1>&2; done; echo r > result.txt; exit 3",
            True,
        ),
        ("exit 0", False),
        # More artifacts than one INSERT stores (statements.ARTIFACT_ROWS): several statements.
        ("for i in $(seq 10 20); do echo $i > r$i.log; done; exit 3", True),
    ],
    ids=["output", "interleaved-artifact-failure", "silent", "many-artifacts"],
)
def test_what_a_finish_hands_over_is_what_the_dispatcher_would_read(
    app: Flask, script: str, artifact: bool
) -> None:
    """Each handed run is already claimed in the database by the executor (its first attempt,
    under way), and its facts, completed with the artifacts' ids where the executor did not
    learn them, equal what context.gather reads for it from the database."""
    rt = _template(script, artifact=artifact, pattern="r*.log" if "r$i" in script else "result.txt")
    schedule(rt, 2)
    collector = Collector()
    _drain_handing_to(app, collector)

    assert len(collector.items) == 2
    for item in collector.items:
        row = db.session.get_one(ActionRun, item.run.id)
        assert (row.status, row.attempts, row.owner_id) == ("running", 1, collector.owner_id)
        assert row.claimed_at is not None
        assert item.run == runs.Claimed(
            row.id, row.job_id, "WebHook", row.config_id, row.idempotency_key, 1,
            collector.owner_id or 0,
        )  # fmt: skip
        assert item.found is not None, "the executor held everything a WebHook needs"
        found = item.found
        if found.artifacts is None:
            found = context.with_artifacts(db.session(), {item.run.id: found})[item.run.id]
        assert found == context.gather(db.session(), [item.run])[item.run.id]
    if "r$i" in script:
        found = collector.items[0].found
        assert found is not None and found.artifacts is not None
        assert len(found.artifacts) == 11  # the job printed nothing: no stdout.txt
    elif artifact:
        first = collector.items[0].found
        assert first is not None and first.job is not None
        assert first.job.exit_meaning == "no data"
        assert first.stored == {"note": "from the defaults", "url": "http://127.0.0.1:9/failure"}


def test_a_job_longer_than_its_facts_are_fresh_leaves_them_to_be_read(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its template's config may have changed while it ran: its runs are still handed over
    claimed, without facts, so that the dispatcher reads the current ones."""
    monkeypatch.setattr(run_module, "FACTS_FRESH", 0.0)
    rt = _template("echo hello", artifact=False)
    schedule(rt)
    collector = Collector()
    _drain_handing_to(app, collector)
    assert [item.found for item in collector.items] == [None]
    row = db.session.get_one(ActionRun, collector.items[0].run.id)
    assert (row.status, row.owner_id) == ("running", collector.owner_id)


def test_without_a_receiver_runs_are_queued_pending_for_any_dispatcher(app: Flask) -> None:
    rt = _template("exit 0", artifact=False)
    schedule(rt)
    db.session.commit()
    rt_host = Runtime("executor", app)
    rt_host.register()
    try:
        Executor(rt_host, drain=True).serve()
    finally:
        rt_host.unregister()
    db.session.rollback()
    row = db.session.scalars(select(ActionRun)).one()
    assert (row.status, row.attempts, row.owner_id) == ("pending", 0, None)


def _handed_to_peer(app: Flask, url: str, count: int) -> Collector:
    """`count` jobs run by an executor of this process, each handing a WebHook run to `url`
    over to the Collector returned."""
    rt = _template("echo hello", artifact=False)
    db.session.execute(
        ActionConfig.__table__.update().values(config={"url": url})  # type: ignore[attr-defined]
    )
    db.session.commit()
    schedule(rt, count)
    collector = Collector()
    _drain_handing_to(app, collector)
    assert len(collector.items) == count
    return collector


def test_handed_runs_are_delivered_without_a_claim_or_a_read(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dispatcher starts runs handed with all their facts at once, without a claim or a
    read (a read fails here; its loop's polls claim nothing); their attempts are recorded
    under the executor's claim."""
    with http_peer() as peer:
        collector = _handed_to_peer(app, peer.url, 3)

        def refused(*_: object, **__: object) -> None:
            raise AssertionError("a handed run's facts were read")

        claim, claimed = runs.claim, []

        def watched(*args: Any, **kwargs: Any) -> list[runs.Claimed]:
            got = claim(*args, **kwargs)
            claimed.extend(got)
            return got

        monkeypatch.setattr(context, "gather", refused)
        monkeypatch.setattr(runs, "claim", watched)
        d = Dispatcher(app, collector.owner_id or 0, FAST, threading.Event())
        d.hand_over(collector.items)
        wait_for(lambda: len(peer.hits) == 3, timeout=30, what="the handed runs delivered")
        d.start()  # its loop records the attempts
        wait_for(lambda: _statuses() == ["succeeded"] * 3, timeout=30, what="the records")
        d.close()
    bodies = sorted((h.json() for h in peer.hits), key=lambda b: int(b["job_id"]))
    assert [b["job_id"] for b in bodies] == sorted(i.run.job_id for i in collector.items)
    assert {(b["status"], b["stdout_tail"], b["attempt"]) for b in bodies} == {
        ("succeeded", "hello\n", 1)
    }
    assert all(set(b["links"]["artifacts"]) == {"stdout.txt"} for b in bodies)
    assert sorted(peer.keys()) == sorted(i.run.idempotency_key or "" for i in collector.items)
    assert claimed == []  # the loop's polls found nothing of theirs to claim
    rows = db.session.scalars(select(ActionRun)).all()
    assert {(r.attempts, r.owner_id) for r in rows} == {(1, collector.owner_id)}


def test_records_wait_for_each_other_until_a_run_needs_a_pass(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Handed runs are delivered at once, but a pass that would only record their attempts
    waits (record_linger, an hour here) so that several share it; a nudge (a run queued
    elsewhere may wait for a claim) ends the wait, and so do RECORD_BATCH waiting attempts."""
    settings = replace(FAST, record_linger=3600.0, lease=36000.0)
    with http_peer() as peer:
        collector = _handed_to_peer(app, peer.url, 4)
        record_all, recorded = runs.record_all, []

        def watched(ended: Any, s: ActionSettings) -> list[str | None]:
            if ended:  # every pass calls it (a poll's pass with nothing)
                recorded.append(len(ended))
            return record_all(ended, s)

        monkeypatch.setattr(runs, "record_all", watched)
        d = Dispatcher(app, collector.owner_id or 0, settings, threading.Event()).start()
        try:
            d.hand_over(collector.items[:1])
            d.hand_over(collector.items[1:3])
            wait_for(lambda: len(peer.hits) == 3, timeout=30, what="three deliveries")
            time.sleep(0.5)  # a loop that recorded at once would have done so by now
            assert recorded == [] and _statuses() == ["running"] * 4
            d.nudge()
            wait_for(lambda: _statuses()[:3] == ["succeeded"] * 3, timeout=30, what="records")
            assert sum(recorded) == 3

            monkeypatch.setattr(actions, "RECORD_BATCH", 1)  # one waiting attempt is enough
            d.hand_over(collector.items[3:])
            wait_for(lambda: _statuses() == ["succeeded"] * 4, timeout=30, what="the batch")
        finally:
            d.close()
        assert sum(recorded) == 4


def test_handed_runs_not_started_go_back_to_pending_when_the_dispatcher_stops(
    app: Flask, tmp_path: Path
) -> None:
    """A stopping dispatcher gives the runs it was handed and never started back at once
    (pending, their claim's attempt not counted), rather than leaving them to their leases."""
    rt = _template("exit 0", artifact=False)
    schedule(rt, 2)
    collector = Collector()
    _drain_handing_to(app, collector)
    d = Dispatcher(app, collector.owner_id or 0, FAST, threading.Event())
    d.stop.set()  # stopping: what it is handed now is not started
    d.start()
    d.hand_over(collector.items)
    d.close()
    db.session.rollback()
    rows = db.session.scalars(select(ActionRun)).all()
    assert {(r.status, r.attempts, r.owner_id, r.claimed_at) for r in rows} == {
        ("pending", 0, None, None)
    }
    claimed = runs.claim(99, 10, FAST)
    assert sorted(c.id for c in claimed) == sorted(r.id for r in rows)


def _statuses() -> list[str]:
    db.session.rollback()
    return list(db.session.scalars(select(ActionRun.status).order_by(ActionRun.id)))


def test_a_tail_from_memory_is_the_tail_read_from_the_stored_rows(app: Flask) -> None:
    """Output alternating between the streams makes a row per chunk: the executor's tail of
    its unstored rows is the one context.tails reads once they are stored (the last
    TAIL_CHUNKS rows of each stream, cut to TAIL_BYTES)."""
    job_id = schedule(shell_rt("exit 0"))[0]
    sink = OutputSink(job_id, 1 << 20)
    for i in range(context.TAIL_CHUNKS + 9):
        sink.add("stdout", f"out {i}\n".encode())
        sink.add("stderr", f"err {i} ".encode() * (40 if i == 3 else 1))
    sink.add("stdout", "\u00e9".encode() * 5000)  # past TAIL_BYTES, cut inside a character
    memory = {s: sink.memory_tail(s, context.TAIL_CHUNKS) for s in ("stdout", "stderr")}
    store(db.session(), sink.take(), job_id)
    db.session.commit()
    assert sink.memory_tail("stdout", context.TAIL_CHUNKS) is None  # stored: read it there
    stored = context.tails(db.session(), [job_id])
    for stream, rows in memory.items():
        assert rows is not None and len(rows) == context.TAIL_CHUNKS
        assert context.tail_text(rows) == stored[(job_id, stream)]


def test_handed_runs_past_the_bound_go_back_to_pending(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dispatcher keeps at most so many handed runs waiting for a thread (a hanging peer
    must not grow its memory without a bound): the newest past it are released to pending by
    its next pass, for whichever dispatcher claims them later."""
    monkeypatch.setattr(actions, "HANDED_MIN", 1)
    monkeypatch.setattr(actions, "HANDED_PER_THREAD", 0)
    monkeypatch.setattr(run_module, "FACTS_FRESH", 0.0)  # none can start before a read
    rt = _template("exit 0", artifact=False)
    schedule(rt, 3)
    collector = Collector()
    _drain_handing_to(app, collector)
    d = Dispatcher(app, collector.owner_id or 0, FAST, threading.Event())
    d.stop.set()
    d.start()
    d.hand_over(collector.items)
    d._pass(claim=False)
    db.session.rollback()
    first, *rest = sorted(collector.items, key=lambda i: i.run.id)
    assert db.session.get_one(ActionRun, first.run.id).status == "running"
    assert {
        (r.status, r.attempts, r.owner_id)
        for r in db.session.scalars(
            select(ActionRun).where(ActionRun.id.in_([i.run.id for i in rest]))
        )
    } == {("pending", 0, None)}
    d.close()


def test_runs_the_dead_child_never_got_go_to_the_fallback_thread(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hand-over written to a delivery process that died (its pipe broken) is kept, and the
    thread that takes the child's place gets it: never written, so never delivered."""
    got: list[Handed] = []
    monkeypatch.setattr(Dispatcher, "hand_over", lambda _self, items: got.extend(items))
    read, write = os.pipe()
    os.close(read)  # the child is gone
    handle = ActionProcess(app, FAST, 0, write, threading.Event())
    handle.owner_id = 7
    item = Handed(runs.Claimed(1, 2, "WebHook", 3, "k", 1, 7), None)
    handle.hand_over([item])
    assert got == [] and handle.owner() == 7  # its death is not known yet
    _child_reaped(handle)
    assert got == [item]


def test_a_child_that_does_not_read_gets_no_more_runs_claimed_for_it(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hand-overs a child does not read wait in the executor's memory: past QUEUED_MAX of
    them the finishes stop queuing runs claimed for it (they queue them pending instead)."""
    monkeypatch.setattr(action_process, "QUEUED_MAX", 2)
    read, write = os.pipe()  # the child's end is open and never read
    try:
        handle = ActionProcess(app, FAST, 0, write, threading.Event())
        handle.owner_id = 7
        big = "x" * 70_000  # more than the pipe holds
        found = Gathered(None, None, [], big, "")
        item = Handed(runs.Claimed(1, 2, "WebHook", 3, "k", 1, 7), found)
        handle.hand_over([item])  # partly written, the rest queued for the writer thread
        assert handle.owner() == 7
        handle.hand_over([item])
        assert handle.owner() is None
    finally:
        os.close(read)
        os.close(write)


def test_a_hand_over_cut_off_by_the_childs_death_goes_to_the_fallback_thread(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer thread was writing the rest of a hand-over when the child died: the child
    never read it whole, so the thread that takes its place gets those runs."""
    got: list[Handed] = []
    monkeypatch.setattr(Dispatcher, "hand_over", lambda _self, items: got.extend(items))
    read, write = os.pipe()
    handle = ActionProcess(app, FAST, 0, write, threading.Event())
    handle.owner_id = 7
    item = Handed(
        runs.Claimed(1, 2, "WebHook", 3, "k", 1, 7), Gathered(None, None, [], "x" * 70_000, "")
    )
    handle.hand_over([item])  # part of it fits in the pipe; the writer thread has the rest
    handle._writer.start()
    os.close(read)  # the child dies without reading
    wait_for(lambda: not handle._writer.is_alive(), timeout=30, what="the writer to give up")
    _child_reaped(handle)
    assert got == [item]


def _child_reaped(handle: ActionProcess) -> None:
    """What the handle's watch thread does once it reaped its child: a thread takes over
    (stopped again at once here)."""
    with handle._lock:
        handle.exited.set()
        handle._take_over()
    assert handle._fallback is not None
    handle._fallback.close()
