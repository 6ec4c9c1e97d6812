"""A job never reaches its daemon: loader variables refused and dropped, another user, private
files (SPEC §15). Real executor processes, a real shared object, real /proc."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from multiflexi_web import create_app
from multiflexi_web.db.engine import begin_write
from multiflexi_web.extensions import db
from multiflexi_web.models import CompanyEnv, Role, RunTemplate
from multiflexi_web.models.action import ActionRun
from multiflexi_web.security.env_names import EnvNameError
from multiflexi_web.services.actions import configure
from multiflexi_web.services.jobs.adhoc import run_now
from tests.conftest import TEST_KEY, make_settings, reset_schema
from tests.executor_support import (
    daemon_env,
    job,
    output_of,
    schedule,
    shell_rt,
    show_logs,
    start_daemon,
)
from tests.factories import add_member, client_for, make_app, make_company, make_user

pytestmark = pytest.mark.slow
JOB_USER = "multiflexi-job"
KEY = TEST_KEY  # what the key file holds: must never appear in a job's output
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
PRELOAD_C = """
#include <stdio.h>
__attribute__((constructor)) static void pwn(void) {
    FILE *f = fopen("%s", "a");
    if (f) { fputs("preloaded\\n", f); fclose(f); }
}
"""


@pytest.fixture(autouse=True)
def _logs_on_failure(tmp_path: Path) -> Iterator[None]:
    yield
    show_logs(tmp_path)


def _preload_so(tmp_path: Path, marker: Path) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: cannot build the LD_PRELOAD object")
    src, so = tmp_path / "pwn.c", tmp_path / "pwn.so"
    src.write_text(PRELOAD_C % marker)
    subprocess.run([gcc, "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    # The object works: loaded into any dynamic program it writes the marker.
    subprocess.run(["/bin/true"], env={"LD_PRELOAD": str(so)}, check=True)
    assert marker.read_text() == "preloaded\n"
    marker.unlink()
    return so


def _run_executor(db_url: str, tmp_path: Path, **extra: str) -> str:
    proc = start_daemon(db_url, tmp_path, "--drain", **extra)
    assert proc.wait(120) == 0
    return (tmp_path / "executor.log").read_text(errors="replace")


def test_ld_preload_is_refused_when_saved_and_dropped_at_start(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "preloaded"
    so = _preload_so(tmp_path, marker)
    company = make_company()
    rt = shell_rt("echo ran", company)
    operator = make_user()
    add_member(operator, company, Role.OPERATOR)
    client = client_for(app, operator)
    resp = client.post(
        f"/runtemplates/{rt.id}/run", data={"env_key": ["LD_PRELOAD"], "env_value": [str(so)]}
    )
    assert resp.status_code == 400
    assert "LD_PRELOAD" in resp.get_data(as_text=True) and "loader" in resp.get_data(as_text=True)
    with pytest.raises(EnvNameError, match="LD_PRELOAD"):
        run_now(rt, {"LD_PRELOAD": str(so)}, [], None, admin=True)  # for nobody
    db.session.rollback()
    # Rows written before the rule (or past it) reach the job start: dropped there, said so.
    company.env.append(CompanyEnv(key="PYTHONPATH", value=str(tmp_path)))
    db.session.commit()
    [job_id] = schedule(rt, env_override={"LD_PRELOAD": str(so), "LD_LIBRARY_PATH": "/x"})
    _run_executor(db_url, tmp_path, MULTIFLEXI_JOB_USER="daemon")

    j = job(job_id)
    assert j.status == "succeeded", j.status_reason
    assert output_of(job_id) == b"ran\n"
    stderr = output_of(job_id, "stderr").decode()
    for name, source in (("LD_PRELOAD", "override"), ("PYTHONPATH", "company")):
        assert f"environment ignored: {name} ({source})" in stderr
    assert not marker.exists(), "the shared object ran"
    assert not {e["key"] for e in j.env or []} & {"LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH"}


PROBE = (
    "id -u; echo; cat /proc/$PPID/environ; echo rc=$?; "
    "cat /proc/$PPID/maps >/dev/null; echo maps=$?; cat {key}; echo key=$?; "
    "cat {db} >/dev/null; echo db=$?; env"
)


def _probe_job(app: Flask, db_url: str, tmp_path: Path) -> tuple[int, Path]:
    key_file = tmp_path / "keys" / "master.key"
    key_file.parent.mkdir(mode=0o700)
    key_file.write_text(KEY)
    key_file.chmod(0o600)
    db_file = db_url.removeprefix("sqlite:///") if db_url.startswith("sqlite") else "/dev/null"
    rt = shell_rt(PROBE.format(key=key_file, db=db_file))
    [job_id] = schedule(rt)
    return job_id, key_file


def _secrets_absent(out: str, key_file: Path) -> None:
    for secret in (KEY, "test-secret", "DATABASE_URL", "SECRET_KEY", "ENCRYPTION_MASTER_KEY"):
        assert secret not in out, secret
    assert "rc=0" not in out and "maps=0" not in out and "key=0" not in out


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to the job user needs root")
def test_as_root_jobs_run_as_the_job_user_and_reach_nothing(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    job_id, key_file = _probe_job(app, db_url, tmp_path)
    env = {"ENCRYPTION_MASTER_KEY": "", "ENCRYPTION_MASTER_KEY_FILE": str(key_file)}
    log = _run_executor(db_url, tmp_path, MULTIFLEXI_JOB_USER=JOB_USER, **env)

    uid = pwd.getpwnam(JOB_USER).pw_uid  # created by the executor when missing
    assert f"action=jobs_run_as user={JOB_USER} uid={uid}" in log
    out = output_of(job_id).decode()
    assert out.splitlines()[0] == str(uid)
    _secrets_absent(out, key_file)
    if db_url.startswith("sqlite"):
        assert "db=0" not in out
    assert f"HOME={tmp_path / 'work' / f'job-{job_id}'}" in out
    assert stat.S_IMODE((tmp_path / "work").stat().st_mode) == 0o711  # enter, never list


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to the job user needs root")
def test_as_root_a_custom_command_action_runs_as_the_job_user(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    rt = shell_rt("exit 0")
    command = json.dumps(["/bin/sh", "-c", "id -u; id -G; stat -c %U ."])
    configure.put(rt, "success", "CustomCommand", {"command": command}, is_admin=True)
    db.session.commit()
    [job_id] = schedule(rt)
    _run_executor(db_url, tmp_path, MULTIFLEXI_JOB_USER=JOB_USER)

    db.session.rollback()
    run = db.session.scalar(select(ActionRun).where(ActionRun.job_id == job_id))
    assert run is not None and run.status == "succeeded", run and run.error
    entry = pwd.getpwnam(JOB_USER)
    # its uid, its own group only (no supplementary groups of root), in a folder it owns
    assert (run.response or "").splitlines()[1:4] == [
        str(entry.pw_uid),
        str(entry.pw_gid),
        JOB_USER,
    ]


def _as_nobody(tmp_path: Path) -> tuple[list[str], dict[str, object], dict[str, str]]:
    """argv, Popen identity and extra env to run the executor as `nobody` (the venv's own
    python lives under /root here: Debian's python3 of the same minor version runs it)."""
    system_python = Path("/usr/bin/python3")
    venv_lib = Path(sys.prefix, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}")
    if not os.access(system_python, os.X_OK):
        pytest.skip("/usr/bin/python3 is needed to run the executor as nobody")
    nobody = pwd.getpwnam("nobody")
    # redis wants the async_timeout backport below Python 3.11.3 (Debian has 3.11.2).
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "async_timeout.py").write_text("from asyncio import timeout\n")
    for path in (tmp_path, *tmp_path.rglob("*")):
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    ids: dict[str, object] = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    path = f"{Path(__file__).resolve().parent.parent}:{venv_lib / 'site-packages'}:{shim}"
    return [str(system_python)], ids, {"PYTHONPATH": path, "HOME": str(tmp_path)}


