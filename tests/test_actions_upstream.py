"""services/actions/upstream.py: upstream's PHP-serialised / JSON action maps and actionconfig
rows become our action configs."""

from __future__ import annotations

import pytest

from multiflexi_web.services.actions.upstream import (
    PhpSerialError,
    UpstreamAction,
    choice_map,
    convert,
    php_unserialize,
)

# As upstream's RunTemplate rows store them (PHP serialize() of the form's toggles).
SUCCESS = 'a:2:{s:7:"WebHook";b:1;s:16:"ChainRuntemplate";b:0;}'
FAIL = 'a:3:{s:6:"Github";b:1;s:4:"Stop";b:1;s:10:"Reschedule";b:0;}'


def test_php_subset() -> None:
    text = 'a:5:{i:0;s:6:"žluť";s:1:"b";b:0;s:1:"n";N;s:1:"d";d:0.5;s:1:"a";a:1:{i:1;i:-7;}}'
    assert php_unserialize(text) == {0: "žluť", "b": False, "n": None, "d": 0.5, "a": {1: -7}}


@pytest.mark.parametrize(
    "bad",
    ['a:2:{s:7:"WebHook";b:1;}', 's:9:"short";', 'O:8:"stdClass":0:{}', "b:1;junk", 's:x:"a";'],
)
def test_php_errors_name_the_place(bad: str) -> None:
    with pytest.raises(PhpSerialError, match="at byte"):
        php_unserialize(bad)


def test_maps_in_every_stored_form() -> None:
    assert choice_map(SUCCESS) == {"WebHook": True, "ChainRuntemplate": False}
    assert choice_map('{"WebHook": true, "Stop": false}') == {"WebHook": True, "Stop": False}
    assert choice_map('["Stop"]') == {"Stop": True}
    assert choice_map(None) == {} and choice_map("") == {}


def test_convert_merges_actionconfig_rows_and_renames_keys() -> None:
    rows = [
        {
            "module": "WebHook",
            "keyname": "uri",
            "value": "https://hooks.example/x",
            "mode": "success",
        },
        {"module": "ChainRuntemplate", "keyname": "rtid", "value": 42, "mode": "success"},
        {"module": "Github", "keyname": "token", "value": "ghp_x", "mode": "fail"},
        {"module": "Zabbix", "keyname": "key", "value": "k", "mode": "fail"},
        {"module": "WebHook", "keyname": "uri", "value": "ignored", "mode": "bogus"},
    ]
    assert convert(SUCCESS, FAIL, rows) == [
        UpstreamAction("success", "WebHook", True, {"url": "https://hooks.example/x"}),
        UpstreamAction("success", "ChainRuntemplate", False, {"rtid": "42"}),
        UpstreamAction("failure", "Github", True, {"token": "ghp_x"}),
        UpstreamAction("failure", "Stop", True, {}),
        UpstreamAction("failure", "Reschedule", False, {}),
        UpstreamAction("failure", "Zabbix", False, {"key": "k"}),
    ]
