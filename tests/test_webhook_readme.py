"""The README's first webhook example, run as written (CLI, openssl, curl) against a live portal."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from multiflexi_web.config import Settings
from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventStatus
from multiflexi_web.security.secrets import cipher
from multiflexi_web.services.events.process import jobs_of, process_batch
from tests.api_live import serving
from tests.factories import make_company, make_runtemplate

README = Path(__file__).resolve().parent.parent / "README.md"
PLACEHOLDER_URL = "http://127.0.0.1:8000/webhook/<token>"

pytestmark = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("openssl")), reason="needs curl and openssl"
)


def _readme_lines() -> list[str]:
    """The shell block after "Webhooks are received by the portal", one command per entry."""
    text = README.read_text()
    start = text.index("Webhooks are received by the portal")
    block = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert block is not None, "the README's webhook example"
    return [line for line in block.group(1).replace("\\\n", " ").splitlines() if line.strip()]


def _run(script: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _cli_env(settings: Settings) -> dict[str, str]:
    """The CLI pointed at the test's database, from the same virtualenv as this test."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": settings.secret_key,
        "ENCRYPTION_MASTER_KEY": settings.encryption_master_key,
    }


def test_readme_webhook_example_starts_the_job(app: Flask, settings: Settings) -> None:
    rt = make_runtemplate(make_company())
    db.session.commit()
    env = _cli_env(settings)
    create, rule, *post = _readme_lines()
    assert create.startswith("echo s3cret | multiflexi event-source create github")
    created = json.loads(_run(create + " --format json", env))
    # The README's "7" is whatever RunTemplate the reader has; here it is the one just made.
    _run(rule.replace("--runtemplate 7", f"--runtemplate {rt.id}"), env)
    curl = "\n".join(post).replace(PLACEHOLDER_URL, "{url}")
    assert "{url}" in curl and "application/json" not in curl  # curl -d: a form Content-Type
    with serving(app) as base:
        script = curl.replace("{url}", base + created["webhook_path"])
        script = script.replace("curl -X", "curl -sS -w '\\n%{http_code}' -X")
        answer, status = _run(script, env).rsplit("\n", 1)
    assert status == "202", answer
    event_id = json.loads(answer)["event_id"]
    db.session.rollback()
    [outcome] = process_batch()
    db.session.commit()
    event = db.session.get(Event, event_id)
    assert event is not None and event.payload == {"action": "published", "ref": "v1.2"}
    assert outcome.job_ids and event.status == EventStatus.PROCESSED.value
    [job] = jobs_of([event_id])[event_id]
    assert job.runtemplate_id == rt.id and job.env_override is not None
    assert cipher().decrypt_json(job.env_override)["REF"] == "v1.2"
    assert db.session.scalars(select(Event)).all() == [event]