@pytest.fixture
def outside() -> Iterator[tuple[Flask, str, Path]]:
    """An app on a SQLite file in a folder of /tmp of its own: pytest's own folders are reset
    to 0700 by every pytest session that starts (other users of the machine too), so `nobody`
    could not rely on reaching them."""
    base = Path(tempfile.mkdtemp(prefix="multiflexi-isolation-"))
    url = f"sqlite:///{base / 'multiflexi.db'}"
    app = create_app({"TESTING": True}, settings=make_settings(url, base, job_user=""))
    try:
        with app.app_context():
            reset_schema()
            yield app, url, base
            db.session.remove()
            db.engine.dispose()
    finally:
        show_logs(base)
        shutil.rmtree(base, ignore_errors=True)


def test_a_daemon_that_cannot_switch_users_hides_its_memory(
    outside: tuple[Flask, str, Path],
) -> None:
    """Same uid as its jobs (the weaker mode): PR_SET_DUMPABLE 0 keeps /proc/<daemon>/environ
    and maps closed to them. As root the test runs the executor as nobody: it cannot switch."""
    app, db_url, tmp_path = outside
    job_id, _ = _probe_job(app, db_url, tmp_path)
    db.session.remove()
    db.engine.dispose()
    python, ids, extra = [sys.executable], {}, {}
    if os.geteuid() == 0:
        python, ids, extra = _as_nobody(tmp_path)
    env = daemon_env(db_url, tmp_path, MULTIFLEXI_JOB_USER=JOB_USER, **extra)
    with (tmp_path / "executor.log").open("ab") as fh:
        proc = subprocess.Popen(
            [*python, "-m", "daemons.executor", "--drain"],
            cwd=Path(__file__).resolve().parent.parent,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            **ids,  # type: ignore[arg-type]
        )
    assert proc.wait(120) == 0
    assert "action=jobs_share_user" in (tmp_path / "executor.log").read_text()
    out = output_of(job_id).decode()
    assert out.splitlines()[0] == str(ids.get("user", os.getuid()))
    assert "rc=1" in out and "maps=1" in out, out  # Permission denied, not "no such file"
    for secret in ("test-secret", "DATABASE_URL", "SECRET_KEY"):  # the key file: same uid
        assert secret not in out, secret


