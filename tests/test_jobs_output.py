"""Output chunks and the per-stream cap; artifacts: names, traversal, MIME, large files on disk."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from flask import Flask

from multiflexi_web.extensions import db
from multiflexi_web.services.jobs import artifacts
from multiflexi_web.services.jobs.artifacts import Collector, files_to_keep, safe_name
from multiflexi_web.services.jobs.output import ROW_MAX, OutputSink
from tests.executor_support import drain, job, output_of, schedule, shell_rt

MB = 1024 * 1024


def _feed(sink: OutputSink, total: int, piece: int = 64 * 1024) -> list[dict[str, object]]:
    """Feed `total` counted bytes, flushing like the daemon does; returns what stays stored."""
    stored: dict[int, dict[str, object]] = {}
    sent = 0
    while sent < total:
        n = min(piece, total - sent)
        sink.add("stdout", f"{sent:>{n}}".encode()[:n] if n >= 12 else b"x" * n)
        sent += n
        if sink.due():
            _apply(sink, stored)
    _apply(sink, stored)
    return [stored[k] for k in sorted(stored)]


def _apply(sink: OutputSink, stored: dict[int, dict[str, object]]) -> None:
    batch = sink.take()
    for row in batch.rows:
        stored[int(str(row["seq"]))] = row
    for _stream, (head_seq, upto) in batch.deletes.items():
        for seq in [s for s in stored if head_seq < s <= upto]:
            del stored[seq]


def test_under_the_cap_everything_is_kept(app: Flask) -> None:
    sink = OutputSink(1, cap_bytes=MB)
    rows = _feed(sink, 300 * 1024)
    assert sum(len(bytes(r["data"])) for r in rows) == 300 * 1024  # type: ignore[arg-type]
    assert sink.counters() == {
        "stdout_bytes": 300 * 1024,
        "stdout_dropped": 0,
        "stderr_bytes": 0,
        "stderr_dropped": 0,
    }


def test_over_the_cap_head_and_tail_are_kept_and_the_gap_counted(app: Flask) -> None:
    sink = OutputSink(1, cap_bytes=MB)
    total = 10 * MB
    rows = _feed(sink, total)
    kept = sum(len(bytes(r["data"])) for r in rows)  # type: ignore[arg-type]
    counters = sink.counters()
    assert counters["stdout_bytes"] == total
    assert counters["stdout_dropped"] == total - kept
    assert MB - ROW_MAX <= kept <= MB
    data = b"".join(bytes(r["data"]) for r in rows)  # type: ignore[arg-type]
    assert data.startswith(f"{0:>{64 * 1024}}".encode()[:100])
    assert data.endswith(f"{total - 64 * 1024:>{64 * 1024}}".encode())


def test_binary_output_and_artifact_of_a_real_job(app: Flask) -> None:
    rt = shell_rt(
        # Fixed first bytes: random ones sometimes looked like a file type to libmagic ("MZ").
        "{ printf '\\000\\377'; head -c 2998 /dev/urandom; } > blob.bin; cat blob.bin; "
        "printf '\\377\\000' >&2",
        artifacts=[{"name": "blob", "path": r"\.bin$"}],
    )
    [job_id] = schedule(rt)
    drain(app)
    assert job(job_id).status == "succeeded"
    out = output_of(job_id)
    assert len(out) == 3000 and output_of(job_id, "stderr") == b"\xff\x00"
    arts = {a.filename: a for a in artifacts.list_for_job(db.session(), job_id)}
    assert arts["blob.bin"].content == out and arts["stdout.txt"].content == out
    assert arts["blob.bin"].sha256 == hashlib.sha256(out).hexdigest()
    assert arts["blob.bin"].mime_type == "application/octet-stream"


def test_result_file_and_patterns_with_traversal_attempts(app: Flask, tmp_path: Path) -> None:
    secret = tmp_path / "outside.txt"
    secret.write_text("host secret")
    script = (
        f"ln -s {secret} link.json; mkdir -p sub; echo '{{\"a\": 1}}' > sub/report.json; "
        "echo '{\"ok\": true}' > passwd; printf 'name,age\\nal,30\\nbo,25\\ncy,41\\n' > data.csv"
    )
    rt = shell_rt(
        script,
        fields=[{"keyname": "RESULT_FILE", "default": "../../../etc/passwd"}],
        artifacts=[{"path": r"\.json$"}, {"path": "csv"}],
    )
    [job_id] = schedule(rt)
    drain(app)
    assert job(job_id).status == "succeeded", job(job_id).status_reason
    arts = {a.filename: a for a in artifacts.list_for_job(db.session(), job_id)}
    assert set(arts) == {"passwd", "sub_report.json", "data.csv"}  # no output: no stdout.txt
    assert arts["passwd"].content == b'{"ok": true}\n'
    assert arts["passwd"].mime_type == "application/json"
    assert arts["data.csv"].mime_type == "text/csv"
    assert all(
        "host secret" not in (a.content or b"").decode(errors="replace") for a in arts.values()
    )
    assert not (tmp_path / "work" / f"job-{job_id}").exists()  # work directory removed


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("../../etc/passwd", "etc_passwd"),
        ("/abs/path.txt", "abs_path.txt"),
        ("a\x00b.txt", "ab.txt"),
        ("..", "artifact"),
        ("..\\..\\win.ini", "win.ini"),
        (".hidden", "hidden"),
        ("ok name.json", "ok name.json"),
        ("x" * 300, "x" * 200),
    ],
)
def test_safe_name(raw: str, safe: str) -> None:
    assert safe_name(raw) == safe
    assert "/" not in safe_name(raw) and "\x00" not in safe_name(raw)


def test_files_to_keep_skips_links_and_escapes(tmp_path: Path) -> None:
    work = tmp_path / "w"
    (work / "d").mkdir(parents=True)
    (tmp_path / "secret.json").write_text("{}")
    os.symlink(tmp_path / "secret.json", work / "link.json")
    os.symlink(tmp_path, work / "up")
    (work / "d" / "r.json").write_text("{}")
    kept = files_to_keep(work, [r"\.json$"], work / "up" / "secret.json")
    assert kept == [work / "d" / "r.json"]


def test_large_artifacts_go_to_disk(tmp_path: Path) -> None:
    col = Collector(7, tmp_path / "store", inline_max=1000)
    col.add_chunks("../big.bin", [b"a" * 600, b"b" * 600])
    col.add_chunks("../big.bin", [b"small"])
    big, small = col.rows
    assert big["content"] is None and big["size"] == 1200
    assert Path(str(big["storage_path"])) == tmp_path / "store" / "7" / "big.bin"
    assert Path(str(big["storage_path"])).read_bytes() == b"a" * 600 + b"b" * 600
    assert (small["filename"], small["content"]) == ("big-2.bin", b"small")


def test_a_job_file_is_opened_inside_its_work_directory_only(tmp_path: Path) -> None:
    # The daemon reads a job's files with its own rights while a process the job left running
    # may still change the directory: a directory on the way swapped for a link after the scan,
    # or another owner's file hard-linked in, is not read (artifacts.open_inside).
    work, outside = tmp_path / "w", tmp_path / "etc"
    (work / "out").mkdir(parents=True)
    outside.mkdir()
    (outside / "shadow").write_text("root:SECRET-hash")
    (work / "out" / "report.txt").write_text("fine")
    col = Collector(3, tmp_path / "store", inline_max=1000)
    col.add_job_file(work, work / "out" / "report.txt", "out/report.txt")
    # the scan saw a plain directory; by the open it is a link
    (work / "out" / "report.txt").unlink()
    (work / "out").rmdir()
    os.symlink(outside, work / "out")
    with pytest.raises(OSError):
        col.add_job_file(work, work / "out" / "shadow", "out/shadow")
    os.symlink(outside / "shadow", work / "last.txt")
    with pytest.raises(OSError):
        col.add_job_file(work, work / "last.txt", "last.txt")
    assert [r["content"] for r in col.rows] == [b"fine"]


@pytest.mark.skipif(os.geteuid() != 0, reason="files of two owners need root")
def test_another_owners_file_hard_linked_into_a_work_directory_is_refused(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    (tmp_path / "key").write_text("SECRET")  # root's
    os.link(tmp_path / "key", work / "key.txt")
    (work / "own.txt").write_text("mine")
    os.chown(work, 65534, 65534)  # the job user's work directory and its own file
    os.chown(work / "own.txt", 65534, 65534)
    os.link(work / "own.txt", work / "own-again.txt")  # the job's own links are its business
    col = Collector(4, tmp_path / "store", inline_max=1000)
    with pytest.raises(OSError, match="another owner's file"):
        col.add_job_file(work, work / "key.txt", "key.txt")
    col.add_job_file(work, work / "own-again.txt", "own-again.txt")
    assert [r["content"] for r in col.rows] == [b"mine"]
