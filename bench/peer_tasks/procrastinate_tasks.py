"""procrastinate: no result backend, so the job INSERTs its output into a table of the same
PostgreSQL database (one transaction per job, as the project stores its output rows)."""

from __future__ import annotations

import os

import psycopg
from procrastinate import App, JobContext, PsycopgConnector

from bench.peer_tasks import run_job

STORE = os.environ["BENCH_STORE"]
TABLE = (
    "CREATE TABLE IF NOT EXISTS bench_output (job_id bigint PRIMARY KEY, stdout text, "
    "stderr text, started double precision, finished double precision)"
)
app = App(connector=PsycopgConnector(conninfo=STORE))
_conn: psycopg.Connection | None = None


@app.task(name="bench.job", pass_context=True)
def job(context: JobContext) -> None:
    global _conn
    out = run_job()
    if _conn is None:
        _conn = psycopg.connect(STORE, autocommit=True)
    _conn.execute(
        "INSERT INTO bench_output VALUES (%s, %s, %s, %s, %s)",
        (context.job.id, out["stdout"], out["stderr"], out["started"], out["finished"]),
    )
