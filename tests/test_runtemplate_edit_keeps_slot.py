"""An edit that does not change the schedule keeps a due slot that has no job yet (a paused
template's, docs/architecture.md: "its missed slots meet the misfire policy at the first tick
after the resume"; a scheduler outage's; one between two ticks). The portal and the API send the
schedule with every save, and set_schedule() used to move the next run past it, whatever the
misfire policy: the slot was lost without a job or a skipped row."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import Job, RunTemplate, utcnow
from multiflexi_web.services.runtemplates.configure import ScheduleSpec, set_schedule
from multiflexi_web.services.scheduling.batches import tick
from tests.api_helpers import bearer, make_scene, make_token


def test_renaming_a_template_keeps_its_due_slot(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    secret = make_token(s.operator)
    now = utcnow()
    slot = now.replace(hour=0, minute=0, second=0, microsecond=0)  # today's daily slot
    rt = db.session.get(RunTemplate, s.rt_a.id)
    assert rt is not None
    rt.interval, rt.timezone, rt.next_run_at = "d", "UTC", slot  # due, no job written yet
    db.session.commit()
    rt_id = rt.id

    resp = client.patch(
        f"/api/v1/runtemplates/{rt_id}", json={"name": "renamed"}, headers=bearer(secret)
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)

    tick(utcnow() + timedelta(seconds=1))  # the scheduler's next tick
    slots = db.session.scalars(select(Job.slot_at).where(Job.runtemplate_id == rt_id)).all()
    # Misfire policy `latest` (default): today's slot runs once.
    assert [s_.replace(tzinfo=None) for s_ in slots] == [slot.replace(tzinfo=None)]


def test_only_a_real_change_moves_the_next_run(app: Flask) -> None:
    s = make_scene(app)
    rt = db.session.get_one(RunTemplate, s.rt_a.id)
    due = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    rt.active, rt.interval, rt.cron, rt.delay, rt.timezone = True, "d", None, 0, None
    rt.next_run_at = due
    same = ScheduleSpec("d", "", 0, "")  # what a form sends back for an unchanged schedule
    set_schedule(rt, same)
    assert rt.next_run_at == due
    set_schedule(rt, ScheduleSpec("h", None, 0, None))  # another interval: the next slot
    assert rt.next_run_at is not None and rt.next_run_at > utcnow()
    rt.active = False  # switched off: no next run
    set_schedule(rt, ScheduleSpec("h", None, 0, None))
    assert rt.next_run_at is None
    rt.active = True  # switched on again: from now on, no slot of the time it was off
    set_schedule(rt, ScheduleSpec("h", None, 0, None))
    assert rt.next_run_at is not None and rt.next_run_at > utcnow()
