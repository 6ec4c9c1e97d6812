"""One housekeeping pass: plan what retention and the file sweeps remove, then remove it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from multiflexi_web.config import Settings
from multiflexi_web.services.housekeeping import files, retention
from multiflexi_web.services.housekeeping.policy import policy_for


@dataclass
class Report:
    """Counts and bytes per kind of thing removed (or, in a dry run, that would be)."""

    dry_run: bool
    plan: retention.Plan
    file_plan: files.FilePlan
    removed: retention.Removed | None = None

    def as_dict(self) -> dict[str, Any]:
        p, f = self.plan, self.file_plan
        out: dict[str, Any] = {
            "dry_run": self.dry_run,
            "jobs": {"count": len(p.jobs), "bytes": p.job_bytes},
            "output": {"jobs": len(p.outputs), "rows": p.output_rows, "bytes": p.output_bytes},
            "artifacts": {"count": len(p.artifacts), "bytes": p.artifact_bytes},
            "orphan_files": {"count": len(f.orphans), "bytes": f.orphan_bytes},
            "stale_workdirs": {"count": len(f.workdirs), "bytes": f.workdir_bytes},
        }
        if self.removed is not None:
            r = self.removed
            out["removed"] = {
                "jobs": r.jobs,
                "output_rows": r.output_rows,
                "artifacts": r.artifacts,
                "files": len(r.files),
            }
        return out


def prune(
    session: Session,
    settings: Settings,
    now: datetime,
    *,
    dry_run: bool = False,
    stop: Callable[[], bool] = lambda: False,
) -> Report:
    """Plan (reads only), then unless dry_run delete in batches of settings.prune_batch."""
    policies = retention.policies(session, lambda c: policy_for(c, settings))
    planned = retention.plan(session, policies, now)
    artifact_dir, tmp_dir = Path(settings.artifact_dir), Path(settings.tmp_dir)
    file_plan = files.plan_files(session, artifact_dir, tmp_dir, settings.stale_workdir_hours)
    session.rollback()  # end the planning snapshot: deletes run in short transactions of their own
    report = Report(dry_run, planned, file_plan)
    if dry_run:
        return report
    removed = retention.apply(session, planned, settings.prune_batch, stop)
    # Rows first, then their files: a crash between leaves orphans the next pass removes.
    files.remove(removed.files)
    files.remove(file_plan.orphans)
    files.remove(file_plan.workdirs)
    report.removed = removed
    return report
