"""Portal: bulk retry, backfill and SLA pages, with login, roles and company isolation."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from sqlalchemy import func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import AuditLog, Job, JobStatus, Role
from tests.factories import (
    add_member,
    client_for,
    make_company,
    make_job,
    make_runtemplate,
    make_user,
)
from tests.test_ops_sla import NOV, _week


def _ids(html: str, pattern: str = r'name="job" value="(\d+)"') -> list[int]:
    return [int(i) for i in re.findall(pattern, html)]


def test_bulk_retry_page_previews_and_reruns_only_the_users_companies(app: Flask) -> None:
    a, b = make_company("A"), make_company("B")
    rt_a, rt_b = make_runtemplate(a), make_runtemplate(b)
    mine = [make_job(rt_a, status=s) for s in ("failed", "lost", "timed_out")]
    make_job(rt_a, status=JobStatus.SUCCEEDED)
    theirs = make_job(rt_b, status=JobStatus.FAILED)
    operator, viewer = make_user("op"), make_user("viewer")
    add_member(operator, a, Role.OPERATOR)
    add_member(viewer, a, Role.VIEWER)
    add_member(viewer, b, Role.VIEWER)
    client = client_for(app, operator)
    page = client.get("/jobs/retry?preview=1").get_data(as_text=True)
    shown = _ids(page)
    assert shown == [j.id for j in mine]
    # A forged form naming B's job re-runs only the previewed ones of A.
    resp = client.post("/jobs/retry", data={"status": "", "job": [*map(str, shown), theirs.id]})
    assert resp.status_code == 302
    db.session.rollback()
    new = db.session.scalars(select(Job).where(Job.id > theirs.id)).all()
    assert len(new) == len(shown) and {j.runtemplate_id for j in new} == {rt_a.id}
    assert {j.launched_by_id for j in new} == {operator.id}
    entry = db.session.scalar(select(AuditLog).where(AuditLog.summary.like("bulk retry%")))
    assert entry is not None and "3 job(s)" in entry.summary
    # B's job never appears in the preview.
    assert theirs.id not in _ids(client.get("/jobs/retry?preview=1").get_data(as_text=True))
    looker = client_for(app, viewer)
    assert looker.post("/jobs/retry", data={"job": [str(theirs.id)]}).status_code == 403
    assert looker.get("/jobs/retry").status_code == 403
    bad = client.get("/jobs/retry?preview=1&since=yesterday")
    assert bad.status_code == 400 and "since" in bad.get_data(as_text=True)


def test_backfill_page_preview_equals_created(app: Flask) -> None:
    a, b = make_company("A"), make_company("B")
    rt, foreign = make_runtemplate(a, interval="d"), make_runtemplate(b, interval="d")
    operator = make_user("op")
    add_member(operator, a, Role.OPERATOR)
    client = client_for(app, operator)
    url = f"/runtemplates/{rt.id}/backfill"
    form = {"from": "2026-11-01", "to": "2026-11-06"}
    page = client.get(url, query_string=form).get_data(as_text=True)
    assert 'id="backfill-new">5<' in page and page.count("<td>new</td>") == 5
    assert client.post(url, data=form).status_code == 302
    db.session.rollback()
    slots = db.session.scalars(
        select(Job.slot_at).where(Job.runtemplate_id == rt.id).order_by(Job.slot_at)
    ).all()
    assert slots == [NOV + timedelta(days=i) for i in range(5)]
    again = client.get(url, query_string=form).get_data(as_text=True)
    assert 'id="backfill-new">0<' in again and "(exists)" in again
    assert client.post(url, data=form).status_code == 302  # nothing new, nothing doubled
    db.session.rollback()
    assert db.session.scalar(select(func.count()).where(Job.runtemplate_id == rt.id)) == 5
    assert client.get(f"/runtemplates/{foreign.id}/backfill", query_string=form).status_code == 404
    assert client.post(f"/runtemplates/{foreign.id}/backfill", data=form).status_code == 404
    future = client.get(url, query_string={"from": "2026-11-01", "to": "2999-01-01"})
    assert future.status_code == 400 and "future" in future.get_data(as_text=True)


def test_sla_page_cards_strip_and_problems(app: Flask) -> None:
    rt = _week("A")
    other = _week("B")
    operator = make_user("op")
    add_member(operator, rt.company, Role.VIEWER)
    client = client_for(app, operator)
    query = {"from": "2026-11-01", "to": "2026-11-08"}
    html = client.get("/sla", query_string=query).get_data(as_text=True)
    assert "<html" in html and 'id="sla-missed">1<' in html and 'id="sla-late">2<' in html
    assert rt.name in html and other.name not in html
    assert html.count('class="sla-cell sla-') == 2 * 7  # the total strip and the template's
    assert 'sla-cell sla-missed" title="2026-11-06' in html
    part = client.get("/sla", query_string=query, headers={"HX-Request": "true"})
    fragment = part.get_data(as_text=True)
    assert "<html" not in fragment and 'id="sla-failed">1<' in fragment
    assert client.get("/sla", query_string={"company": other.company_id}).status_code == 404
    assert client.get("/sla", query_string={"runtemplate": other.id}).status_code == 404
    assert client.get("/sla", query_string={"company": "9" * 30}).status_code == 404
    wrong = client.get("/sla", query_string={"from": "2026-12-01", "to": "2026-11-01"})
    assert "from: must be before to" in wrong.get_data(as_text=True)
