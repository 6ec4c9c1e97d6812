"""Several executors against one database; a job printing 200 MB under the output cap."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import Artifact, Job, JobOutput
from tests.executor_support import job, schedule, shell_rt, show_logs, start_daemon, stop, wait_for

pytestmark = pytest.mark.slow
MB = 1024 * 1024


@pytest.fixture(autouse=True)
def _logs_on_failure(tmp_path: Path) -> Iterator[None]:
    yield
    show_logs(tmp_path)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_three_executors_run_500_jobs_exactly_once(app: Flask, db_url: str, tmp_path: Path) -> None:
    ran = tmp_path / "ran.txt"
    script = f'echo "$MULTIFLEXI_JOB_ID" >> {ran}'
    ids: list[int] = []
    for _ in range(4):
        ids += schedule(shell_rt(script, overlap_policy="allow"), 120)
    serial = shell_rt(f"{script}; sleep 0.02")  # default policy: one job at a time
    serial_ids = schedule(serial, 20)
    ids += serial_ids
    daemons = [start_daemon(db_url, tmp_path, "--drain", log_name=f"ex{i}") for i in range(3)]
    try:
        for proc in daemons:
            assert proc.wait(120) == 0
    finally:
        for proc in daemons:
            stop(proc)
    counts = Counter(int(line) for line in ran.read_text().split())
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    statuses = dict(db.session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
    assert statuses == {"succeeded": 500}
    workers = db.session.scalars(select(Job.worker_id).distinct()).all()
    assert len(workers) >= 2  # the work was shared
    spans = sorted(
        (j.started_at, j.finished_at)
        for j in db.session.scalars(select(Job).where(Job.id.in_(serial_ids)))
    )
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end is not None and start is not None and start >= end  # never two at once


def test_200_mb_of_output_stays_within_the_cap_and_the_memory(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    total, line = 200_000_000, b"0123456789abcdef\n"
    [job_id] = schedule(shell_rt(f"yes 0123456789abcdef | head -c {total}"))
    proc = start_daemon(db_url, tmp_path, MULTIFLEXI_OUTPUT_CAP_MB="64")
    try:
        wait_for(lambda: job(job_id).finished_at is not None, 90, "the job finished", every=0.5)
        peak_kb = int(
            next(
                ln.split()[1]
                for ln in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                if ln.startswith("VmHWM:")
            )
        )
    finally:
        stop(proc)
    assert peak_kb < 150 * 1024, f"daemon peak RSS {peak_kb // 1024} MB"
    j = job(job_id)
    assert j.status == "succeeded"
    stored = db.session.scalar(
        select(func.sum(func.length(JobOutput.data))).where(JobOutput.job_id == job_id)
    )
    assert stored is not None and 63 * MB <= stored <= 64 * MB
    assert (j.stdout_bytes, j.stdout_dropped) == (total, total - stored)
    art = db.session.scalars(
        select(Artifact).where(Artifact.job_id == job_id, Artifact.filename == "stdout.txt")
    ).one()
    assert art.content is None and art.storage_path  # too large for the row: on disk
    data = Path(art.storage_path).read_bytes()
    head, marker, tail = data.partition(f"\n[... {j.stdout_dropped} bytes dropped".encode())
    assert marker and head.startswith(line * 100)
    tail = tail.split(b"...]\n", 1)[1]
    expected_tail = line * (len(tail) // len(line) + 2)
    offset = (total - len(tail)) % len(line)
    assert tail == expected_tail[offset : offset + len(tail)]
    assert len(head) + len(tail) == stored
