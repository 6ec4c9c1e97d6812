"""Uploaded input files: written into the job's work directory, their path in the env."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import update

from multiflexi_web.extensions import db
from multiflexi_web.models import FileUpload, JobStatus, RunTemplate
from multiflexi_web.services.jobs.adhoc import Upload, run_now
from multiflexi_web.services.jobs.inputs import UploadError, materialise
from multiflexi_web.services.runtemplates import manage as runtemplate_ops
from tests.executor_support import drain, job, output_of, schedule, shell_rt

# Prints the file, its mode and where it sat (the work directory is gone after the run).
SCRIPT = (
    'cat "$INPUT_FILE"; stat -c "%a" "$INPUT_FILE" >&2; '
    'case "$INPUT_FILE" in "$MULTIFLEXI_TMP"/*) echo inside >&2;; esac'
)
FIELDS = [{"keyname": "INPUT_FILE", "type": "file-path"}]


def _rt() -> RunTemplate:
    return shell_rt(SCRIPT, fields=FIELDS)


def _env_entry(job_id: int, key: str) -> dict[str, object]:
    [entry] = [e for e in job(job_id).env if e["key"] == key]
    return entry


def _run_now(rt: RunTemplate, *uploads: Upload) -> int:
    job_id = run_now(rt, {}, list(uploads), None).id
    db.session.commit()
    return job_id


def test_a_run_now_upload_is_given_to_the_job(app: Flask) -> None:
    payload = b"a;b\n1;2\n\x00\xff binary tail"
    job_id = _run_now(_rt(), Upload("INPUT_FILE", "in.csv", payload))
    drain(app)
    j = job(job_id)
    assert j.status == JobStatus.SUCCEEDED.value, j.status_reason
    assert output_of(job_id) == payload
    assert output_of(job_id, "stderr") == b"600\ninside\n"
    entry = _env_entry(job_id, "INPUT_FILE")
    assert entry["source"] == "upload"
    assert str(entry["value"]).endswith(f"/job-{job_id}/in.csv")
    assert not Path(str(entry["value"])).exists()  # cleanup removed it with the work directory


def test_the_template_upload_is_used_when_the_job_has_none(app: Flask) -> None:
    rt = _rt()
    runtemplate_ops.store_uploads(rt, [Upload("INPUT_FILE", "rt.csv", b"from the template\n")])
    db.session.commit()
    [job_id] = schedule(rt)
    drain(app)
    assert job(job_id).status == JobStatus.SUCCEEDED.value, job(job_id).status_reason
    assert output_of(job_id) == b"from the template\n"
    entry = _env_entry(job_id, "INPUT_FILE")
    assert entry["source"] == "upload"
    assert str(entry["value"]).endswith("/rt.csv")


def test_a_job_upload_wins_over_the_template_one(app: Flask) -> None:
    rt = shell_rt(SCRIPT + '; cat "$OTHER"', fields=[*FIELDS, {"keyname": "OTHER"}])
    runtemplate_ops.store_uploads(
        rt,
        [Upload("INPUT_FILE", "same.csv", b"template\n"), Upload("OTHER", "same.csv", b"other\n")],
    )
    db.session.commit()
    job_id = _run_now(rt, Upload("INPUT_FILE", "same.csv", b"job\n"))
    drain(app)
    assert job(job_id).status == JobStatus.SUCCEEDED.value, job(job_id).status_reason
    # The job's own file for INPUT_FILE; the template's file for the field the job left alone
    # (same file name: it gets a directory of its own).
    assert output_of(job_id) == b"job\nother\n"
    assert _env_entry(job_id, "OTHER")["source"] == "upload"
    assert str(_env_entry(job_id, "OTHER")["value"]).endswith("/OTHER/same.csv")


def test_a_job_without_uploads_keeps_its_config_value(app: Flask) -> None:
    rt = _rt()
    [job_id] = schedule(rt, env_override={"INPUT_FILE": "/etc/hostname"})
    drain(app)
    assert _env_entry(job_id, "INPUT_FILE")["source"] == "override"


@pytest.mark.parametrize("name", ["../evil", "/etc/passwd", "..", ".", "", "a/b", "a\x00b"])
def test_a_name_that_would_escape_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UploadError, match="escape"):
        materialise(tmp_path, {"F": (name, b"x")})
    assert list(tmp_path.iterdir()) == []


def test_an_escaping_name_fails_the_job_clearly(app: Flask) -> None:
    job_id = _run_now(_rt(), Upload("INPUT_FILE", "ok.csv", b"x"))
    db.session.execute(update(FileUpload).where(FileUpload.job_id == job_id).values(filename=".."))
    db.session.commit()
    drain(app)
    j = job(job_id)
    assert j.status == JobStatus.FAILED.value
    assert "would escape" in (j.status_reason or "")
