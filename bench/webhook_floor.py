"""The floor for webhook intake: a bare Flask endpoint that inserts the request body into one table.

    gunicorn --workers 2 bench.webhook_floor:app    (DATABASE_URL names the database)

No signature, no source lookup, no JSON parsing, no session: what an endpoint that only stores
what it is sent costs on this machine, with the portal's driver, pool and SQLite pragmas
(bench/events.py runs it beside the portal's webhook under the same gunicorn settings). Pool
pre-ping is off: a bare endpoint written from the SQLAlchemy documentation has none.
"""

from __future__ import annotations

import os

from flask import Flask, request
from sqlalchemy import Column, Engine, Integer, LargeBinary, MetaData, Table, create_engine, insert

from multiflexi_web.db.engine import SQLITE_BEGIN_OPTION, engine_options, install_sqlite_hooks

metadata = MetaData()
floor = Table(
    "bench_floor",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("body", LargeBinary),
)


def make_engine(url: str) -> Engine:
    engine = create_engine(url, **engine_options(url, pre_ping=False))
    install_sqlite_hooks(engine)
    # A writer from the start on SQLite, as the portal's webhook is.
    return engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})


app = Flask(__name__)
engine = make_engine(os.environ.get("DATABASE_URL", "sqlite://"))


@app.get("/healthz")
def healthz() -> str:
    return "ok"


@app.post("/ingest")
def ingest() -> tuple[str, int]:
    body = request.get_data()
    with engine.begin() as conn:
        conn.execute(insert(floor).values(body=body))
    return "", 202
