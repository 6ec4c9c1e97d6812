"""A job's uploads are written while its work directory is still the daemon's alone: the
directory used to be handed to the job user first, so any process of that user (another
company's job running at the same time, or one left behind) could plant a link there, and for
two file fields with one file name the sub-directory's mkdir(exist_ok) and chown followed it,
handing a directory of the host (/etc) to the job user and writing the upload into it, as
root. materialise() itself no longer follows such a link either."""

from __future__ import annotations

import contextlib
import os
import pwd
import threading
from pathlib import Path

import pytest
from flask import Flask

from multiflexi_web.executors.base import RunAs
from multiflexi_web.extensions import db
from multiflexi_web.runner import run as run_module
from multiflexi_web.runner.run import JobRun, RunSettings
from multiflexi_web.services.jobs import transitions as jobs
from multiflexi_web.services.jobs.adhoc import Upload, run_now
from multiflexi_web.services.jobs.environment import context_for
from multiflexi_web.services.jobs.inputs import UploadError, materialise
from tests.executor_support import shell_rt
from tests.factories import make_worker


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to the job user needs root")
def test_a_planted_link_does_not_redirect_an_upload_out_of_the_work_directory(
    tmp_path: Path,
) -> None:
    nobody = pwd.getpwnam("nobody")
    owner = (nobody.pw_uid, nobody.pw_gid)
    outside = tmp_path / "etc"  # stands for /etc: root's, not the job user's
    outside.mkdir(mode=0o755)
    workdir = tmp_path / "job-7"
    workdir.mkdir(mode=0o700)
    os.chown(workdir, *owner)  # as _make_workdir leaves it
    # What a process of the job user can do now (it owns the directory):
    os.symlink(outside, workdir / "FILE_B")

    files = {"FILE_A": ("cron-evil", b"a"), "FILE_B": ("cron-evil", b"* * * * * root id\n")}
    with contextlib.suppress(UploadError, OSError):  # refusing is a fine answer
        materialise(workdir, files, owner)
    st = outside.stat()
    assert (st.st_uid, st.st_gid) == (0, 0), "a directory outside was chowned to the job user"
    assert not (outside / "cron-evil").exists(), "an upload was written outside the work dir"


class _Stop(Exception):
    pass


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to the job user needs root")
def test_the_work_directory_is_handed_over_only_after_the_uploads(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nobody = pwd.getpwnam("nobody")
    rt = shell_rt("true", fields=[{"keyname": "IN", "type": "file-path"}])
    run_now(rt, {}, [Upload("IN", "in.csv", b"1")], None)
    db.session.commit()
    [claimed] = jobs.claim(make_worker().id, 1)
    job_user = RunAs("nobody", nobody.pw_uid, nobody.pw_gid)
    cfg = RunSettings(tmp_path, tmp_path / "art", 1 << 20, 1 << 20, 60, 1.0, False, 1.0, job_user)
    run = JobRun(claimed, cfg, threading.Event())
    owners: list[int] = []

    def watched(workdir: Path, *args: object) -> dict[str, str]:
        owners.append(workdir.stat().st_uid)
        return materialise(workdir, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(run_module.job_inputs, "materialise", watched)
    monkeypatch.setattr(run_module.registry, "get", lambda _name: (_ for _ in ()).throw(_Stop()))
    with pytest.raises(_Stop):
        run._execute(context_for(rt, {}))
    assert owners == [0]  # the daemon's while the uploads were written
    assert run.workdir.stat().st_uid == nobody.pw_uid  # then the job user's
