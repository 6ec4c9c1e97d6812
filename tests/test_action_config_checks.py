"""An action's number fields are checked when saved, not found out by a failing delivery: a
Zabbix port of 70000 was taken as 4464 by getaddrinfo, and "²" passed isdigit() but not int()."""

from __future__ import annotations

import pytest
from flask import Flask

from multiflexi_web.services.actions import configure
from multiflexi_web.services.actions.configure import ActionConfigError
from tests.factories import make_app, make_company, make_runtemplate


@pytest.mark.parametrize(
    ("kind", "key", "value", "message"),
    [
        ("Zabbix", "port", "70000", "is not a port"),
        ("Zabbix", "port", "0", "is not a port"),
        ("Email", "smtp_port", "²", "is not a whole number"),
        ("Reschedule", "delay", "-60", "is not a whole number"),
        ("RedmineIssue", "tracker_id", "1e3", "is not a whole number"),
    ],
)
def test_a_bad_number_is_refused_naming_the_field(
    app: Flask, kind: str, key: str, value: str, message: str
) -> None:
    rt = make_runtemplate(make_company(), make_app())
    with pytest.raises(ActionConfigError, match=f"{kind} config '{key}': .*{message}"):
        configure.put(rt, "failure", kind, {key: value}, is_admin=True)
    with pytest.raises(ActionConfigError, match=message):
        configure.put_default(kind, {key: value}, is_admin=True)


def test_good_numbers_and_empty_values_pass(app: Flask) -> None:
    rt = make_runtemplate(make_company(), make_app())
    row = configure.put(rt, "failure", "Zabbix", {"port": "10051", "key": ""}, is_admin=True)
    assert row.config["port"] == "10051"
    assert configure.put(rt, "success", "Reschedule", {"delay": "0"}).config["delay"] == "0"
