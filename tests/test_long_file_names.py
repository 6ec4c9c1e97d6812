"""File names are bounded in bytes, as file systems bound them (255), not in characters: a name
of 150 Czech letters (300 bytes of UTF-8) passed safe_name() and then could not be created, so
an uploaded input file made every job of its template fail at start, and a large artifact was
lost with every artifact collected after it."""

from __future__ import annotations

from pathlib import Path

from multiflexi_web.services.jobs.artifacts import Collector, safe_name
from multiflexi_web.services.jobs.inputs import materialise

LONG = "ř" * 150 + ".csv"  # 150 characters of 2 bytes: 304 bytes


def test_safe_name_fits_a_file_system_name() -> None:
    assert len(safe_name(LONG).encode()) <= 255
    assert safe_name(LONG).endswith("ř.csv")  # cut between characters, the extension kept
    nested = "/".join(["složka" * 10] * 5) + "/výsledek.json"  # flattened with "_"
    assert len(safe_name(nested).encode()) <= 200 and safe_name(nested).endswith(".json")
    assert safe_name("日本" * 100) == "日本" * 33  # 198 bytes: no half character


def test_uploaded_file_with_long_unicode_name_is_written(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    paths = materialise(work, {"INPUT": (safe_name(LONG), b"a,b\n")})  # OSError ENAMETOOLONG
    assert Path(paths["INPUT"]).read_bytes() == b"a,b\n"


def test_large_artifact_with_long_unicode_name_is_kept(tmp_path: Path) -> None:
    col = Collector(1, tmp_path / "artifacts", inline_max=10)
    col.add_chunks(LONG, [b"x" * 100], size=100)  # spilled to disk: OSError ENAMETOOLONG
    col.add_chunks("after.txt", [b"y"])
    assert len(col.rows) == 2
