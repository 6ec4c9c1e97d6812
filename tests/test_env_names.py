"""The one rule for environment names a job may get (security/env_names.py)."""

from __future__ import annotations

import pytest

from multiflexi_web.security.env_names import EnvNameError, check, forbidden_reason


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
