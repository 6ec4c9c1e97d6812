"""The finisher: a batch of finishes, its rows and counters, and the successors' claim."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from multiflexi_web.extensions import db
from multiflexi_web.models import JobStatus, RunTemplate
from multiflexi_web.runner.finish import Finisher
from multiflexi_web.runner.journal import INLINE_MAX, Journal
from multiflexi_web.runner.replay import replay_orphans
from multiflexi_web.runner.run import JobRun, RunSettings
from multiflexi_web.services.jobs import artifacts
from multiflexi_web.services.jobs import transitions as jobs
from multiflexi_web.services.jobs.claim import ClaimedJob
from multiflexi_web.services.jobs.transitions import Outcome
from tests.executor_support import job, output_of, schedule, shell_rt
from tests.factories import make_worker
from tests.pg_kill import backend_pid, terminate


def _runs(claimed: list[ClaimedJob], tmp_path: Path) -> list[JobRun]:
    cfg = RunSettings(tmp_path, tmp_path / "art", 1 << 20, 1 << 20, 60, 1.0, False, 1.0)
    runs = []
    for c in claimed:
        run = JobRun(c, cfg, threading.Event())
        run.output("stdout", f"out {c.id}\n".encode())
        run.outcome = Outcome(JobStatus.SUCCEEDED, 0)
        run._unsent.append(run.sink.take())
        runs.append(run)
    return runs


@pytest.fixture
def finisher(app: Flask) -> Finisher:
    fin = Finisher(app, threading.Event(), lambda: [], lambda _: None, max_pending=4)
    yield fin  # type: ignore[misc]
    fin.close()


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the batch sizes that went step by step."""
    careful: list[int] = []
    step_by_step = Finisher._step_by_step

    def spy(self: Finisher, batch: list[JobRun], owner: int | None) -> list[ClaimedJob]:
        careful.append(len(batch))
        return step_by_step(self, batch, owner)

    monkeypatch.setattr(Finisher, "_step_by_step", spy)
    return careful


