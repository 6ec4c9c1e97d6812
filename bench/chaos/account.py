"""Counting executions: the side file says what ran, the database what was recorded.

A *logical job* is what a user asked for once: a job together with the retries the platform
made of it (retry_of_id chain). Scheduler-made jobs are keyed by (RunTemplate, slot) and
event-made jobs by the event's payload "n", so a second job for the same slot or message counts
against the same logical job. A *run* is one process of it in the side file (job id + pid): it
*completed* when its "end" line was written (the work was done). Per logical job, exclusively:

- executed twice: two runs of which the earlier-started one either completed (any later run,
  overlapping or after it, repeats finished work) or was still alive (its last line at or after
  the later run's start) when the later one started (two attempts at once);
- lost: no run completed (the work was never done), whatever the database says;
- executed once: exactly one completed run and the last job of the chain is `succeeded`;
- misrecorded: exactly one completed run but the database shows another status (the result
  was produced and not recorded, or the job is still not terminal);
- cut at exit: as twice, but the completed earlier run's process was still running when its
  executor was killed (the guard logs the groups it killed whose process had not ended): its
  "end" line was written, its exit had not come. No supervisor can know that a job's work is
  done before the job exits, so the retry is the platform doing what it must; a job that ended
  before its executor died and ran again is "twice", the platform's fault.

jobs = once + twice + lost + misrecorded + cut_at_exit. Also reported: `not_terminal` (jobs of
any logical job still live at the end) and `overlapping` (the twice cases with two runs alive at
once).
Recovery time: from the moment the fault cleared to the first `finished_at` after it of a
succeeded job (None when nothing finished afterwards).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.chaos.world import TERMINAL, JobRow


@dataclass
class Run:
    job_id: int
    pid: int
    start: float | None = None
    end: float | None = None
    last: float = 0.0


@dataclass
class Result:
    scenario: str
    jobs: int = 0
    once: int = 0
    twice: int = 0
    lost: int = 0
    misrecorded: int = 0
    cut_at_exit: int = 0
    not_terminal: int = 0
    overlapping: int = 0
    recovery_s: float | None = None
    skipped: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_runs(side: Path) -> dict[int, list[Run]]:
    """Runs per job id from the side file's lines "<job> <key> <pid> <event> <time>"."""
    runs: dict[tuple[int, int], Run] = {}
    for line in side.read_text(encoding="ascii", errors="replace").splitlines():
        parts = line.split()
        if len(parts) != 5 or not parts[0].isdigit():
            continue
        job_id, pid, event, t = int(parts[0]), int(parts[2]), parts[3], float(parts[4])
        run = runs.setdefault((job_id, pid), Run(job_id, pid))
        run.last = max(run.last, t)
        if event == "start":
            run.start = t
        elif event == "end":
            run.end = t
    by_job: dict[int, list[Run]] = defaultdict(list)
    for run in runs.values():
        by_job[run.job_id].append(run)
    return by_job


def logical_jobs(rows: list[JobRow]) -> dict[Any, list[JobRow]]:
    """Jobs grouped by what the user asked for (see the module docstring)."""
    by_id = {r.id: r for r in rows}

    def root(r: JobRow) -> JobRow:
        seen = set()
        while r.retry_of_id in by_id and r.id not in seen:
            seen.add(r.id)
            r = by_id[r.retry_of_id]
        return r

    groups: dict[Any, list[JobRow]] = defaultdict(list)
    for r in rows:
        first = root(r)
        if first.event_key is not None:
            key: Any = ("event", first.event_key)
        elif first.slot_at is not None:
            key = ("slot", first.runtemplate_id, first.slot_at.isoformat())
        else:
            key = ("job", first.id)
        groups[key].append(r)
    return groups


def classify(chain: list[JobRow], runs: list[Run], cut: frozenset[int] = frozenset()) -> str:
    """ "twice", "lost", "once", "misrecorded" or "cut_at_exit" for one logical job; `cut`: the
    pids of job processes killed by their guard while still running."""
    ordered = sorted((r for r in runs if r.start is not None), key=lambda r: r.start or 0.0)
    repeated = False
    for i, earlier in enumerate(ordered):
        for later in ordered[i + 1 :]:
            if earlier.last >= (later.start or 0.0):
                return "twice"  # two at once: never excusable
            if earlier.end is not None and earlier.pid not in cut:
                return "twice"
            repeated = repeated or earlier.end is not None
    if repeated:
        return "cut_at_exit"
    completed = [r for r in ordered if r.end is not None]
    if not completed:
        return "lost"
    last = max(chain, key=lambda r: (r.attempt, r.id))
    return "once" if last.status == "succeeded" else "misrecorded"


def overlapped(runs: list[Run]) -> bool:
    ordered = sorted((r for r in runs if r.start is not None), key=lambda r: r.start or 0.0)
    return any(
        later.start is not None and earlier.last >= later.start
        for i, earlier in enumerate(ordered)
        for later in ordered[i + 1 :]
    )


def account(
    scenario: str,
    rows: list[JobRow],
    side: Path,
    cleared: datetime | None,
    expected: list[Any] | None = None,
    cut: frozenset[int] = frozenset(),
) -> Result:
    """The scenario's counts; `expected` logical keys with no job at all count as lost."""
    by_job = read_runs(side)
    groups = logical_jobs(rows)
    for key in expected or []:
        groups.setdefault(key, [])
    res = Result(scenario, jobs=len(groups))
    for chain in groups.values():
        runs = [run for r in chain for run in by_job.get(r.id, [])]
        kind = classify(chain, runs, cut) if chain else "lost"
        setattr(res, kind, getattr(res, kind) + 1)
        res.overlapping += kind == "twice" and overlapped(runs)
        res.not_terminal += any(r.status not in TERMINAL for r in chain)
    res.recovery_s = recovery(rows, cleared)
    res.notes["db_jobs"] = len(rows)
    res.notes["statuses"] = _statuses(rows)
    return res


def cut_by_guards(logs: str) -> frozenset[int]:
    """Job process groups a guard killed while their process still ran (runner/guard.py)."""
    found: set[int] = set()
    for match in re.finditer(r"action=guard_exit .*? running=([\d,]+)", logs):
        found.update(int(pgid) for pgid in match.group(1).split(","))
    return frozenset(found)


def recovery(rows: list[JobRow], cleared: datetime | None) -> float | None:
    if cleared is None:
        return None
    after = [
        r.finished_at
        for r in rows
        if r.status == "succeeded" and r.finished_at is not None and r.finished_at >= cleared
    ]
    return round((min(after) - cleared).total_seconds(), 2) if after else None


def _statuses(rows: list[JobRow]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for r in rows:
        out[r.status] += 1
    return dict(sorted(out.items()))


def outlived(side: Path, killed_at: float, grace: float = 1.0) -> int:
    """Job processes started before a kill -9 of their executor that still wrote a line
    `grace` seconds after it (SPEC §16: a job's processes never outlive their executor)."""
    runs = [run for job_runs in read_runs(side).values() for run in job_runs]
    return sum(1 for r in runs if r.start is not None and r.start < killed_at < r.last - grace)
