"""Executors report the app executables their host lacks; the app and RunTemplate pages warn."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from daemons.runtime import Runtime
from multiflexi_web.extensions import db
from multiflexi_web.models import Worker, utcnow
from multiflexi_web.models.worker import MISSING_KEY, MODULES_KEY
from multiflexi_web.runner.engines import EngineWatch
from tests.factories import login, make_app, make_company, make_runtemplate, make_user

MISSING = "multiflexi-surely-not-installed"


def _executor(app: Flask) -> Runtime:
    db.session.commit()
    rt = Runtime("executor", app)
    rt.register()
    return rt


def _info(worker_id: int | None) -> dict[str, object]:
    db.session.expire_all()
    worker = db.session.get(Worker, worker_id)
    assert worker is not None
    return worker.info


def test_executor_reports_missing_executables_and_pages_warn(
    app: Flask, client: FlaskClient
) -> None:
    login(client, make_user(is_admin=True))
    present, absent = make_app("echoer", executable="echo"), make_app("ghost", executable=MISSING)
    gone = make_app("gone", executable="/nonexistent/bin/tool")
    rt = make_runtemplate(make_company(), absent)
    db.session.commit()
    assert "No executor is running" in client.get(f"/applications/{present.id}").text

    executor = _executor(app)
    watch = EngineWatch(executor, set, 1.0)
    watch.tick()
    info = _info(executor.worker_id)
    assert info[MISSING_KEY] == sorted([MISSING, "/nonexistent/bin/tool"])
    assert info[MODULES_KEY]["native"] is None  # type: ignore[index]

    assert 'id="unrunnable"' not in client.get(f"/applications/{present.id}").text
    for url in (f"/applications/{absent.id}", f"/runtemplates/{rt.id}"):
        page = client.get(url).text
        assert 'id="unrunnable"' in page and MISSING in page and "is not installed" in page
    assert "/nonexistent/bin/tool" in client.get(f"/applications/{gone.id}").text

    # Fixed on the application: the next report clears the warning.
    absent.executable = "echo"
    db.session.commit()
    watch.tick()
    assert _info(executor.worker_id)[MISSING_KEY] == ["/nonexistent/bin/tool"]
    assert 'id="unrunnable"' not in client.get(f"/runtemplates/{rt.id}").text

    # Its executor stopped: nothing can run it.
    worker = db.session.get(Worker, executor.worker_id)
    assert worker is not None
    worker.stopped_at, worker.status = utcnow(), "stopped"
    db.session.commit()
    assert "No executor is running" in client.get(f"/runtemplates/{rt.id}").text


def test_a_module_no_live_executor_can_use_is_named(app: Flask, client: FlaskClient) -> None:
    login(client, make_user(is_admin=True))
    rt = make_runtemplate(make_company(), make_app("boxed", ociimage="busybox"))
    rt.executor = "docker"
    db.session.commit()
    executor = _executor(app)
    worker = db.session.get(Worker, executor.worker_id)
    assert worker is not None
    worker.info = {MODULES_KEY: {"native": None, "docker": "the Docker engine is not configured"}}
    db.session.commit()
    page = client.get(f"/runtemplates/{rt.id}").text
    assert "No live executor can use the docker executor" in page and "not configured" in page