def test_a_batch_records_statuses_output_and_counters(
    app: Flask, finisher: Finisher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = shell_rt("true", overlap_policy="allow")
    ids = schedule(rt, 3)
    runs = _runs(jobs.claim(make_worker().id, 3), tmp_path)
    careful = _spy(monkeypatch)
    finisher._commit(runs)
    # PostgreSQL: all in one round trip; SQLite (no round trips to save) goes step by step.
    assert careful == ([] if db.engine.dialect.name == "postgresql" else [3])
    for job_id in ids:
        assert job(job_id).status == JobStatus.SUCCEEDED.value
        assert output_of(job_id) == f"out {job_id}\n".encode()
    assert db.session.get(RunTemplate, rt.id).success_count == 3  # type: ignore[union-attr]


def test_a_job_reaped_meanwhile_keeps_its_status_and_is_not_counted(
    app: Flask, finisher: Finisher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = shell_rt("true", overlap_policy="allow")
    first, reaped, third = schedule(rt, 3)
    runs = _runs(jobs.claim(make_worker().id, 3), tmp_path)
    assert jobs.mark_lost(reaped, "test: its executor looked dead")
    db.session.commit()
    careful = _spy(monkeypatch)
    finisher._commit(runs)
    assert careful == [3]  # PostgreSQL's one-trip bet was lost and undone; SQLite never bets
    assert [job(i).status for i in (first, reaped, third)] == ["succeeded", "lost", "succeeded"]
    assert output_of(reaped) == b""  # nothing stored for a job that was not ours any more
    counted = db.session.get(RunTemplate, rt.id)
    db.session.refresh(counted)  # type: ignore[arg-type]
    assert (counted.success_count, counted.failure_count) == (2, 1)  # type: ignore[union-attr]


def test_jobs_claimed_ahead_go_back_to_the_queue_on_stop(app: Flask) -> None:
    from daemons.runtime import Runtime
    from multiflexi_web.runner.pool import Executor

    ids = schedule(shell_rt("true", overlap_policy="allow"), 3)
    rt = Runtime("executor", app)
    rt.register()
    ex = Executor(rt)
    try:
        with app.app_context():
            ex.ready.extend(jobs.claim(rt.worker_id or 0, 3))
        assert [job(i).status for i in ids] == ["running"] * 3
        ex._shutdown()
    finally:
        rt.unregister()
    db.session.rollback()
    for i in ids:
        j = job(i)
        assert (j.status, j.worker_id, j.started_at) == ("scheduled", None, None)
    assert not ex.ready


# -- finishes are never dropped ----------------------------------------------------------------


@pytest.fixture
def journaled(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Finisher:
    from multiflexi_web.db import retry as db_retry
    from multiflexi_web.runner import finish as finish_mod

    monkeypatch.setattr(finish_mod, "FIRST_WAIT", 0.01)
    monkeypatch.setattr(db_retry, "FIRST_WAIT", 0.01)
    journal = Journal(tmp_path / "state", 1 << 20)
    fin = Finisher(
        app, threading.Event(), lambda: [], lambda _: None, max_pending=4, journal=journal
    )
    yield fin  # type: ignore[misc]
    fin.close()
    journal.close()


def _journal_ids(fin: Finisher) -> list[int]:
    """The journaled jobs, by id: a claim returns its jobs in no promised order."""
    assert fin.journal is not None
    lines = fin.journal.path.read_text().splitlines()
    return sorted(json.loads(line)["job"] for line in lines)


def _counted(rt_id: int) -> tuple[int, int]:
    db.session.rollback()
    counted = db.session.get(RunTemplate, rt_id, populate_existing=True)
    assert counted is not None
    return counted.success_count, counted.failure_count


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_batch_whose_connection_is_killed_mid_pipeline_is_recorded_once(
    journaled: Finisher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = shell_rt("true", overlap_policy="allow")
    ids = schedule(rt, 3)
    runs = _runs(jobs.claim(make_worker().id, 3), tmp_path)
    add_counts, kills, seen = jobs.add_counts, [], []

    def killing(*args: object) -> None:
        if not kills:  # first try: the statuses and rows are already sent, unanswered
            kills.append(backend_pid())
            terminate(kills[0])
        add_counts(*args)  # type: ignore[arg-type]

    commit = Finisher._commit

    def spy(self: Finisher, batch: list[JobRun]) -> list[ClaimedJob]:
        if kills:  # the retry: what failed is on disk by now
            seen.append(_journal_ids(self))
        return commit(self, batch)

    monkeypatch.setattr(jobs, "add_counts", killing)
    monkeypatch.setattr(Finisher, "_commit", spy)
    journaled._record(runs)
    assert kills and seen == [ids]
    assert [job(i).status for i in ids] == ["succeeded"] * 3
    assert [output_of(i) for i in ids] == [f"out {i}\n".encode() for i in ids]  # stored once
    assert _counted(rt.id) == (3, 0)
    assert journaled.journal is not None and journaled.journal.path.read_text() == ""


def test_a_batch_that_fails_any_way_is_kept_and_retried_until_it_commits(
    journaled: Finisher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only transient database errors: whatever escapes, the finish is never dropped."""
    rt = shell_rt("true", overlap_policy="allow")
    ids = schedule(rt, 2)
    runs = _runs(jobs.claim(make_worker().id, 2), tmp_path)
    commit, failures = Finisher._commit, [RuntimeError("boom"), _locked()]

    def flaky(self: Finisher, batch: list[JobRun]) -> list[ClaimedJob]:
        if failures:
            raise failures.pop(0)
        return commit(self, batch)

    monkeypatch.setattr(Finisher, "_commit", flaky)
    journaled._record(runs)
    assert [job(i).status for i in ids] == ["succeeded"] * 2
    assert _counted(rt.id) == (2, 0)
    assert not journaled.pending()


def _locked() -> Exception:
    from sqlalchemy.exc import OperationalError

    return OperationalError("UPDATE job", {}, Exception("database is locked"))


def test_a_dead_executors_journal_is_replayed_once(app: Flask, tmp_path: Path) -> None:
    rt = shell_rt("true", overlap_policy="allow")
    ids = schedule(rt, 2)
    runs = _runs(jobs.claim(make_worker().id, 2), tmp_path)
    runs[1].outcome = Outcome(JobStatus.FAILED, 3, "exit code 3")
    runs[0].rows = [_artifact(runs[0].job.id, b"x" * (INLINE_MAX + 1))]  # a side file
    dead = Journal(tmp_path / "state", 1 << 20)
    entries = [r.journal_entry(7) for r in runs]
    dead.append(entries)
    dead.append(entries)  # written twice (a batch retried after a split): recorded once
    os.close(dead.fd)  # its process died: the lock is gone, the file stays
    assert len(list((tmp_path / "state").glob("*.bin"))) == 2

    def unit(fn: Callable[[], None]) -> None:
        fn()

    assert replay_orphans(tmp_path / "state", None, unit) == 4
    assert [job(i).status for i in ids] == ["succeeded", "failed"]
    assert job(ids[1]).exit_code == 3
    assert [output_of(i) for i in ids] == [f"out {i}\n".encode() for i in ids]
    [art] = artifacts.list_for_job(db.session(), ids[0])
    assert artifacts.content_of(art) == b"x" * (INLINE_MAX + 1)
    assert _counted(rt.id) == (1, 1)
    assert list((tmp_path / "state").iterdir()) == []  # replayed: removed with its side files


def _artifact(job_id: int, data: bytes) -> dict[str, object]:
    col = artifacts.Collector(job_id, Path("/nonexistent"), len(data) + 1)
    col.add_chunks("result.bin", [data])
    return col.rows[0]


def test_a_journal_held_by_a_live_executor_is_left_alone(app: Flask, tmp_path: Path) -> None:
    live = Journal(tmp_path / "state", 1 << 20)
    live.append([{"job": 1}])
    try:
        assert replay_orphans(tmp_path / "state", None, lambda fn: fn()) == 0
        assert live.path.exists()
        assert (live.path.stat().st_mode & 0o777, (tmp_path / "state").stat().st_mode & 0o777) == (
            0o600,
            0o700,
        )
    finally:
        live.close()


def test_clearing_the_journal_removes_its_side_files(tmp_path: Path) -> None:
    """A clear removes the side files this journal wrote (tracked, not looked for), and only
    those: another journal's stay for its replay."""
    folder = tmp_path / "state"
    journal = Journal(folder, 1 << 20)
    try:
        other = folder / "journal-elsewhere-7-0badcafe.1.bin"
        other.write_bytes(b"another journal's")
        big = {"job": 1, "data": [b"y" * (INLINE_MAX + 1), b"small"]}
        journal.append([big])
        journal.clear()
        assert list(folder.glob("*.bin")) == [other]
        other.unlink()
        journal.append([big, big])
        assert len(list(folder.glob("*.bin"))) == 2
        journal.clear()
        assert list(folder.glob("*.bin")) == []
        assert journal.path.read_bytes() == b""
    finally:
        journal.close()


def test_the_journal_refuses_what_it_cannot_write_back(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state", 1 << 20)
    try:
        with pytest.raises(TypeError, match="cannot write a set"):
            journal.append([{"job": 1, "odd": {1, 2}}])
    finally:
        journal.close()


def _journaled_finisher(app: Flask, folder: Path) -> Finisher:
    return Finisher(
        app, threading.Event(), lambda: [], lambda _: None, 4, Journal(folder, 1 << 20), 7
    )


def _exited_run(claimed: ClaimedJob, tmp_path: Path) -> JobRun:
    """A run whose process just ended: its output still in the sink, nothing collected."""
    cfg = RunSettings(tmp_path, tmp_path / "art", 1 << 20, 1 << 20, 60, 1.0, False, 1.0)
    run = JobRun(claimed, cfg, threading.Event())
    run.output("stdout", f"out {claimed.id}\n".encode())
    run.outcome = Outcome(JobStatus.SUCCEEDED, 0)
    return run


def test_an_executor_killed_while_collecting_artifacts_has_its_job_recorded_not_rerun(
    app: Flask, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The exit entry is written as the process ends; the executor dies before the hand-over
    (kill -9 while collecting): the next executor records the job's outcome and output from
    it, instead of the reaper running it again."""
    rt = shell_rt("true")
    [job_id] = schedule(rt, 1)
    run = _exited_run(jobs.claim(make_worker().id, 1)[0], tmp_path)
    fin = _journaled_finisher(app, tmp_path / "state")
    fin.exited(run)
    assert fin.pending() == {job_id}
    assert fin.journal is not None
    os.close(fin.journal.fd)  # killed: its lock goes, its file stays

    assert replay_orphans(tmp_path / "state", None, lambda fn: fn()) == 1
    assert job(job_id).status == "succeeded"
    assert output_of(job_id) == f"out {job_id}\n".encode()
    assert artifacts.list_for_job(db.session(), job_id) == []
    assert f"action=journal_exit_only job={job_id} artifacts=not_collected" in caplog.text


def test_the_hand_over_entry_supersedes_the_exit_entry_at_replay(
    app: Flask, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rt = shell_rt("true")
    [job_id] = schedule(rt, 1)
    run = _exited_run(jobs.claim(make_worker().id, 1)[0], tmp_path)
    fin = _journaled_finisher(app, tmp_path / "state")
    fin.exited(run)
    run.rows = [_artifact(job_id, b"result")]
    run._unsent.append(run.sink.take())
    fin._journal([run], sync=False)  # what submit() writes
    assert fin.journal is not None
    os.close(fin.journal.fd)

    assert replay_orphans(tmp_path / "state", None, lambda fn: fn()) == 2
    assert output_of(job_id) == f"out {job_id}\n".encode()  # stored once
    [art] = artifacts.list_for_job(db.session(), job_id)
    assert artifacts.content_of(art) == b"result"
    assert "journal_exit_only" not in caplog.text


def test_the_journal_is_not_cleared_under_an_exit_entry(app: Flask, tmp_path: Path) -> None:
    """Another job's batch commits while this one collects its artifacts: the finisher, idle
    but for it, must not empty the journal holding its exit entry."""
    rt = shell_rt("true", overlap_policy="allow")
    schedule(rt, 2)
    first, second = jobs.claim(make_worker().id, 2)
    collecting = _exited_run(first, tmp_path)
    fin = _journaled_finisher(app, tmp_path / "state")
    try:
        fin.exited(collecting)
        [done] = _runs([second], tmp_path)
        fin.submit(done)
        fin.close()  # records the submitted batch, then stops
        assert fin.journal is not None
        lines = [json.loads(line) for line in fin.journal.path.read_text().splitlines()]
        assert [(e["job"], e["exited_only"]) for e in lines] == [
            (first.id, True),
            (second.id, False),
        ]
        assert fin.pending() == {first.id}
    finally:
        if fin.journal is not None:
            os.close(fin.journal.fd)


def test_output_stored_while_collecting_leaves_the_exit_entry_without_it(
    app: Flask, tmp_path: Path
) -> None:
    """A long output is stored while its artifact is collected: the exit entry is written
    again without those rows, so a replay does not store them twice."""
    rt = shell_rt("true")
    [job_id] = schedule(rt, 1)
    seen: list[dict[str, object]] = []
    run = _exited_run(jobs.claim(make_worker().id, 1)[0], tmp_path)
    run.exited = lambda r: seen.append(r.journal_entry(7, exited=True))
    run._exit_journaled = True
    run._flush_all()
    assert output_of(job_id) == f"out {job_id}\n".encode()
    [entry] = seen
    assert entry["output"] == [{"rows": [], "deletes": {}}]


def test_a_live_sync_does_not_wait_for_the_wal_flush_on_postgresql(
    app: Flask, tmp_path: Path
) -> None:
    """A live sync blocks the job's thread (its exit goes unjournaled meanwhile): on PostgreSQL
    its commit does not wait for the WAL to reach the disk. Its writes are committed all the
    same (the output row is there)."""
    from sqlalchemy import event

    rt = shell_rt("true")
    [job_id] = schedule(rt, 1)
    run = _exited_run(jobs.claim(make_worker().id, 1)[0], tmp_path)
    sent: list[str] = []

    def spy(conn: object, cursor: object, statement: str, *args: object) -> None:
        sent.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", spy)
    try:
        run._sync(beat=True)
    finally:
        event.remove(engine, "before_cursor_execute", spy)
    pg = engine.dialect.name == "postgresql"
    assert ("SET LOCAL synchronous_commit TO off" in sent) is pg
    assert output_of(job_id) == f"out {job_id}\n".encode()
