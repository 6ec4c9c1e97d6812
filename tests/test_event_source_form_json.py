"""The event source form's `config` JSON: a 5,000-digit number (int()'s ValueError) or deep
nesting (RecursionError) is refused naming the field, not a 500."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.factories import login, make_company, make_event_source, make_user


@pytest.mark.parametrize("config", ['{"a": ' + "1" * 5000 + "}", "[" * 100_000 + "]" * 100_000])
def test_source_config_evil_json(app: Flask, client: FlaskClient, config: str) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False
    login(client, make_user(is_admin=True))
    src = make_event_source(make_company())
    form = {"name": src.name, "kind": "webhook", "enabled": "1", "config": config}
    resp = client.post(f"/events/sources/{src.id}/edit", data=form)
    assert resp.status_code == 400, resp.status_code
    assert "not JSON this form takes" in resp.get_data(as_text=True)
