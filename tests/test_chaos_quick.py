"""The chaos harness (bench/chaos): its accounting, and a quick run of two real scenarios."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.chaos.account import Result, account, classify, cut_by_guards, outlived, read_runs
from bench.chaos.infra import pg_bin, pids_mentioning
from bench.chaos.report import as_json, markdown
from bench.chaos.runner import Suite
from bench.chaos.scenarios import BY_NAME, QUICK
from bench.chaos.world import JobRow
from tests.services import need

QUICK_SET = ("kill9_executor", "kill_connections")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def row(job_id: int, status: str = "succeeded", retry_of: int | None = None) -> JobRow:
    return JobRow(job_id, status, 1 if retry_of is None else 2, retry_of, 1, None, T0, None)


def side(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "side.log"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


# -- the accounting, on made-up side files ------------------------------------------------------
def test_a_rescue_after_an_unfinished_run_is_once(tmp_path: Path) -> None:
    runs = read_runs(
        side(tmp_path, "1 - 10 start 1.0", "1 - 10 beat 1.5", "2 - 11 start 5", "2 - 11 end 6")
    )
    chain = [row(1, "lost"), row(2, retry_of=1)]
    assert classify(chain, runs[1] + runs[2]) == "once"


def test_a_rerun_of_finished_work_is_twice(tmp_path: Path) -> None:
    runs = read_runs(
        side(tmp_path, "1 - 10 start 1", "1 - 10 end 2", "2 - 11 start 5", "2 - 11 end 6")
    )
    assert classify([row(1, "lost"), row(2, retry_of=1)], runs[1] + runs[2]) == "twice"


def test_a_rerun_of_work_whose_process_was_killed_running_is_cut_at_exit(tmp_path: Path) -> None:
    """Its end line was written, but the guard killed the process while it still ran (its
    executor was killed): nobody could know it was done. Had it ended, it is twice."""
    runs = read_runs(
        side(tmp_path, "1 - 10 start 1", "1 - 10 end 2", "2 - 11 start 5", "2 - 11 end 6")
    )
    chain = [row(1, "lost"), row(2, retry_of=1)]
    assert classify(chain, runs[1] + runs[2], cut=frozenset({10})) == "cut_at_exit"
    assert classify(chain, runs[1] + runs[2], cut=frozenset({11})) == "twice"


def test_guard_logs_name_the_groups_killed_while_running() -> None:
    logs = (
        "daemon=guard action=guard_exit killed_groups=0 pgids=- running=-\n"
        "daemon=guard action=guard_exit killed_groups=3 pgids=10,11,12 running=10,12\n"
    )
    assert cut_by_guards(logs) == {10, 12}


def test_a_rescue_while_the_first_run_is_alive_is_twice(tmp_path: Path) -> None:
    runs = read_runs(
        side(tmp_path, "1 - 10 start 1", "2 - 11 start 3", "1 - 10 beat 3.5", "2 - 11 end 6")
    )
    assert classify([row(1, "lost"), row(2, retry_of=1)], runs[1] + runs[2]) == "twice"


def test_lost_and_misrecorded(tmp_path: Path) -> None:
    runs = read_runs(side(tmp_path, "1 - 10 start 1", "2 - 11 start 1", "2 - 11 end 2"))
    assert classify([row(1, "lost")], runs[1]) == "lost"
    assert classify([row(2, "lost")], runs[2]) == "misrecorded"  # done, but recorded as lost
    assert classify([row(3, "running")], []) == "lost"


def test_account_groups_retries_and_measures_recovery(tmp_path: Path) -> None:
    path = side(tmp_path, "1 - 10 start 1", "2 - 11 start 5", "2 - 11 end 6", "3 - 12 start 1")
    rows = [row(1, "lost"), row(2, retry_of=1), row(3, "running")]
    res = account("x", rows, path, T0 - timedelta(seconds=2), expected=[("event", "9")])
    assert (res.jobs, res.once, res.lost, res.not_terminal, res.recovery_s) == (3, 1, 2, 1, 2.0)


def test_two_jobs_for_one_slot_are_one_logical_job_run_twice(tmp_path: Path) -> None:
    slot = T0 - timedelta(minutes=1)
    rows = [
        JobRow(1, "succeeded", 1, None, 7, slot, T0, None),
        JobRow(2, "succeeded", 1, None, 7, slot, T0, None),
    ]
    path = side(tmp_path, "1 - 10 start 1", "1 - 10 end 2", "2 - 11 start 3", "2 - 11 end 4")
    res = account("slots", rows, path, None)
    assert (res.jobs, res.twice, res.overlapping, res.recovery_s) == (1, 1, 0, None)


def test_outlived_counts_job_processes_alive_after_a_kill(tmp_path: Path) -> None:
    path = side(tmp_path, "1 - 10 start 1", "1 - 10 end 9", "2 - 11 start 1", "2 - 11 beat 5.5")
    assert outlived(path, killed_at=5.0) == 1  # job 1 wrote 4 s after the kill, job 2 0.5 s


# -- a quick run of real scenarios on a private PostgreSQL ----------------------------------------
@pytest.fixture(scope="module")
def quick_run() -> Iterator[tuple[list[Result], Path]]:
    need(Path(pg_bin("initdb")).exists(), "PostgreSQL server binaries (initdb)")
    suite = Suite()
    try:
        results = [suite.run(BY_NAME[name], quick=True, jobs=None) for name in QUICK_SET]
    finally:
        suite.close()
    yield results, suite.folder


@pytest.mark.slow
def test_quick_run_prints_a_table_and_json(quick_run: tuple[list[Result], Path]) -> None:
    results, _ = quick_run
    table = markdown(results).splitlines()
    assert table[0].startswith("| scenario | jobs | executed once | executed twice | lost |")
    assert [line.split("|")[1].strip() for line in table[2:]] == list(QUICK_SET)
    assert [r["scenario"] for r in json.loads(as_json(results))] == list(QUICK_SET)


@pytest.mark.slow
def test_quick_run_counts_add_up(quick_run: tuple[list[Result], Path]) -> None:
    for r in quick_run[0]:
        assert r.skipped is None, r.skipped
        assert r.notes["settled"], r.notes  # every job reached a terminal status
        assert r.jobs == QUICK.jobs + r.notes["probes"]  # each enqueued job is counted once
        assert r.once + r.twice + r.lost + r.misrecorded + r.cut_at_exit == r.jobs
        assert sum(r.notes["statuses"].values()) == r.notes["db_jobs"] >= r.jobs
        assert r.recovery_s is not None and r.recovery_s >= 0  # the probes finished


@pytest.mark.slow
def test_quick_run_leaves_nothing_behind(quick_run: tuple[list[Result], Path]) -> None:
    folder = quick_run[1]
    assert not folder.exists()
    assert pids_mentioning(str(folder)) == []  # no job, daemon or postgres of the run


@pytest.mark.slow
def test_no_job_executed_twice_or_lost_under_faults(quick_run: tuple[list[Result], Path]) -> None:
    assert [(r.scenario, r.twice, r.lost) for r in quick_run[0]] == [
        (name, 0, 0) for name in QUICK_SET
    ]
