"""The scenario table: name, function, what it does, its parameters full and --quick."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from bench.chaos.scenarios.cluster import (
    clock_jump,
    sqlite_two_executors_cli_enqueue,
    three_executors_three_schedulers,
)
from bench.chaos.scenarios.common import Outcome, kill9_executor, sigterm_executor
from bench.chaos.scenarios.database import db_outage, kill_connections, pg_restart
from bench.chaos.scenarios.external import broker_restart_eventor, disk_full_artifacts
from bench.chaos.world import Params, World

# Long jobs outlive MULTIFLEXI_LOST_AFTER's default (60 s) and the 45/60 s outages.
OUTLIVE_REAPER = Params(long_sleep=90.0, settle=300.0)

# --quick: few short jobs and a short MULTIFLEXI_LOST_AFTER, so a scenario takes seconds.
QUICK = Params(
    jobs=8, short_sleep=0.3, long_sleep=4.0, lost_after=3.0, fault_seconds=5.0, executors=1
)


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[World], Outcome]
    what: str
    params: Params = field(default_factory=Params)
    backend: str = "postgres"
    in_quick: bool = False  # part of `--quick` (and of the `make test` subset)

    def for_run(self, quick: bool, jobs: int | None) -> Params:
        base = QUICK if quick else self.params
        p = replace(base, extra_env=dict(base.extra_env))  # scenarios may add to their copy
        return replace(p, jobs=jobs) if jobs else p


SCENARIOS = [
    # Single faults run Params.executors (2) executor daemons: the one left reaps the other's jobs.
    Scenario("kill9_executor", kill9_executor, "kill -9 an executor mid-jobs, start another",
             params=OUTLIVE_REAPER, in_quick=True),
    Scenario("sigterm_executor", sigterm_executor, "SIGTERM an executor mid-jobs, start another"),
    Scenario("kill_connections", kill_connections,
             "pg_terminate_backend of every connection every 1-2 s for 20 s", in_quick=True),
    Scenario("pg_restart", pg_restart, "pg_ctl restart -m fast while jobs run"),
    Scenario("db_outage_45s", db_outage(45), "PostgreSQL stopped 45 s, LOST_AFTER default",
             params=OUTLIVE_REAPER),
    Scenario("db_outage_60s", db_outage(60), "PostgreSQL stopped 60 s, LOST_AFTER default",
             params=OUTLIVE_REAPER),
    Scenario("db_outage_5min", db_outage(300), "PostgreSQL stopped 5 min, LOST_AFTER default",
             params=replace(OUTLIVE_REAPER, settle=420.0)),
    Scenario("three_executors_three_schedulers", three_executors_three_schedulers,
             "3 executors + 3 schedulers (fake clock, minutely slots) + eventor; one executor"
             " and one scheduler kill -9'd", params=Params(jobs=30, executors=3, parallel=2)),
    Scenario("sqlite_two_executors_cli_enqueue", sqlite_two_executors_cli_enqueue,
             "2 executors on one SQLite file, `multiflexi runtemplate schedule` meanwhile",
             backend="sqlite"),
    Scenario("disk_full_artifacts", disk_full_artifacts,
             "artifact folder on a 1 MiB tmpfs, filled for 20 s while jobs store 200 KiB"),
    Scenario("clock_jump", clock_jump,
             "scheduler clock 10 min back, then 1 h forward (executor clock real)"),
    Scenario("broker_restart_eventor", broker_restart_eventor,
             "private redis-server kill -9'd and restarted while the eventor consumes"),
]  # fmt: skip
BY_NAME = {s.name: s for s in SCENARIOS}
