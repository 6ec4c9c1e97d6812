"""List pages benchmark: RunTemplate and application lists with 10,000 RunTemplates.

    .venv/bin/python bench/lists.py --db postgres --runtemplates 10000
    .venv/bin/python bench/lists.py --db sqlite --runtemplates 10000

Fills 20 companies, 300 applications (tagged) and the RunTemplates, then times the first, a
middle and the last page of each list through the Flask test client (median and p95 of --runs
requests after a warm-up) as the global admin and as a member of 3 companies, and prints the
query plan of the RunTemplate page query. Prints JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import insert
from werkzeug.security import generate_password_hash

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import scratch_database
from portal import PASSWORD, bench_app, login, timed

from multiflexi_web.extensions import db
from multiflexi_web.models import (
    Application,
    Base,
    Company,
    CompanyMember,
    Role,
    RunTemplate,
    User,
)

COMPANIES, APPS = 20, 300


def fill(n: int) -> float:
    Base.metadata.create_all(db.engine)
    t0 = time.perf_counter()
    db.session.execute(
        insert(Company), [{"name": f"Company {i}", "slug": f"c{i}"} for i in range(COMPANIES)]
    )
    db.session.execute(insert(Application), [_app(i) for i in range(APPS)])
    rows = [
        {
            "company_id": 1 + i % COMPANIES,
            "application_id": 1 + i % APPS,
            "name": f"template {i * 7919 % n:06d}",  # names not in id order
        }
        for i in range(n)
    ]
    db.session.execute(insert(RunTemplate), rows)
    pw = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    db.session.add_all([User(login="admin", password_hash=pw, is_admin=True)])
    member = User(login="member", password_hash=pw)
    db.session.add(member)
    db.session.flush()
    for company_id in (1, 2, 3):
        db.session.add(CompanyMember(user_id=member.id, company_id=company_id, role=Role.VIEWER))
    db.session.commit()
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - t0


def _app(i: int) -> dict[str, Any]:
    return {
        "uuid": f"00000000-0000-4000-8000-{i:012d}",
        "name": f"application {i:04d}",
        "description": "bench",
        "executable": "/bin/true",
        "tags": ["bank"] if i % 3 == 0 else ["mail", "other"],
    }


def plan(n: int) -> list[str]:
    """The database's plan for the admin's last RunTemplate page (the deepest offset)."""
    order = "ORDER BY runtemplate.name, runtemplate.id"
    sql = f"SELECT runtemplate.id FROM runtemplate {order} LIMIT 50 OFFSET {max(0, n - 50):d}"  # noqa: S608
    prefix = "EXPLAIN QUERY PLAN " if db.engine.dialect.name == "sqlite" else "EXPLAIN "
    with db.engine.connect() as conn:
        return [" ".join(str(c) for c in row) for row in conn.exec_driver_sql(prefix + sql)]


def measure(app: Flask, n: int, runs: int) -> dict[str, Any]:
    last = -(-n // 50)
    pages = {
        "runtemplates first page": "/runtemplates/",
        "runtemplates middle page": f"/runtemplates/?page={last // 2}",
        "runtemplates last page": f"/runtemplates/?page={last}",
        "runtemplates one company, last page": "/runtemplates/?company=2&page=10",
        "runtemplates one app": "/runtemplates/?app=7",
        "applications first page": "/applications/",
        "applications tag, last page": "/applications/?tag=bank&page=2",
    }
    result: dict[str, Any] = {}
    for who in ("admin", "member"):
        client = login(app, who)
        result[who] = {name: timed(client, url, runs) for name, url in pages.items()}
    with app.app_context():
        result["plan"] = plan(n)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runtemplates", type=int, default=10_000)
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--runs", type=int, default=20)
    args = p.parse_args()
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(scratch_database(args.db, "mf_bench_lists"))
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        app = bench_app(url, tmp)
        with app.app_context():
            fill_s = round(fill(args.runtemplates), 1)
            db.session.remove()
        result: dict[str, Any] = {"db": args.db, "runtemplates": args.runtemplates}
        result |= {"fill_seconds": fill_s} | measure(app, args.runtemplates, args.runs)
        with app.app_context():
            db.engine.dispose()
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
