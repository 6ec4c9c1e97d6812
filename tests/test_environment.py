"""A job's environment: SPEC §4 precedence, sources, secrets, RESULT_FILE, argv without a shell."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from multiflexi_web.extensions import db
from multiflexi_web.models import RunTemplateConfig, RunTemplateCredential
from multiflexi_web.security.secrets import MASK
from multiflexi_web.services.jobs.command import CommandError, build_argv
from multiflexi_web.services.jobs.environment import result_path
from multiflexi_web.services.runtemplates.configure import set_config
from tests.executor_support import drain, job, output_of, schedule, shell_rt
from tests.factories import make_company, make_credential, make_prototype

KEYS = ["K_APP", "K_SYS", "K_CO", "K_RT", "K_CRED", "K_OVR", "MULTIFLEXI_JOB_ID"]
# (key, the layer that must win, its value there)
EXPECTED = [
    ("K_APP", "application", "app"),
    ("K_SYS", "system", "sys"),
    ("K_CO", "company", "co"),
    ("K_RT", "runtemplate", "rt"),
    ("K_CRED", "credential:the-cred", "cred"),
    ("K_OVR", "override", "ovr"),
]


def _layers_for(level: int) -> list[str]:
    """Each key is set in its own layer and in every layer below it."""
    return KEYS[level:]


def test_precedence_sources_and_secrets(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sysfile = tmp_path / "multiflexi.env"
    sysfile.write_text(
        "".join(f"{k}=sys\n" for k in _layers_for(1))
        + "DATABASE_URL=postgresql://leak\nENCRYPTION_MASTER_KEY=leak\n"
    )
    monkeypatch.setenv("MULTIFLEXI_ENV_FILE", str(sysfile))
    company = make_company(env={k: "co" for k in _layers_for(2)})
    fields = [{"keyname": k, "default": "app"} for k in KEYS]
    fields.append({"keyname": "API_PASSWORD", "type": "password"})
    # Output masking off: the job's own output must show that the process got the real value.
    rt = shell_rt("env", company, fields=fields, mask_output=False)
    tenant_keys = [k for k in _layers_for(3) if not k.startswith("MULTIFLEXI_")]
    set_config(rt, {**{k: "rt" for k in tenant_keys}, "API_PASSWORD": "hunter2"})
    # A platform name is refused when saved; an old row holding one still never wins.
    rt.config.append(RunTemplateConfig(key="MULTIFLEXI_JOB_ID", value="rt", secret=False))
    proto = make_prototype(fields=[{"keyword": k, "type": "string"} for k in _layers_for(4)])
    cred = make_credential(
        company, proto, name="the-cred", values=dict.fromkeys(_layers_for(4), "cred")
    )
    rt.credentials.append(RunTemplateCredential(credential_id=cred.id, requirement=proto.code))
    db.session.commit()
    [job_id] = schedule(
        rt,
        env_override={
            "K_OVR": "ovr",
            "MULTIFLEXI_JOB_ID": "ovr",
            "RESULT_FILE": "../../etc/passwd",
        },
    )
    drain(app)

    j = job(job_id)
    assert j.status == "succeeded", j.status_reason
    seen = dict(
        line.split("=", 1) for line in output_of(job_id).decode().splitlines() if "=" in line
    )
    recorded = {e["key"]: e for e in j.env or []}
    for key, source, value in EXPECTED:
        assert seen[key] == value, key
        assert (recorded[key]["source"], recorded[key]["value"]) == (source, value), key
    assert seen["MULTIFLEXI_JOB_ID"] == str(job_id)
    assert recorded["MULTIFLEXI_JOB_ID"]["source"] == "platform"
    workdir = Path(seen["MULTIFLEXI_TMP"])
    assert seen["PWD"] == str(workdir) and workdir.name == f"job-{job_id}"
    assert seen["RESULT_FILE"] == str(workdir / "passwd")
    assert seen["API_PASSWORD"] == "hunter2"
    assert recorded["API_PASSWORD"] == {
        "key": "API_PASSWORD",
        "value": MASK,
        "source": "runtemplate",
        "secret": True,
    }
    assert "hunter2" not in str(j.env)
    assert "DATABASE_URL" not in seen and "ENCRYPTION_MASTER_KEY" not in seen
    for name in (
        "APPLICATION_ID",
        "APPLICATION_NAME",
        "APPLICATION_UUID",
        "COMPANY_ID",
        "COMPANY_CODE",
        "COMPANY_NAME",
        "RUNTEMPLATE_ID",
        "RUNTEMPLATE_NAME",
        "EXECUTOR",
        "VERSION",
    ):
        assert seen[f"MULTIFLEXI_{name}"], name
    assert seen["MULTIFLEXI_COMPANY_CODE"] == company.slug
    assert seen["MULTIFLEXI_EXECUTOR"] == "native"


def test_a_config_value_is_one_literal_argument(app: Flask, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    rt = shell_rt("", fields=[{"keyname": "ARG"}])
    rt.application.executable = "/usr/bin/printf"
    rt.application.cmdparams = "'[%s]\\n' {ARG} ${ARG} pre-{ARG}-post"
    db.session.commit()
    set_config(rt, {"ARG": f"x; touch {marker} $(touch {marker}) `touch {marker}`"})
    db.session.commit()
    [job_id] = schedule(rt)
    drain(app)
    value = f"x; touch {marker} $(touch {marker}) `touch {marker}`"
    assert output_of(job_id).decode().splitlines() == [
        f"[{value}]",
        f"[{value}]",
        f"[pre-{value}-post]",
    ]
    assert job(job_id).command == ["/usr/bin/printf", "[%s]\\n", value, value, f"pre-{value}-post"]
    assert not marker.exists()


@pytest.mark.parametrize(
    ("template", "env", "argv"),
    [
        ("", {}, ["prog"]),
        ("-a {A} --b=${B}", {"A": "1 2", "B": "x y"}, ["prog", "-a", "1 2", "--b=x y"]),
        ("'{A} and {B}'", {"A": "a", "B": "'b'"}, ["prog", "a and 'b'"]),
        ("{MISSING} ${MISSING}", {}, ["prog", "{MISSING}", "${MISSING}"]),
        ("{E}", {"E": ""}, ["prog", ""]),
        ("${A}{A}", {"A": "$"}, ["prog", "$$"]),
    ],
)
def test_build_argv(template: str, env: dict[str, str], argv: list[str]) -> None:
    assert build_argv("prog", template, env) == argv


def test_build_argv_refuses_bad_templates() -> None:
    with pytest.raises(CommandError, match=r"cmdparams .*No closing quotation"):
        build_argv("prog", "'unclosed", {})
    with pytest.raises(CommandError, match="executable"):
        build_argv(" ", "", {})


@pytest.mark.parametrize(
    ("value", "inside"),
    [
        ("result.json", "result.json"),
        ("out/r.json", "out/r.json"),
        ("/etc/passwd", "passwd"),
        ("../../etc/shadow", "shadow"),
        ("a/../../b", "b"),
        ("..", "result"),
        ("x\x00y", "xy"),
    ],
)
def test_result_file_stays_in_the_work_directory(value: str, inside: str, tmp_path: Path) -> None:
    assert result_path(value, tmp_path) == tmp_path / inside


def test_placeholders_in_values_are_filled_from_the_other_values(app: Flask) -> None:
    """Upstream's macros (an app's RESULT_FILE `report_{CO}.json`, `{MULTIFLEXI_TMP}/...`): filled
    before the job starts, RESULT_FILE then placed in the work directory; `${KEY}`, unknown
    names, a value holding a placeholder itself and the platform's own values stay as they are;
    a secret is never copied into another value (the job's stderr says so)."""
    company = make_company(name="Co {CO}")
    fields = [
        {"keyname": "CO", "default": "acme"},
        {"keyname": "RESULT_FILE", "default": "report_{CO}.json"},
        {"keyname": "RATES", "default": "{MULTIFLEXI_TMP}/rates.json"},
        {"keyname": "KEEP", "default": '${CO} {NOPE} {lower} {"j": 1} {CHAIN}'},
        {"keyname": "CHAIN", "default": "{CO}"},
        {"keyname": "API_PASSWORD", "type": "password"},
        {"keyname": "CONN", "default": "db://u:{API_PASSWORD}@h"},
    ]
    rt = shell_rt('env; printf "%s" "$CO" > "$RESULT_FILE"', company, fields=fields)
    set_config(rt, {"API_PASSWORD": "hunter2"})
    db.session.commit()
    [job_id] = schedule(rt)
    drain(app)

    j = job(job_id)
    assert j.status == "succeeded", j.status_reason
    seen = dict(
        line.split("=", 1) for line in output_of(job_id).decode().splitlines() if "=" in line
    )
    workdir = Path(seen["MULTIFLEXI_TMP"])
    assert seen["RESULT_FILE"] == str(workdir / "report_acme.json")
    assert seen["RATES"] == f"{workdir}/rates.json"
    assert seen["KEEP"] == '${CO} {NOPE} {lower} {"j": 1} {CHAIN}'
    assert seen["CHAIN"] == "acme"
    assert seen["MULTIFLEXI_COMPANY_NAME"] == "Co {CO}"
    assert seen["CONN"] == "db://u:{API_PASSWORD}@h"
    assert "hunter2" not in str(j.env)
    stderr = output_of(job_id, "stderr").decode()
    assert "multiflexi: environment: CONN (application): {API_PASSWORD} left unfilled" in stderr
    assert {a.filename for a in job(job_id).artifacts} >= {"report_acme.json"}


def test_a_value_filled_past_the_limit_is_left_as_it_was() -> None:
    from multiflexi_web.services.jobs.macros import MAX_VALUE, expand

    big = "x" * (MAX_VALUE // 4)
    values = {"BIG": big, "FIVE": "{BIG}" * 5, "TWO": "{BIG}{BIG}"}
    sources = dict.fromkeys(values, "runtemplate")
    filled = expand(values, sources, set())
    assert filled.values["FIVE"] == "{BIG}" * 5 and filled.values["TWO"] == big * 2
    assert filled.notes == ("FIVE (runtemplate): placeholders left unfilled: over 128 KiB",)


def test_an_oversized_fill_is_refused_before_it_is_built() -> None:
    """A tenant's value of 2,000 placeholders of a 64 KiB value would be 128 MB: refused by its
    measure, never made (traced memory stays small)."""
    import tracemalloc

    from multiflexi_web.services.jobs.macros import expand

    values = {"BIG": "x" * 65536, "MANY": "{BIG}" * 2000}
    tracemalloc.start()
    try:
        filled = expand(values, dict.fromkeys(values, "runtemplate"), set())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert filled.values["MANY"] == "{BIG}" * 2000 and len(filled.notes) == 1
    assert peak < 8 * 1024 * 1024, peak