def test_files_of_the_platform_are_private(app: Flask, db_url: str, tmp_path: Path) -> None:
    """Database, artifact store, work area: the daemon's user only, looser ones tightened."""
    artifacts, work = tmp_path / "artifacts", tmp_path / "work"
    artifacts.mkdir(mode=0o755)
    artifacts.chmod(0o755)
    sqlite = db_url.startswith("sqlite")
    db_file = Path(db_url.removeprefix("sqlite:///"))
    if sqlite:
        db_file.chmod(0o644)
    rt = shell_rt("echo out > result.txt; exit 3", artifacts=[{"path": r"result\.txt"}])
    [job_id] = schedule(rt)
    _run_executor(
        db_url, tmp_path, MULTIFLEXI_JOB_USER="daemon", MULTIFLEXI_KEEP_WORKDIR_ON_FAILURE="true"
    )

    assert job(job_id).status == "failed"
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(artifacts) == 0o700 and mode(work) == 0o700
    assert mode(work / f"job-{job_id}") == 0o700
    assert mode(work / f"job-{job_id}" / "result.txt") == 0o600  # the job's umask
    stored = [p for p in artifacts.rglob("*") if p.is_file()]
    for path in stored:
        assert mode(path) == 0o600, path
    for path in {p.parent for p in stored}:
        assert mode(path) == 0o700, path
    if sqlite:
        for path in (db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")):
            if path.exists():
                assert mode(path) == 0o600, path


def test_a_file_in_the_work_directory_never_replaces_the_command(tmp_path: Path) -> None:
    """An uploaded file called like the command, even with '.' or '' on PATH, is not run."""
    from multiflexi_web.executors.base import AppInfo, JobSpec
    from multiflexi_web.executors.native import NativeExecutor
    from tests.test_native import RecordingIO

    fake = tmp_path / "echo"
    fake.write_text("#!/bin/sh\necho shadowed\n")
    fake.chmod(0o755)

    def spec(argv0: str) -> JobSpec:
        env = {"PATH": f".::{tmp_path}/..:/usr/bin:/bin"}
        app = AppInfo("t", argv0, None)
        return JobSpec(job_id=1, argv=(argv0, "real"), env=env, workdir=tmp_path, app=app)

    io = RecordingIO()
    result = NativeExecutor().run(spec("echo"), io)
    assert (result.exit_code, io.text()) == (0, b"real\n")
    io = RecordingIO()
    result = NativeExecutor().run(spec("./echo"), io)
    assert result.exit_code == 127 and "relative" in (result.error or "")
    assert io.text() == b""


CAPS = "setuid,setgid,chown,kill,dac_override,fowner"  # systemd/multiflexi-executor.service


@pytest.mark.skipif(os.geteuid() != 0, reason="giving the executor capabilities needs root")
def test_the_systemd_design_non_root_executor_with_capabilities(
    outside: tuple[Flask, str, Path],
) -> None:
    """User=multiflexi + AmbientCapabilities=: jobs run as the job user with no capability in
    any set, started by setpriv lent CAP_SETUID/CAP_SETGID for its exec (not a fork of the
    executor), and reach neither the daemon's memory, its key file nor a root-only program."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to start the executor with capabilities")
    app, db_url, tmp_path = outside
    job_id, key_file = _probe_job(app, db_url, tmp_path)
    rt = shell_rt("grep -E '^(Uid|Gid|Groups|Cap(Inh|Prm|Eff|Amb)):' /proc/self/status")
    [caps_job] = schedule(rt)
    # The daemon could run this program (CAP_DAC_OVERRIDE), its job user may not: a switch
    # that left the executor's capabilities to the command's exec would run it.
    [root_only_job] = schedule(_executable_rt(_root_only_program(tmp_path)))
    db.session.remove()
    db.engine.dispose()
    python, ids, extra = _as_nobody(tmp_path)
    _root_only_program(tmp_path)  # root's again after _as_nobody handed the tree to nobody
    # As the unit: User=, AmbientCapabilities= (inheritable + ambient), NoNewPrivileges=yes.
    prefix = [setpriv, f"--reuid={ids['user']}", f"--regid={ids['group']}", "--clear-groups"]
    prefix += ["--no-new-privs"]
    prefix += [f"--inh-caps=+{CAPS.replace(',', ',+')}"]
    prefix += [f"--ambient-caps=+{CAPS.replace(',', ',+')}", "--"]
    env = daemon_env(db_url, tmp_path, MULTIFLEXI_JOB_USER=JOB_USER, **extra)
    env.update(ENCRYPTION_MASTER_KEY="", ENCRYPTION_MASTER_KEY_FILE=str(key_file))
    with (tmp_path / "executor.log").open("ab") as fh:
        proc = subprocess.Popen(
            [*prefix, *python, "-m", "daemons.executor", "--drain"],
            cwd=Path(__file__).resolve().parent.parent,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    assert proc.wait(120) == 0

    uid = pwd.getpwnam(JOB_USER).pw_uid
    log = (tmp_path / "executor.log").read_text()
    assert f"action=jobs_run_as user={JOB_USER} uid={uid} switch=setpriv" in log
    out = output_of(job_id).decode()
    assert out.splitlines()[0] == str(uid)
    _secrets_absent(out, key_file)
    assert "db=0" not in out
    status = dict(line.split(":", 1) for line in output_of(caps_job).decode().splitlines())
    gid = pwd.getpwnam(JOB_USER).pw_gid
    assert status.pop("Uid").split() == [str(uid)] * 4
    assert status.pop("Gid").split() == [str(gid)] * 4
    assert status.pop("Groups").split() == []
    assert {name: int(caps, 16) for name, caps in status.items()} == dict.fromkeys(
        ("CapInh", "CapPrm", "CapEff", "CapAmb"), 0
    )
    assert job(root_only_job).exit_code == 126
    assert output_of(root_only_job) == b""
    assert b"Permission denied" in output_of(root_only_job, "stderr")
    assert "job_switch_probe" not in log


def _root_only_program(base: Path) -> Path:
    """A copy of `id` that only root may run, in a folder anyone may enter."""
    folder = base / "bin"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o755)
    program = folder / "id"
    if not program.exists():
        shutil.copy("/usr/bin/id", program)
    os.chown(folder, 0, 0)
    os.chown(program, 0, 0)
    program.chmod(0o700)
    return program


def _executable_rt(executable: Path) -> RunTemplate:
    begin_write()  # as shell_rt: a daemon may be writing
    app = make_app(executable=str(executable))
    begin_write()
    rt = RunTemplate(company_id=make_company().id, application_id=app.id, name="rt-root-only")
    db.session.add(rt)
    db.session.commit()
    return rt
