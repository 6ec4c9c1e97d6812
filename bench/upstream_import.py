"""How long `multiflexi upstream import --include-history` takes, first run and again.

A synthetic upstream (SQLite): the test fixture's installation plus N hourly RunTemplates with
a config value and a WebHook action each, and M finished jobs with two output lines each.

    PYTHONPATH=. python bench/upstream_import.py 1000 10000 [DATABASE_URL]

Prints one JSON line per run. Our database: a temporary SQLite file unless DATABASE_URL
(an empty PostgreSQL database) is given. Needs bcrypt (the fixture hashes as PHP does).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert

from multiflexi_web import create_app
from multiflexi_web.extensions import db
from tests import upstream_fixture as uf
from tests.conftest import create_schema, make_settings


def fill(n_rt: int, n_jobs: int, tmp: Path) -> uf.Upstream:
    engine = uf.engine_for(f"sqlite:///{tmp / 'upstream.sqlite'}")
    up = uf.build(engine)
    t = uf.meta.tables
    rts = range(100, 100 + n_rt)
    hook = uf.php_serialize({"WebHook": True})
    with engine.begin() as c:
        c.execute(insert(t["runtemplate"]), [
            {"id": i, "app_id": 2, "company_id": 1, "name": f"mtr {i}", "interv": "h",
             "delay": 0, "executor": "Native", "active": True, "success": hook} for i in rts
        ])  # fmt: skip
        c.execute(insert(t["configuration"]), [
            {"runtemplate_id": i, "app_id": 2, "company_id": 1, "name": "MTR_DESTINATION",
             "value": f"h{i}.example"} for i in rts
        ])  # fmt: skip
        c.execute(insert(t["actionconfig"]), [
            {"runtemplate_id": i, "module": "WebHook", "keyname": "uri",
             "value": "https://hooks.example/x", "mode": "success"} for i in rts
        ])  # fmt: skip
        if n_jobs:
            end = up.now + timedelta(seconds=1)
            c.execute(insert(t["job"]), [
                {"id": 100 + j, "app_id": 2, "company_id": 1, "runtemplate_id": 100 + j % n_rt,
                 "schedule": up.now, "begin": up.now, "end": end, "exitcode": j % 3,
                 "executor": "Native", "schedule_type": "hourly", "command": "mtr x"}
                for j in range(n_jobs)
            ])  # fmt: skip
            c.execute(insert(t["job_output_lines"]), [
                {"job_id": 100 + j, "seq": s, "type": "stdout", "line": f"line {s}\n" * 5}
                for j in range(n_jobs) for s in range(2)
            ])  # fmt: skip
    engine.dispose()
    return up


def main() -> None:
    n_rt, n_jobs = int(sys.argv[1]), int(sys.argv[2])
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        up = fill(n_rt, n_jobs, tmp)
        url = sys.argv[3] if len(sys.argv) > 3 else f"sqlite:///{tmp / 'ours.db'}"
        app = create_app({"TESTING": True}, settings=make_settings(url, tmp))
        with app.app_context():
            create_schema(db.engine)
            args = ["upstream", "import", "--from", up.url, "--include-history"]
            for run in ("first", "again"):
                started = time.perf_counter()
                result = app.test_cli_runner().invoke(
                    args=[*args, "--format", "json"], env={"MULTIFLEXI_UPSTREAM_KEY": uf.MASTER_KEY}
                )
                seconds = time.perf_counter() - started
                tables = json.loads(result.output)["tables"].values()
                print(json.dumps({
                    "bench": "upstream_import", "database": db.engine.dialect.name, "run": run,
                    "runtemplates": n_rt, "jobs": n_jobs, "seconds": round(seconds, 2),
                    "created": sum(t["created"] for t in tables),
                    "unchanged": sum(t["unchanged"] for t in tables),
                }))  # fmt: skip


if __name__ == "__main__":
    main()
