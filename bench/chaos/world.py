"""One scenario's world: a fresh database, the chaos applications, daemons, and DB look-ups."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import create_engine, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from bench.chaos.infra import PrivatePostgres, Procs
from multiflexi_web import create_app
from multiflexi_web.config import Settings
from multiflexi_web.extensions import db
from multiflexi_web.models import Application, Company, Event, Job, RunTemplate
from multiflexi_web.models.job import TERMINAL_STATUSES
from multiflexi_web.security.secrets import generate_key
from multiflexi_web.services.jobs import transitions as jobs

ROOT = Path(__file__).resolve().parents[2]
SIDEJOB = Path(__file__).resolve().parent / "sidejob.py"
KEY = generate_key()
WEB_SECRET = secrets.token_hex(16)
TERMINAL = {s.value for s in TERMINAL_STATUSES}


@dataclass
class Params:
    """A scenario's knobs; `--quick` and `--jobs` change them, the scenario table sets them."""

    jobs: int = 24
    short_sleep: float = 1.0
    long_sleep: float = 20.0  # longer than the reaper's period (MULTIFLEXI_LOST_AFTER / 4, <= 15)
    long_every: int = 4  # every 4th job is a long one
    executors: int = 2  # executor daemons in the single-fault scenarios (the others reap)
    parallel: int = 4  # MULTIFLEXI_MAX_PARALLEL per executor
    max_attempts: int = 3  # a job the reaper marks lost is retried (rescued) this many times
    lost_after: float | None = None  # MULTIFLEXI_LOST_AFTER; None = the platform's default (60)
    settle: float = 240.0  # bound on waiting for every job to be terminal after the fault clears
    fault_seconds: float = 20.0  # how long a timed fault lasts
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class JobRow:
    id: int
    status: str
    attempt: int
    retry_of_id: int | None
    runtemplate_id: int
    slot_at: datetime | None
    finished_at: datetime | None
    event_key: str | None


