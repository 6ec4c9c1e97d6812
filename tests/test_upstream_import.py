"""`multiflexi upstream import`: an upstream installation (SQLite, MariaDB, PostgreSQL) moved
into ours (SQLite, PostgreSQL), checked by a dry run, all or nothing, idempotent."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import (
    ActionConfig,
    ActionDefault,
    Application,
    AuditLog,
    Company,
    CompanyMember,
    Credential,
    CredentialPrototype,
    EventRule,
    EventSource,
    Job,
    JobOutput,
    RunTemplate,
    UpstreamMap,
    User,
)
from multiflexi_web.security.secrets import MASK, reveal
from multiflexi_web.services.actions import values as action_values
from multiflexi_web.services.jobs.environment import context_for, resolve
from multiflexi_web.services.scheduling import times
from multiflexi_web.services.scheduling.batches import tick
from tests.conftest import PG_ADMIN_URL, _pg_available
from tests.factories import isolate_requests
from tests.services import need, port_open
from tests.upstream_fixture import (
    ABRAFLEXI_PASSWORD,
    LEGACY_PASSWORD,
    MASTER_KEY,
    USER_PASSWORD,
    ZONE,
    Upstream,
    build,
    engine_for,
    mariadb_db,
    postgres_db,
    sqlite_db,
)


@pytest.fixture(autouse=True)
def _bcrypt() -> None:
    """Upstream's hashes are bcrypt: PHP's are made (and ours checked) with the bcrypt module."""
    need(importlib.util.find_spec("bcrypt") is not None, "bcrypt (a pyproject dependency)")


def _upstream_url(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        return sqlite_db(tmp_path)
    if kind == "mariadb":
        need(importlib.util.find_spec("pymysql") is not None, "PyMySQL (pyproject dependency)")
        need(port_open("127.0.0.1", 3306), "MariaDB at 127.0.0.1:3306")
        return mariadb_db()
    need(_pg_available(), f"PostgreSQL ({PG_ADMIN_URL})")
    return postgres_db(PG_ADMIN_URL)


def _build(urls: Iterator[str]) -> Iterator[Upstream]:
    url = next(urls)
    engine = engine_for(url)
    try:
        yield build(engine)
    finally:
        engine.dispose()
        next(urls, None)  # drops the database


@pytest.fixture(params=["sqlite", "mariadb", "postgres"])
def any_upstream(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Upstream]:
    yield from _build(_upstream_url(request.param, tmp_path))


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Upstream]:
    yield from _build(_upstream_url("sqlite", tmp_path))


def run(runner: FlaskCliRunner, up: Upstream, *extra: str, key: str | None = MASTER_KEY) -> Result:
    args = ["upstream", "import", "--from", up.url, "--timezone", "Europe/Prague", *extra]
    env = {"MULTIFLEXI_UPSTREAM_KEY": key} if key else {"MULTIFLEXI_UPSTREAM_KEY": ""}
    return runner.invoke(args=args, env=env)


def report(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    found: dict[str, Any] = json.loads(result.output)
    return found


def refused(rep: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(r["table"], r["row"]): r["reason"] for r in rep["refused"]}


def counts(rep: dict[str, Any], outcome: str) -> dict[str, int]:
    return {t: c[outcome] for t, c in rep["tables"].items() if c[outcome]}


def _rows(model: type[Any]) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def _mapped(kind: str, upstream_id: int) -> int:
    found = db.session.scalar(
        select(UpstreamMap.our_id).where(
            UpstreamMap.kind == kind, UpstreamMap.upstream_id == str(upstream_id)
        )
    )
    assert found is not None, f"{kind} {upstream_id} not mapped"
    return found


def test_moves_an_installation_in(
    app: Flask, runner: FlaskCliRunner, any_upstream: Upstream
) -> None:
    up = any_upstream
    dry = report(run(runner, up, "--dry-run", "--format", "json"))
    assert dry["dry_run"] and not dry["committed"]
    assert _rows(Company) == 0 and _rows(UpstreamMap) == 0 and _rows(User) == 0, "dry run wrote"
    why = refused(dry)
    assert "not allowed here" in why[("companyenv", "#4 (LD_PRELOAD)")]
    assert "undecryptable" in why[("credentials", "#2 (Damaged)")]
    assert "unknown" in why[("company_user", "company 1 user 2")]
    assert "executor 'Fancy': unknown" in why[("runtemplate", "#3 (probe)")]
    assert len(why) == 8, why  # the ones above and below, nothing else
    assert "'Sleep': unknown here" in why[("actions", "runtemplate #1 failure Sleep")]
    assert "action map" in why[("actions", "runtemplate #4")]
    assert "broken JSON" in why[("event_rule", "#2")]
    assert "credential 2: not carried over" in why[("runtplcreds", "runtemplate 2 credential 2")]
    assert counts(dry, "created")["apps"] == 3
    notes = "\n".join(dry["notes"])
    assert "token: 1 rows not carried over" in notes
    assert "runtemplate #1: SLA deadline_offset/allow_late not carried over" in notes
    assert "jobs not carried over (add --include-history" in notes

    real = report(run(runner, up, "--format", "json"))
    assert real["committed"] and real["tables"] == dry["tables"]
    assert real["refused"] == dry["refused"]
    _check_companies()
    _check_catalogue()
    _check_users()
    _check_runtemplates(up)
    _check_events()

    again = report(run(runner, up, "--format", "json"))
    assert counts(again, "created") == {} and counts(again, "updated") == {}, again["tables"]
    assert again["refused"] == real["refused"]


def _check_companies() -> None:
    vs = db.session.scalars(select(Company).where(Company.slug == "VS")).one()
    assert (vs.name, vs.ic, vs.enabled, vs.zabbix_host) == (
        "Vitex Software",
        "69438676",
        True,
        "vs.zabbix",
    )
    spoje = db.session.get(Company, _mapped("company", 2))
    assert spoje is not None and spoje.slug == "spoje-net-s-r-o-2" and not spoje.enabled
    env = {e.key: e for e in vs.env}
    assert set(env) == {"ABRAFLEXI_BANK", "EASE_LOGGER", "COMPANY_API_TOKEN"}
    token = env["COMPANY_API_TOKEN"]
    assert token.secret and token.value != "tok-company-1" and reveal(token) == "tok-company-1"


def _check_catalogue() -> None:
    apps = {a.uuid: a for a in db.session.scalars(select(Application))}
    report_app = apps["dd22e4a1-58b3-4e4b-b832-ad65ebcf4dc9"]
    assert report_app.requirements == ["AbraFlexi"]
    assert {c.code for c in report_app.exit_codes} == {0, 1, 2, 3}
    assert report_app.produces and "transaction-report" in report_app.produces
    assert report_app.field("ABRAFLEXI_PASSWORD").secret  # type: ignore[union-attr]
    assert "cs" in report_app.translations.get("name", {})
    protos = {p.code: p for p in db.session.scalars(select(CredentialPrototype))}
    assert protos["AbraFlexi"].uuid == "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    rb = {f.keyword: f for f in protos["RaiffeisenBank"].fields}
    assert set(rb) == {"CERT_FILE", "CERT_PASS", "XIBMCLIENTID"} and rb["CERT_PASS"].secret
    cred = db.session.get(Credential, _mapped("credentials", 1))
    assert cred is not None
    stored = {v.key: v for v in cred.values}
    secret = stored["ABRAFLEXI_PASSWORD"]
    assert secret.secret and ABRAFLEXI_PASSWORD not in secret.value
    assert "ciphertext" not in secret.value, "still upstream's envelope"
    assert reveal(secret) == ABRAFLEXI_PASSWORD
    assert stored["ABRAFLEXI_LOGIN"].value == "winstrom" and not stored["ABRAFLEXI_LOGIN"].secret


def _check_users() -> None:
    users = {u.login: u for u in db.session.scalars(select(User))}
    assert set(users) == {"vitex", "oldtimer"}, "the daemons' unix user is not a person"
    vitex = users["vitex"]
    assert vitex.is_admin and vitex.full_name == "Vítězslav Dvořák"
    assert vitex.password_hash.startswith("$2y$")
    assert users["oldtimer"].password_hash.startswith("upstream-md5:")
    roles = {
        (m.company.slug, m.user.login): m.role for m in db.session.scalars(select(CompanyMember))
    }
    assert roles == {("VS", "vitex"): "admin", ("spoje-net-s-r-o-2", "oldtimer"): "viewer"}


def _check_runtemplates(up: Upstream) -> None:
    rt = db.session.get(RunTemplate, _mapped("runtemplate", 1))
    assert rt is not None
    assert (rt.interval, rt.delay, rt.executor, rt.active) == ("d", 7200, "native", True)
    assert (rt.max_attempts, rt.retry_backoff, rt.retry_min_gap) == (3, "linear", 60)
    assert (rt.success_count, rt.failure_count, rt.topics) == (41, 2, ["banking"])
    # Upstream's queued slot, read in its zone, is where the schedule goes on.
    assert rt.next_run_at == up.next_schedule.replace(tzinfo=ZONE).astimezone(UTC)
    assert rt.last_run_at == rt.next_run_at - timedelta(days=1)
    assert {c.key for c in rt.config} == {"ABRAFLEXI_BANK", "LANG"}
    assert [link.requirement for link in rt.credentials] == ["AbraFlexi"]
    actions = {
        (a.mode, a.action): a
        for a in db.session.scalars(
            select(ActionConfig).where(ActionConfig.runtemplate_id == rt.id)
        )
    }
    assert set(actions) == {
        ("success", "WebHook"),
        ("success", "ChainRuntemplate"),
        ("failure", "Stop"),
        ("failure", "Github"),
    }
    assert action_values.plain(actions["success", "WebHook"].config) == {
        "url": "https://hooks.example.com/mf"
    }
    chained = action_values.plain(actions["success", "ChainRuntemplate"].config)
    assert chained["rtid"] == str(_mapped("runtemplate", 2)), "renumbered to our RunTemplate"
    assert actions["failure", "Stop"].enabled and not actions["failure", "Github"].enabled
    cron = db.session.get(RunTemplate, _mapped("runtemplate", 2))
    assert cron is not None and (cron.interval, cron.cron) == ("c", "*/5 * * * *")
    assert cron.next_run_at is not None and cron.next_run_at > up.now.replace(tzinfo=ZONE)
    assert db.session.scalar(select(func.count()).select_from(Job)) == 0


def _check_events() -> None:
    source = db.session.scalars(select(EventSource)).one()
    assert (source.kind, source.last_processed_id) == ("changes-db", 1234)
    assert source.config["url"] == "mysql+pymysql://hook@db.example:3306/webhooks"
    assert source.config["poll_interval"] == 45  # upstream's own, not our default
    assert source.secret and "hookpw" not in source.secret
    rule = db.session.scalars(select(EventRule)).one()
    assert (rule.evidence, rule.operation, rule.priority) == ("banka", "create", 5)
    assert rule.env_mapping == {"DOCUMENTID": "$.recordid"}


def test_a_wrong_or_missing_key_is_refused_with_nothing_written(
    app: Flask, runner: FlaskCliRunner, upstream: Upstream
) -> None:
    wrong = run(runner, upstream, "--upstream-key", "not-the-key", key=None)
    assert wrong.exit_code != 0
    assert "master key does not open upstream's encryption key" in wrong.output
    assert "nothing was written" in wrong.output
    missing = run(runner, upstream, key=None)
    assert missing.exit_code != 0 and "MULTIFLEXI_UPSTREAM_KEY" in missing.output
    nowhere = Upstream("sqlite:////nonexistent/upstream.sqlite", upstream.now, upstream.now)
    absent = run(runner, nowhere)
    assert absent.exit_code != 0 and "no such SQLite database file" in absent.output
    assert not Path("/nonexistent/upstream.sqlite").exists()
    assert _rows(Company) == 0 and _rows(UpstreamMap) == 0 and _rows(Application) == 0


def test_moved_users_log_in_with_their_upstream_passwords(
    app: Flask, runner: FlaskCliRunner, upstream: Upstream
) -> None:
    report(run(runner, upstream, "--format", "json"))
    isolate_requests(app)
    for login, password in (("vitex", USER_PASSWORD), ("oldtimer", LEGACY_PASSWORD)):
        client = app.test_client()
        bad = client.post("/login", data={"login": login, "password": password + "x"})
        assert bad.status_code != 302, f"{login}: a wrong password was accepted"
        good = client.post("/login", data={"login": login, "password": password})
        assert good.status_code == 302, f"{login}: upstream password refused"
        assert client.get("/").status_code == 200
    db.session.expire_all()
    for user in db.session.scalars(select(User)):
        assert not user.password_hash.startswith(("$2y$", "upstream-md5:")), "not re-hashed"
    again = app.test_client()
    resp = again.post("/login", data={"login": "vitex", "password": USER_PASSWORD})
    assert resp.status_code == 302, "the re-hashed password works"


def test_next_job_gets_the_environment_upstream_would_give(
    app: Flask, runner: FlaskCliRunner, upstream: Upstream, tmp_path: Path
) -> None:
    """SPEC §4 precedence over the same upstream rows: app defaults < company env <
    RunTemplate values < credential values (upstream's documented order)."""
    report(run(runner, upstream, "--format", "json"))
    rows = upstream.rows
    expected: dict[str, str] = {}
    for f in rows["conffield"]:
        if f["app_id"] == 1 and f["defval"] is not None:
            expected[f["keyname"]] = f["defval"]
    ok_env = [
        e for e in rows["companyenv"] if e["company_id"] == 1 and e["keyword"] != "LD_PRELOAD"
    ]
    expected |= {e["keyword"]: e["value"] for e in ok_env}
    expected |= {c["name"]: c["value"] for c in rows["configuration"] if c["runtemplate_id"] == 1}
    expected |= {
        "ABRAFLEXI_URL": "https://demo.flexibee.eu:5434",
        "ABRAFLEXI_LOGIN": "winstrom",
        "ABRAFLEXI_PASSWORD": ABRAFLEXI_PASSWORD,
        "ABRAFLEXI_COMPANY": "demo_de",
    }
    rt = db.session.get(RunTemplate, _mapped("runtemplate", 1))
    assert rt is not None
    env = resolve(context_for(rt, {}), job_id=7, executor="native", workdir=tmp_path)
    expected.pop("RESULT_FILE", None)  # placed in the job's work directory by the platform
    got = {k: env.values.get(k) for k in expected}
    assert got == expected
    assert env.values["ABRAFLEXI_BANK"] == "code:RB", "RunTemplate value beats company env"
    assert env.values["MULTIFLEXI_COMPANY_CODE"] == "VS"
    assert "ABRAFLEXI_PASSWORD" in env.secret_keys and "COMPANY_API_TOKEN" in env.secret_keys


def test_history_comes_over_with_status_output_and_artifacts(
    app: Flask, runner: FlaskCliRunner, upstream: Upstream
) -> None:
    rep = report(run(runner, upstream, "--include-history", "--format", "json"))
    why = refused(rep)
    assert "pending upstream" in why[("job", "#3 (runtemplate 1)")]
    assert "credential" not in json.dumps(counts(rep, "refused").get("job", {}))
    done = db.session.get(Job, _mapped("job", 1))
    failed = db.session.get(Job, _mapped("job", 2))
    assert done is not None and failed is not None
    assert (done.status, done.exit_code, done.schedule_type) == ("succeeded", 0, "daily")
    assert (failed.status, failed.exit_code) == ("failed", 2)
    assert failed.command == ["mtr", "vitex software.com"]
    assert done.finished_at is not None and done.started_at is not None
    assert done.finished_at - done.started_at == timedelta(seconds=12)
    assert done.launched_by_id is None, "the daemons' unix user is no user here"
    assert failed.launched_by_id == _mapped("user", 1)
    out = {
        (o.stream, bytes(o.data))
        for o in db.session.scalars(select(JobOutput).where(JobOutput.job_id == done.id))
    }
    assert out == {("stdout", b"Report for 2 accounts\n"), ("stderr", b"warning: slow API\n")}
    (art,) = done.artifacts
    assert (art.filename, art.mime_type, art.content, art.note) == (
        "report.json",
        "application/json",
        b'{"accounts": 2}',
        "RESULT_FILE",
    )
    again = report(run(runner, upstream, "--include-history", "--format", "json"))
    assert counts(again, "created") == {} and counts(again, "updated") == {}
    assert _rows(Job) == 2


def test_text_report_and_credential_reveal(
    app: Flask, runner: FlaskCliRunner, upstream: Upstream
) -> None:
    text = run(runner, upstream, "--dry-run")
    assert text.exit_code == 0, text.output
    assert "dry run: nothing written" in text.output
    assert "runtemplate #3 (probe): executor 'Fancy': unknown" in text.output
    run(runner, upstream)
    cred_id = _mapped("credentials", 1)
    shown = json.loads(
        runner.invoke(args=["credential", "show", str(cred_id), "--format", "json"]).output
    )
    assert shown["values"]["ABRAFLEXI_PASSWORD"] == MASK
    result = runner.invoke(
        args=["credential", "show", str(cred_id), "--reveal", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    revealed = json.loads(result.output)
    assert revealed["values"]["ABRAFLEXI_PASSWORD"] == ABRAFLEXI_PASSWORD
    audit = db.session.scalars(
        select(AuditLog).where(AuditLog.action == "reveal", AuditLog.entity_type == "credential")
    ).all()
    assert [a.entity_id for a in audit] == [str(cred_id)]
    assert db.session.scalars(select(AuditLog).where(AuditLog.entity_type == "upstream")).all()


def test_schedules_go_on_where_upstream_left_off(
    app: Flask, runner: FlaskCliRunner, upstream: Upstream
) -> None:
    """The queued slot becomes the next run; a slot long past (upstream's scheduler was down)
    gives one job (misfire policy latest, as upstream catches up), not a burst."""
    report(run(runner, upstream, "--format", "json"))
    daily = db.session.get(RunTemplate, _mapped("runtemplate", 1))
    hourly = db.session.get(RunTemplate, _mapped("runtemplate", 5))
    assert daily is not None and hourly is not None
    assert daily.timezone == "Europe/Prague", "cron math stays in upstream's zone"
    assert daily.next_run_at is not None
    following = times.next_run(daily, daily.next_run_at, "UTC")
    local = daily.next_run_at.astimezone(ZONE)
    assert following == (local.replace(tzinfo=None) + timedelta(days=1)).replace(
        tzinfo=ZONE
    ).astimezone(UTC), "daily + 7200 s stays 02:00 in Prague"
    now = datetime.now(UTC)
    assert hourly.next_run_at is not None and hourly.next_run_at < now - timedelta(days=2)
    result = tick(now)
    assert result.inserted == 1, "one catch-up job, not 72"
    jobs = db.session.scalars(select(Job)).all()
    assert [(j.runtemplate_id, j.status) for j in jobs] == [(hourly.id, "scheduled")]
    assert jobs[0].slot_at is not None and now - jobs[0].slot_at < timedelta(hours=1)
    db.session.expire_all()
    assert hourly.next_run_at is not None and hourly.next_run_at > now
    assert tick(now).inserted == 0


def test_a_failure_midway_writes_nothing(
    app: Flask, runner: FlaskCliRunner, upstream: Upstream
) -> None:
    """All or nothing: a table that cannot be read (bytes that are not UTF-8, which old
    upstream job output has), read after every other table was written in the same
    transaction, leaves our database as it was."""
    path = upstream.url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO job_output_lines (job_id, seq, type, line)"
            " VALUES (1, 2, 'stdout', CAST(X'C3284142' AS TEXT))"
        )
    result = run(runner, upstream, "--include-history")
    assert result.exit_code != 0
    assert "cannot read table job_output_lines" in result.output
    assert "nothing was written" in result.output
    assert _rows(Company) == 0 and _rows(Application) == 0 and _rows(UpstreamMap) == 0
    assert _rows(User) == 0 and _rows(RunTemplate) == 0


def test_runtemplate_show_lists_the_moved_actions(
    app: Flask, runner: FlaskCliRunner, upstream: Upstream
) -> None:
    report(run(runner, upstream, "--format", "json"))
    rt_id = _mapped("runtemplate", 1)
    shown = runner.invoke(args=["runtemplate", "show", str(rt_id), "--format", "json"])
    assert shown.exit_code == 0, shown.output
    actions = {(a["mode"], a["kind"]): a for a in json.loads(shown.output)["actions"]}
    assert actions["success", "WebHook"]["config"] == {"url": "https://hooks.example.com/mf"}
    assert actions["failure", "Github"]["config"] == {"token": MASK}, "secrets stay masked"
    assert not actions["failure", "Github"]["enabled"]
    listed = runner.invoke(args=["runtemplate", "action", "list", str(rt_id), "--format", "json"])
    assert listed.exit_code == 0 and len(json.loads(listed.output)) == len(actions)


def test_older_upstream_schemas_without_key_versions_or_the_encrypted_flag(
    app: Flask, runner: FlaskCliRunner, upstream: Upstream
) -> None:
    """The migration snapshot lacks encryption_keys.version and credata.is_encrypted (the
    code writes them): envelopes are then recognised by their shape, keys taken as v1."""
    path = upstream.url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM encryption_keys WHERE version <> 1")
        for table, column in (
            ("encryption_keys", "version"),
            ("credata", "is_encrypted"),
            ("credata", "encryption_key_version"),
        ):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    rep = report(run(runner, upstream, "--format", "json"))
    assert rep["tables"]["credentials"]["created"] == 1
    cred = db.session.get(Credential, _mapped("credentials", 1))
    assert cred is not None
    assert {v.key: reveal(v) for v in cred.values}["ABRAFLEXI_PASSWORD"] == ABRAFLEXI_PASSWORD


def test_what_real_upstream_databases_hold_older_names_and_marked_rows(
    app: Flask, runner: FlaskCliRunner, upstream: Upstream
) -> None:
    """Rows and names the real migrations leave (multiflexi-database db/migrations): a lapsed
    admin role, a user deleted for GDPR, output split into lines without breaks, an app
    version 'n/a', launched_by as a login, and the columns before their renames."""
    path = upstream.url.removeprefix("sqlite:///")
    past = (upstream.now - timedelta(days=1)).isoformat(sep=" ")
    lines = [("stdout", "line one"), ("stdout", "line two"), ("stdout", "")]
    lines += [("stderr", "warning: slow API"), ("stderr", "")]  # from "...API\n"
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE user ADD COLUMN deleted_at DATETIME")
        conn.execute("UPDATE user SET deleted_at = ? WHERE id = 2", (past,))
        conn.execute("UPDATE user_role_assignments SET expires_at = ? WHERE user_id = 1", (past,))
        conn.execute("DELETE FROM job_output_lines WHERE job_id = 1")
        conn.executemany(
            "INSERT INTO job_output_lines (job_id, seq, type, line) VALUES (1, ?, ?, ?)",
            [(seq, kind, line) for seq, (kind, line) in enumerate(lines)],
        )
        conn.execute("UPDATE job SET app_version = 'n/a', launched_by = 'vitex' WHERE id = 1")
        for table, new, old in (("apps", "tags", "topics"), ("company", "slug", "code")):
            conn.execute(f"ALTER TABLE {table} RENAME COLUMN {new} TO {old}")
        conn.execute("ALTER TABLE modconfig RENAME COLUMN cfg TO key")
        conn.execute("CREATE TABLE file_store (id INTEGER PRIMARY KEY, job_id INTEGER, data BLOB)")
        conn.execute("INSERT INTO file_store (job_id, data) VALUES (1, x'00')")
        conn.execute(
            "INSERT INTO actionconfig (module, keyname, value, mode, runtemplate_id)"
            " VALUES ('WebHook', 'uri', 'http://peer.example', NULL, 1)"
        )
    rep = report(run(runner, upstream, "--include-history", "--format", "json"))
    notes = "\n".join(rep["notes"])

    vitex = db.session.get(User, _mapped("user", 1))
    assert vitex is not None and not vitex.is_admin  # the role had lapsed
    assert "user #1: admin role expired upstream" in notes
    assert db.session.scalar(select(User).where(User.login == "oldtimer")) is None
    assert "user #2 ('oldtimer'): deleted upstream; not carried" in notes
    done = db.session.get(Job, _mapped("job", 1))
    assert done is not None and done.app_version is None
    assert done.launched_by_id == vitex.id
    streams: dict[str, bytes] = {}
    for o in db.session.scalars(
        select(JobOutput).where(JobOutput.job_id == done.id).order_by(JobOutput.seq)
    ):
        streams[o.stream] = streams.get(o.stream, b"") + bytes(o.data)
    assert streams == {"stdout": b"line one\nline two\n", "stderr": b"warning: slow API\n"}

    app_row = upstream.rows["apps"][0]
    moved = db.session.get(Application, _mapped("apps", app_row["id"]))
    assert moved is not None and moved.tags and ",".join(moved.tags) == app_row["tags"]
    assert db.session.get(Company, _mapped("company", 1)).slug == "VS"  # type: ignore[union-attr]
    zabbix = db.session.scalar(select(ActionDefault).where(ActionDefault.action == "Zabbix"))
    assert zabbix is not None and zabbix.config.get("key") == "mf-data"
    assert "file_store: 1 rows not carried over" in notes
    assert "actionconfig: 1 rows without a success or fail mode not carried" in notes


def test_a_credential_hangs_off_its_own_company_credential_type(
    app: Flask, runner: FlaskCliRunner, upstream: Upstream
) -> None:
    """Upstream lets company 2's credential name company 1's credential type; here it gets a
    type of its own company, so company 1 renaming or deleting its type touches only its own."""
    with sqlite3.connect(upstream.url.removeprefix("sqlite:///")) as conn:
        conn.execute(
            "INSERT INTO credentials (id, name, company_id, credential_type_id, formType)"
            " VALUES (9, 'Spoje AbraFlexi', 2, 1, 'AbraFlexi')"
        )
    run(runner, upstream, "--format", "json")
    theirs = db.session.get(Credential, _mapped("credentials", 9))
    ours = db.session.get(Credential, _mapped("credentials", 1))
    assert theirs is not None and ours is not None
    assert theirs.company_id == _mapped("company", 2)
    assert theirs.credential_type.company_id == theirs.company_id
    assert theirs.credential_type.prototype_id == ours.credential_type.prototype_id
    assert ours.credential_type.company_id == _mapped("company", 1)
