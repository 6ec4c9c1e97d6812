"""Which applications' executables this executor's host lacks (reported on its worker row).

An app whose command is not installed where the executors run used to be found out only when a
job failed with 127; the portal warns on the app and RunTemplate pages from this report instead.
"""

from __future__ import annotations

import os

from sqlalchemy import select

from multiflexi_web.executors.native import resolve_executable
from multiflexi_web.extensions import db
from multiflexi_web.models import Application
from multiflexi_web.services.jobs.environment import daemon_base

REPORT_MAX = 1000  # names; a catalogue larger than this is reported in part


def missing_here() -> list[str]:
    """The distinct executables of enabled applications that a native job here could not start."""
    names = db.session.scalars(
        select(Application.executable).where(Application.enabled.is_(True)).distinct()
    ).all()
    path = daemon_base()["PATH"]
    return sorted(n for n in names if n and not _runnable(n, path))[:REPORT_MAX]


def _runnable(name: str, path: str) -> bool:
    try:
        found = resolve_executable(name, path)
    except FileNotFoundError:
        return False
    return os.path.isfile(found) and os.access(found, os.X_OK)