class World:
    """Everything one scenario runs against; `close()` stops its daemons."""

    def __init__(
        self,
        name: str,
        folder: Path,
        params: Params,
        procs: Procs,
        pg: PrivatePostgres | None,
        template: str | None = None,
    ) -> None:
        self.name, self.folder, self.params, self.procs, self.pg = name, folder, params, procs, pg
        folder.mkdir(parents=True, exist_ok=True)
        self.side = folder / "side.log"
        self.side.touch()
        self.dbname = f"chaos_{name}_{secrets.token_hex(3)}"
        self.url = (
            pg.create_database(self.dbname, template) if pg else f"sqlite:///{folder / 'chaos.db'}"
        )
        self.migrated = template is not None
        self.monitor = create_engine(self.url, poolclass=NullPool)
        self.rts: dict[str, RunTemplate] = {}
        self.flask: Flask | None = None
        self.cleanups: list[Callable[[], None]] = []  # run by close(), after the daemons stop

    # -- setup ----------------------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MULTIFLEXI_", "DATABASE"))}
        env.update(
            PYTHONPATH=str(ROOT),
            DATABASE_URL=self.url,
            ENCRYPTION_MASTER_KEY=KEY,
            SECRET_KEY=WEB_SECRET,
            MULTIFLEXI_TMP=str(self.folder / "work"),
            MULTIFLEXI_ARTIFACT_DIR=str(self.folder / "artifacts"),
            MULTIFLEXI_ENV_FILE="/nonexistent",
            MULTIFLEXI_LOCAL_ENV="/nonexistent",
            MULTIFLEXI_ACTION_ALLOWED_NETWORKS="127.0.0.0/8,::1/128",  # the peers: loopback
            MULTIFLEXI_MAX_PARALLEL=str(self.params.parallel),
            MULTIFLEXI_LOG_LEVEL="INFO",
            # Jobs append to the harness's side file in its private folder, so they run as the
            # harness's user; the job-user switch itself is tested in tests/test_isolation.py.
            MULTIFLEXI_JOB_USER="daemon",
        )
        if self.params.lost_after is not None:
            env["MULTIFLEXI_LOST_AFTER"] = str(self.params.lost_after)
        env.update(self.params.extra_env)
        env.update(extra)
        return env

    def migrate(self) -> None:
        migrate(self.env())

    def setup(self) -> None:
        """A company, the chaos applications and one RunTemplate per kind of job."""
        if not self.migrated:
            self.migrate()
        settings = Settings(
            database_url=self.url,
            secret_key=WEB_SECRET,
            encryption_master_key=KEY,
            tmp_dir=str(self.folder / "work"),
            artifact_dir=str(self.folder / "artifacts"),
        )
        self.flask = create_app(settings=settings)
        with self.flask.app_context():
            company = Company(name="Chaos", slug="chaos")
            db.session.add(company)
            db.session.flush()
            p = self.params
            for kind, sleep, size in (("short", p.short_sleep, 0), ("long", p.long_sleep, 0)):
                self.rts[kind] = self._make_rt(company, kind, sleep, size)
            db.session.commit()
            for rt in self.rts.values():
                db.session.refresh(rt)
                db.session.expunge(rt)

    def add_rt(self, kind: str, sleep: float, size: int = 0, **values: Any) -> RunTemplate:
        assert self.flask is not None
        with self.flask.app_context():
            company = db.session.scalars(select(Company)).one()
            rt = self._make_rt(company, kind, sleep, size, **values)
            db.session.commit()
            db.session.refresh(rt)
            db.session.expunge(rt)
        self.rts[kind] = rt
        return rt

    def _make_rt(
        self, company: Company, kind: str, sleep: float, size: int, **values: Any
    ) -> RunTemplate:
        app = Application(
            uuid=str(uuid.uuid4()),
            name=f"chaos-{kind}",
            executable=sys.executable,
            cmdparams=f"{SIDEJOB} {self.side} {sleep} {size}",
            version="1",
            artifacts=[{"name": "blob", "path": r"^blob\.bin$"}] if size else [],
        )
        db.session.add(app)
        db.session.flush()
        rt = RunTemplate(
            company_id=company.id,
            application_id=app.id,
            name=f"chaos-{kind}",
            overlap_policy="allow",
            max_attempts=self.params.max_attempts,
        )
        for key, value in values.items():
            setattr(rt, key, value)
        db.session.add(rt)
        db.session.flush()
        return rt

    def enqueue(self, n: int, kind: str | None = None) -> list[int]:
        """n ad-hoc jobs, every `long_every`-th on the long RunTemplate unless `kind` is given."""
        assert self.flask is not None
        every = self.params.long_every
        with self.flask.app_context():
            ids = []
            for i in range(n):
                long = kind is None and every and i % every == every - 1
                rt = db.session.get(RunTemplate, self.rts["long" if long else kind or "short"].id)
                assert rt is not None
                ids.append(jobs.enqueue(rt, schedule_type="adhoc-cli").id)
            db.session.commit()
        return ids

    def enqueue_probes(self, n: int = 2) -> list[int]:
        """Short jobs enqueued once the fault has cleared (retried while the database wakes)."""
        for _ in range(60):
            try:
                return self.enqueue(n, kind="short")
            except (OperationalError, DBAPIError):
                time.sleep(0.5)
        raise RuntimeError("could not enqueue the probe jobs for 30 s")

    # -- daemons --------------------------------------------------------------------------------
    def daemon(self, module: str, *args: str, **extra: str) -> Any:
        argv = [sys.executable, "-m", f"daemons.{module}", *args]
        return self.procs.start(f"{self.name}-{module}", argv, env=self.env(**extra), cwd=ROOT)

    # -- look-ups -------------------------------------------------------------------------------
    def rows(self) -> list[JobRow]:
        """Every job, read on a fresh connection; retried while the database is away."""
        q = (
            select(
                Job.id,
                Job.status,
                Job.attempt,
                Job.retry_of_id,
                Job.runtemplate_id,
                Job.slot_at,
                Job.finished_at,
                Event.payload,
            )
            .outerjoin(Event, Event.id == Job.event_id)
            .order_by(Job.id)
        )
        for _ in range(600):
            try:
                with Session(self.monitor) as s:
                    return [_row(r) for r in s.execute(q).all()]
            except (OperationalError, DBAPIError):
                time.sleep(0.5)
        raise RuntimeError("the database stayed unreachable for 5 minutes")

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows() if r.status == status)

    def all_terminal(self) -> bool:
        rows = self.rows()
        return bool(rows) and all(r.status in TERMINAL for r in rows)

    def close(self) -> None:
        for cleanup in self.cleanups:
            cleanup()
        self.monitor.dispose()
        if self.flask is not None:
            with self.flask.app_context(), contextlib.suppress(Exception):
                db.engine.dispose()


def migrate(env: dict[str, str]) -> None:
    """`multiflexi db upgrade` on the database of env's DATABASE_URL, as an operator would."""
    subprocess.run(
        [sys.executable, "-m", "multiflexi_web.cli", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def _row(r: Any) -> JobRow:
    return JobRow(
        id=r[0],
        status=r[1],
        attempt=r[2],
        retry_of_id=r[3],
        runtemplate_id=r[4],
        slot_at=r[5],
        finished_at=r[6],
        event_key=_event_key(r[7]),
    )


def _event_key(payload: Any) -> str | None:
    if isinstance(payload, dict) and "n" in payload:
        return str(payload["n"])
    return None


def wait_until(predicate: Callable[[], bool], timeout: float, every: float = 0.25) -> bool:
    """True once `predicate()` holds, False when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


def utc_now() -> datetime:
    return datetime.now(UTC)
