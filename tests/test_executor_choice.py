"""Choosing an executor module: refused at save time with the reason (CLI, portal), workers page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from multiflexi_web.executors import engine as engines
from multiflexi_web.extensions import db
from multiflexi_web.models import RunTemplate, Worker
from multiflexi_web.models.worker import MODULES_KEY
from tests.engines import Engine, engine_fixture, engines_fixture  # noqa: F401  (fixtures)
from tests.factories import make_app, make_company, make_runtemplate, make_worker
from tests.portal_b_helpers import operator_setup

IMAGE = "multiflexi-test/busybox:latest"


@pytest.fixture(autouse=True)
def no_engines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No engine configured unless a test says so (the system sockets do not exist here)."""
    for key in ("DOCKER_HOST", "MULTIFLEXI_PODMAN_HOST", "CONTAINER_HOST"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MULTIFLEXI_ENV_FILE", str(tmp_path / "none.env"))
    monkeypatch.setenv("MULTIFLEXI_LOCAL_ENV", str(tmp_path / "none.env"))
    monkeypatch.setattr(engines.DOCKER, "sockets", (str(tmp_path / "docker.sock"),))
    monkeypatch.setattr(engines.PODMAN, "sockets", (str(tmp_path / "podman.sock"),))
    engines.forget_pings()


def create(runner: FlaskCliRunner, app_id: int, *args: str) -> tuple[int, str]:
    company = make_company()
    head = ["runtemplate", "create", "--company", company.slug, "--app", str(app_id)]
    result = runner.invoke(args=[*head, "--name", "c", *args, "--format", "json"])
    return result.exit_code, result.output


def test_cli_refuses_an_app_without_an_image(app: Flask, runner: FlaskCliRunner) -> None:
    code, out = create(runner, make_app().id, "--executor", "docker")
    assert code != 0
    assert "executor 'docker': the application has no OCI image (ociimage)" in out
    assert db.session.query(RunTemplate).count() == 0


@pytest.mark.parametrize("name", ["docker", "podman"])
def test_cli_refuses_an_engine_not_configured(
    app: Flask, runner: FlaskCliRunner, name: str
) -> None:
    code, out = create(runner, make_app(ociimage=IMAGE).id, "--executor", name)
    assert code != 0
    title = name.capitalize()
    assert f"executor {name!r}: the {title} engine is not configured on this host" in out


def test_cli_refuses_an_engine_that_does_not_answer(
    app: Flask, runner: FlaskCliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    code, out = create(runner, make_app(ociimage=IMAGE).id, "--executor", "docker")
    assert code != 0
    assert f"the Docker engine at unix://{tmp_path}/absent.sock does not answer" in out


def test_podman_needs_a_unix_socket(
    app: Flask, runner: FlaskCliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTAINER_HOST", "ssh://core@127.0.0.1/run/podman/podman.sock")
    code, out = create(runner, make_app(ociimage=IMAGE).id, "--executor", "podman")
    assert code != 0
    assert (
        "executor 'podman': MULTIFLEXI_PODMAN_HOST or CONTAINER_HOST must name a unix:// socket, "
        "got 'ssh://core@127.0.0.1/run/podman/podman.sock'"
    ) in out


def test_a_live_executor_reporting_the_module_makes_it_usable(
    app: Flask, runner: FlaskCliRunner
) -> None:
    stale = make_worker(heartbeat_age=3600)
    stale.info = {MODULES_KEY: {"docker": None}}
    db.session.commit()
    code, out = create(runner, make_app(ociimage=IMAGE).id, "--executor", "docker")
    assert code != 0, "a stale executor's report counts for nothing"
    make_worker().info = {MODULES_KEY: {"native": None, "docker": None}}
    db.session.commit()
    code, out = create(runner, make_app(ociimage=IMAGE).id, "--executor", "docker")
    assert code == 0, out
    assert json.loads(out)["executor"] == "docker"


def test_cli_update_checks_executor_and_options(
    app: Flask, runner: FlaskCliRunner, engine: Engine
) -> None:
    rt = make_runtemplate(make_company(), app=make_app(ociimage=IMAGE))
    rt_id = rt.id

    def update(*args: str) -> tuple[int, str]:
        result = runner.invoke(args=["runtemplate", "update", str(rt_id), *args, "--format=json"])
        return result.exit_code, result.output

    code, out = update("--executor", engine.name, "--executor-option", "memory=lots")
    assert code != 0
    assert "executor option memory='lots': must be bytes or a size like 512m, 2g" in out
    code, out = update("--executor", engine.name, "--executor-option", "memory=64m")
    assert code == 0, out
    assert json.loads(out)["executor_options"] == {"memory": "64m"}
    code, out = update("--executor-option", "network=host")
    assert code != 0 and "network='host': must be one of none, bridge" in out
    code, out = update("--executor", "native", "--executor-option", "memory=")
    assert code == 0, out
    row = json.loads(out)
    assert (row["executor"], row["executor_options"]) == ("native", {})


def test_portal_greys_unusable_modules_and_refuses_them(app: Flask, client: FlaskClient) -> None:
    company, _ = operator_setup(client)
    rt = make_runtemplate(company, app=make_app(ociimage=None))
    page = client.get(f"/runtemplates/{rt.id}/edit").get_data(as_text=True)
    assert '<option value="docker" disabled title="the application has no OCI image' in page
    assert '<option value="native" selected' in page
    resp = client.post(
        f"/runtemplates/{rt.id}/edit",
        data={"name": rt.name, "interval": "n", "executor": "docker", "active": "true"},
    )
    assert resp.status_code == 400
    assert "executor &#39;docker&#39;: the application has no OCI image (ociimage)" in resp.text
    db.session.rollback()
    assert db.session.get(RunTemplate, rt.id).executor == "native"  # type: ignore[union-attr]


def test_workers_page_lists_modules(app: Flask, client: FlaskClient) -> None:
    operator_setup(client)
    w = make_worker()
    w.info = {MODULES_KEY: {"native": None, "podman": "the Podman engine is not configured"}}
    db.session.commit()
    page = client.get("/workers/").get_data(as_text=True)
    assert '<span class="badge status-succeeded">native</span>' in page
    assert "podman: the Podman engine is not configured" in page
    assert db.session.get(Worker, w.id) is not None
