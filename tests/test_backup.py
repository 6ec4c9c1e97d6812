"""`multiflexi backup` / `multiflexi restore`: a consistent snapshot with its artifact files,
put back whole, the platform paused after; refused while daemons run or across versions."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from multiflexi_web import create_app
from multiflexi_web.extensions import db
from multiflexi_web.models import Artifact, AuditLog, Company, Job, Pause, utcnow
from multiflexi_web.security.secrets import generate_key
from multiflexi_web.services.backup import archive
from multiflexi_web.services.backup.manifest import BackupError
from tests.conftest import PG_ADMIN_URL, TEST_KEY, make_settings
from tests.factories import (
    make_company,
    make_credential,
    make_job,
    make_runtemplate,
    make_worker,
)
from tests.services import need

SECRET = "s3cret-bank-password"


def _on_disk(job: Job, artifact_dir: Path, content: bytes) -> Artifact:
    path = artifact_dir / str(job.id) / "statement.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    row = Artifact(
        job_id=job.id,
        filename="statement.xml",
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        storage_path=str(path),
    )
    db.session.add(row)
    db.session.commit()
    return row


def _backup(runner: FlaskCliRunner, parent: Path) -> dict[str, object]:
    if db.engine.dialect.name == "postgresql":
        need(shutil.which("pg_dump") is not None, "pg_dump (Debian package postgresql-client)")
    done = runner.invoke(args=["backup", str(parent), "--format", "json"])
    assert done.exit_code == 0, done.output
    out: dict[str, object] = json.loads(done.output)
    return out


@pytest.fixture
def empty_pg() -> Iterator[str]:
    """A second, empty PostgreSQL database: where a PostgreSQL backup is restored."""
    name = f"mf_restore_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_backup_comes_back_whole_and_the_platform_waits(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    artifact_dir = Path(app.config["MULTIFLEXI"].artifact_dir)
    company = make_company(name="Bank Co")
    make_credential(company, values={"LOGIN": "acme", "PASSWORD": SECRET})
    job = make_job(make_runtemplate(company), output="imported 12 payments\n")
    _on_disk(job, artifact_dir, b"<statement>12 payments</statement>")
    out = _backup(runner, tmp_path / "backups")
    folder = Path(str(out["folder"]))
    assert out["jobs"] == 1 and out["artifact_files"] == 1 and out["missing_files"] == []
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert not list(folder.parent.glob("*.partial"))
    for path in folder.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
            # The key is never in a backup, and a credential's secret only as ciphertext.
            data = path.read_bytes()
            assert TEST_KEY.encode() not in data and SECRET.encode() not in data, path

    # Life goes on after the backup: a job and its file go, a company comes.
    db.session.delete(db.session.get(Job, job.id))
    db.session.commit()
    (artifact_dir / str(job.id) / "statement.xml").unlink()
    make_company(name="Later Co")

    if db.engine.dialect.name == "postgresql":
        refused = runner.invoke(args=["restore", str(folder), "--yes"])
        assert refused.exit_code != 0 and "into an empty database" in refused.output
        # Refused before anything was changed: not even the files went back.
        assert not (artifact_dir / str(job.id) / "statement.xml").exists()
    with _restoring(runner, request, tmp_path) as runner:
        dry = runner.invoke(args=["restore", str(folder), "--dry-run", "--format", "json"])
        assert dry.exit_code == 0, dry.output
        assert json.loads(dry.output)["artifact_files"] == 1
        assert not (artifact_dir / str(job.id) / "statement.xml").exists()
        if db.engine.dialect.name == "sqlite":
            assert "Later Co" in set(db.session.scalars(select(Company.name)))
        assert runner.invoke(args=["restore", str(folder)]).exit_code != 0  # --yes missing
        done = runner.invoke(args=["restore", str(folder), "--yes", "--format", "json"])
        assert done.exit_code == 0, done.output
        assert json.loads(done.output)["artifact_files"] == 1
        assert json.loads(done.output)["keys_fit"] is True
        names = set(db.session.scalars(select(Company.name)))
        assert names == {"Bank Co"}
        back = db.session.get(Job, job.id)
        assert back is not None and back.status == "succeeded"
        [art] = db.session.scalars(select(Artifact).where(Artifact.job_id == job.id))
        assert Path(str(art.storage_path)).read_bytes() == b"<statement>12 payments</statement>"
        [paused] = db.session.scalars(select(Pause)).all()
        assert paused.scope == "platform" and "restored from the backup" in (paused.reason or "")
        assert db.session.scalar(select(AuditLog).where(AuditLog.action == "restore"))


@contextmanager
def _restoring(
    runner: FlaskCliRunner, request: pytest.FixtureRequest, tmp_path: Path, **extra: object
) -> Iterator[FlaskCliRunner]:
    """The runner a restore goes through: this one on SQLite; on PostgreSQL one of an app on
    a second, empty database (a PostgreSQL backup is restored into an empty one). `extra`
    settings: an app of its own with them, on the database a restore goes to."""
    postgres = db.engine.dialect.name == "postgresql"
    if not postgres and not extra:
        yield runner
        return
    url = request.getfixturevalue("empty_pg") if postgres else str(db.engine.url)
    settings = make_settings(url, tmp_path, **extra)
    target = create_app({"TESTING": True}, settings=settings)
    with target.app_context():
        try:
            yield target.test_cli_runner()
        finally:
            db.session.remove()
            db.engine.dispose()


def test_a_restore_is_refused_while_daemons_run_and_changes_nothing(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    folder = Path(str(_backup(runner, tmp_path)["folder"]))
    make_company(name="Kept")
    make_worker("executor", heartbeat_age=1.0)
    done = runner.invoke(args=["restore", str(folder), "--yes"])
    assert done.exit_code != 0 and "daemons are running on this database (executor pid" in (
        done.output
    )
    said = " ".join(done.output.split())
    assert re.search(r"until its last heartbeat is 60 s old \(here: \d+ s more\)", said), said
    assert db.session.scalar(select(Company.name)) == "Kept"
    assert db.session.scalars(select(Pause)).all() == []


def test_a_backup_of_an_unknown_schema_or_another_database_is_refused(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    folder = Path(str(_backup(runner, tmp_path)["folder"]))
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "schema_revision": "f0f0"}))
    done = runner.invoke(args=["restore", str(folder), "--yes"])
    assert done.exit_code != 0 and "schema revision f0f0: unknown to this version" in done.output
    other = "postgresql" if manifest["database"] == "sqlite" else "sqlite"
    (folder / "manifest.json").write_text(json.dumps({**manifest, "database": other}))
    done = runner.invoke(args=["restore", str(folder), "--yes"])
    assert done.exit_code != 0 and f"a backup of a {other} database" in done.output
    (folder / "manifest.json").unlink()
    done = runner.invoke(args=["restore", str(folder), "--yes"])
    assert done.exit_code != 0 and "not a complete backup" in done.output


def test_a_backup_cut_short_leaves_nothing_and_a_changed_file_is_named(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = app.config["MULTIFLEXI"]
    job = make_job(make_runtemplate(make_company()))
    art = _on_disk(job, Path(settings.artifact_dir), b"original")
    Path(str(art.storage_path)).write_bytes(b"tampered")
    from multiflexi_web.models import utcnow

    folder, manifest = archive.make_backup(db.engine.url, settings, tmp_path / "b", utcnow())
    assert manifest.artifact_files == 0
    assert manifest.missing_files == [f"{art.storage_path} (its content differs from the "
                                      "recorded sha256)"]  # fmt: skip

    def broken(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(archive.files, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        archive.make_backup(db.engine.url, settings, tmp_path / "c", utcnow())
    assert list((tmp_path / "c").iterdir()) == []
    with pytest.raises(BackupError, match="already exists"):
        archive.make_backup(db.engine.url, settings, tmp_path / "b", _moment_of(folder))


def _moment_of(folder: Path) -> object:
    from datetime import datetime

    return datetime.strptime(folder.name, "multiflexi-%Y%m%dT%H%M%SZ")


def test_a_restore_that_cannot_pause_says_so_loudly(
    app: Flask,
    runner: FlaskCliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    folder = Path(str(_backup(runner, tmp_path)["folder"]))

    def busy(*_args: object, **_kwargs: object) -> bool:
        raise archive.pauses.PauseBusy("pause: another transaction did not end in time")

    monkeypatch.setattr(archive.pauses, "pause", busy)
    with _restoring(runner, request, tmp_path) as runner:
        done = runner.invoke(args=["restore", str(folder), "--yes"])
    assert done.exit_code != 0
    assert "the database is restored, but pausing the platform failed" in done.output
    assert "run `multiflexi pause --all` before any daemon starts" in done.output


def test_keep_removes_only_older_complete_backups(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    parent = tmp_path / "nightly"
    older = [parent / f"multiflexi-2026120{d}T010000Z" for d in (1, 2, 3)]
    for folder in older:
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text("{}")
    unfinished = parent / "multiflexi-20261204T010000Z.partial"
    foreign = parent / "multiflexi-notes"
    unfinished.mkdir()
    foreign.mkdir()
    done = runner.invoke(args=["backup", str(parent), "--keep", "2", "--format", "json"])
    assert done.exit_code == 0, done.output
    out = json.loads(done.output)
    assert out["removed"] == [str(older[0]), str(older[1])]
    left = {p.name for p in parent.iterdir()}
    assert left == {older[2].name, Path(out["folder"]).name, unfinished.name, foreign.name}
    assert runner.invoke(args=["backup", str(parent), "--keep", "0"]).exit_code != 0


def test_a_backup_is_never_written_where_housekeeping_prunes(
    app: Flask, runner: FlaskCliRunner
) -> None:
    settings = app.config["MULTIFLEXI"]
    for inside in (Path(settings.artifact_dir) / "b", Path(settings.tmp_dir)):
        done = runner.invoke(args=["backup", str(inside)])
        assert done.exit_code != 0 and "whose unknown files are pruned" in done.output
        assert not inside.exists() or not list(inside.glob("multiflexi-*"))


def test_a_restore_under_another_key_warns_that_the_credentials_are_unreadable(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    make_credential(make_company(), values={"LOGIN": "acme", "PASSWORD": SECRET})
    folder = Path(str(_backup(runner, tmp_path)["folder"]))
    other_key = generate_key()
    with _restoring(runner, request, tmp_path, encryption_master_key=other_key) as runner:
        done = runner.invoke(args=["restore", str(folder), "--yes"])
    assert done.exit_code == 0, done.output
    assert "ENCRYPTION_MASTER_KEY does not decrypt the backup's credentials" in done.output


def test_root_does_not_restore_another_users_installation(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can be refused this (the test runs as an ordinary user)")
    folder = Path(str(_backup(runner, tmp_path)["folder"]))
    artifact_dir = Path(app.config["MULTIFLEXI"].artifact_dir)
    artifact_dir.mkdir(parents=True, exist_ok=True)
    os.chown(artifact_dir, 65534, 65534)  # nobody's, as the multiflexi user's would be
    make_company(name="Kept")
    done = runner.invoke(args=["restore", str(folder), "--yes"])
    assert done.exit_code != 0 and "belongs to uid 65534, and this restore runs as root" in (
        done.output
    )
    assert db.session.scalar(select(Company.name)) == "Kept"


def test_a_restore_on_a_host_whose_artifact_folder_is_elsewhere_moves_the_files_there(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    old_dir = Path(app.config["MULTIFLEXI"].artifact_dir)
    job = make_job(make_runtemplate(make_company()))
    _on_disk(job, old_dir, b"<statement/>")
    inline = Artifact(job_id=job.id, filename="small.txt", size=2, sha256="x", content=b"ok")
    db.session.add(inline)
    db.session.commit()
    folder = Path(str(_backup(runner, tmp_path)["folder"]))
    new_dir = tmp_path / "new host" / "artifacts"
    with _restoring(runner, request, tmp_path, artifact_dir=str(new_dir)) as runner:
        done = runner.invoke(args=["restore", str(folder), "--yes"])
        assert done.exit_code == 0, done.output
        rows = {a.filename: a.storage_path for a in db.session.scalars(select(Artifact))}
    assert rows == {
        "statement.xml": str(new_dir / str(job.id) / "statement.xml"),
        "small.txt": None,
    }
    assert (new_dir / str(job.id) / "statement.xml").read_bytes() == b"<statement/>"


def test_a_restore_names_the_jobs_to_check_before_the_resume(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rt = make_runtemplate(make_company())
    make_job(rt, status="running")
    make_job(rt, status="scheduled")  # due five minutes ago
    make_job(rt, status="scheduled", started_at=utcnow() + timedelta(days=1))  # not yet due
    make_job(rt, status="succeeded")
    folder = Path(str(_backup(runner, tmp_path)["folder"]))
    with _restoring(runner, request, tmp_path) as runner:
        done = runner.invoke(args=["restore", str(folder), "--yes", "--format", "json"])
        assert done.exit_code == 0, done.output
        out = json.loads(done.output)
    assert (out["jobs_running_in_backup"], out["jobs_due_since"]) == (1, 1)
