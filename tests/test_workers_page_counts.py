"""The workers page (any logged-in user) counts only the running jobs of the companies the user
sees: it counted every company's, so a member of company A watched company B's activity (the
dashboard and the queue were scoped already). A global administrator sees them all."""

from __future__ import annotations

import re

from flask import Flask
from sqlalchemy import update

from multiflexi_web.extensions import db
from multiflexi_web.models import Job, JobStatus, Role
from tests.factories import (
    add_member,
    client_for,
    make_company,
    make_job,
    make_runtemplate,
    make_user,
    make_worker,
)


def test_workers_page_does_not_count_other_companies_running_jobs(app: Flask) -> None:
    a, b = make_company(), make_company()
    viewer = make_user()
    add_member(viewer, a, Role.VIEWER)
    worker = make_worker()
    jobs = [make_job(make_runtemplate(b), status=JobStatus.RUNNING) for _ in range(3)]
    db.session.execute(
        update(Job).where(Job.id.in_([j.id for j in jobs])).values(worker_id=worker.id)
    )
    db.session.commit()
    page = client_for(app, viewer).get("/workers/").get_data(as_text=True)
    cells = re.findall(r"s ago</td><td>(\d+)</td>", page)
    assert cells, page
    assert cells == ["0"], f"company A's viewer sees {cells} running jobs, all of company B"
    admin = client_for(app, make_user(is_admin=True)).get("/workers/").get_data(as_text=True)
    assert re.findall(r"s ago</td><td>(\d+)</td>", admin) == ["3"]
