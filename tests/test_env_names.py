"""The one rule for environment names a job may get (security/env_names.py)."""

from __future__ import annotations

import pytest
from flask import Flask

from multiflexi_web.security.env_names import EnvNameError, check, forbidden_reason
from multiflexi_web.services.events.catalog import (
    EventSourceError,
    RuleSpec,
    create_rule,
    create_source,
)
from multiflexi_web.services.runtemplates.configure import RunTemplateError, set_config
from tests.factories import make_app, make_company, make_runtemplate


@pytest.mark.parametrize(
    "name",
    [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "ld_audit",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PERL5OPT",
        "PERLLIB",
        "RUBYOPT",
        "NODE_OPTIONS",
        "BASH_ENV",
        "ENV",
        "IFS",
        "PATH",
        "GCONV_PATH",
        "BASH_FUNC_x%%",
        "MULTIFLEXI_JOB_ID",
        "DATABASE_URL",
        "ENCRYPTION_MASTER_KEY",
    ],
)
def test_never_for_anyone(name: str) -> None:
    assert forbidden_reason(name) is not None
    with pytest.raises(EnvNameError, match=name.replace("%", ".")):
        check(name, what="env", admin=True)


def test_declared_fields_and_allow_list_for_tenants() -> None:
    check("ABRAFLEXI_URL", what="env", admin=False, declared={"ABRAFLEXI_URL"})
    check("TZ", what="env", admin=False)
    check("HTTPS_PROXY", what="env", admin=False, allow={"HTTPS_PROXY"})
    with pytest.raises(EnvNameError, match="'OTHER': not a field of the application"):
        check("OTHER", what="env", admin=False, declared={"ABRAFLEXI_URL"})
    check("OTHER", what="env", admin=True)  # a global admin: any acceptable name


def test_event_rules_and_runtemplate_config_follow_the_rule(app: Flask) -> None:
    rt = make_runtemplate(make_company(), make_app(fields=[{"keyname": "DOC"}]))
    source = create_source("hook", "webhook", {})
    create_rule(source, RuleSpec(rt.id, env_mapping={"DOC": "$.d", "EVENT_X": "$.x"}))
    with pytest.raises(EventSourceError, match="'OTHER': not a field"):
        create_rule(source, RuleSpec(rt.id, env_mapping={"OTHER": "$.o"}))
    with pytest.raises(EventSourceError, match="'LD_PRELOAD': not allowed"):
        create_rule(source, RuleSpec(rt.id, env_mapping={"LD_PRELOAD": "$.o"}, admin=True))
    with pytest.raises(RunTemplateError, match="config 'PYTHONPATH': not allowed"):
        set_config(rt, {"PYTHONPATH": "/tmp"}, admin=True)
    with pytest.raises(RunTemplateError, match="config 'OTHER': not a field"):
        set_config(rt, {"OTHER": "x"})
    set_config(rt, {"DOC": "x", "OTHER": "y"}, admin=True)
