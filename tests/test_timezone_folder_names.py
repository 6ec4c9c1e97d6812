"""A time zone naming a folder of the zone database ("Europe", "America/Argentina") or too
long a name makes ZoneInfo raise an OSError (IsADirectoryError, ENAMETOOLONG): refused as an
unknown zone everywhere one is typed, not a 500."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient

from multiflexi_web.services.scheduling.times import ScheduleError, validate
from tests.api_helpers import bearer, make_scene, make_token
from tests.factories import login, make_company, make_runtemplate, make_user


@pytest.mark.parametrize("zone", ["Europe", "America/Argentina", "Etc", "A" * 5000])
def test_validate_folder_zone(zone: str) -> None:
    with pytest.raises(ScheduleError, match="timezone"):
        validate("d", None, zone, 0)


def test_api_patch_folder_zone(app: Flask, client: FlaskClient) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False
    s = make_scene(app)
    headers = {**bearer(make_token(s.admin)), "Content-Type": "application/json"}
    body = json.dumps({"interval": "d", "timezone": "Europe"})
    resp = client.patch(f"/api/v1/runtemplates/{s.rt_a.id}", data=body, headers=headers)
    assert resp.status_code in (400, 422), (resp.status_code, resp.get_data(True)[:300])


def test_portal_edit_folder_zone(app: Flask, client: FlaskClient) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False
    login(client, make_user(is_admin=True))
    rt = make_runtemplate(make_company())
    form = {"name": "x", "interval": "d", "executor": "native", "timezone": "Europe"}
    resp = client.post(f"/runtemplates/{rt.id}/edit", data=form)
    assert resp.status_code == 400, resp.status_code
    resp = client.get("/runtemplates/schedule-preview?interval=d&timezone=Europe")
    assert resp.status_code == 200, resp.status_code


def test_settings_refuse_a_folder_zone() -> None:
    from multiflexi_web.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="MULTIFLEXI_TIMEZONE"):
        load_settings({"MULTIFLEXI_TIMEZONE": "Europe", "DATABASE_URL": "sqlite://"})
