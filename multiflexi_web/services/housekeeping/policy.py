"""Retention policies: the global settings, overridden per company where the company sets one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from multiflexi_web.config import Settings
from multiflexi_web.models import Company
from multiflexi_web.models.bounds import parse_id

MIB = 1024 * 1024
# The company columns and the settings they override, one list for the form, CLI and policy.
FIELDS = (
    ("retain_jobs_days", "Keep finished jobs (days)"),
    ("retain_failed_days", "Keep failed, timed-out and lost jobs (days)"),
    ("retain_output_days", "Keep job output (days)"),
    ("retain_artifacts_days", "Keep artifacts (days)"),
    ("artifact_budget_mb", "Artifact budget (MiB)"),
)
MAX_VALUE = 100_000


@dataclass(frozen=True)
class Policy:
    """One company's effective retention; 0 days keeps forever, budget 0 has no cap."""

    company_id: int
    jobs_days: int
    failed_days: int
    output_days: int
    artifacts_days: int
    budget_mb: int

    def jobs_cutoff(self, now: datetime) -> datetime | None:
        return _cutoff(now, self.jobs_days)

    def failed_cutoff(self, now: datetime) -> datetime | None:
        """Failed jobs stay max(jobs, failed) days; any 'forever' keeps them forever."""
        if self.jobs_days == 0:
            return None
        return _cutoff(now, max(self.jobs_days, self.failed_days))

    def output_cutoff(self, now: datetime) -> datetime | None:
        return _cutoff(now, self.output_days)

    def artifacts_cutoff(self, now: datetime) -> datetime | None:
        return _cutoff(now, self.artifacts_days)

    @property
    def budget_bytes(self) -> int:
        return self.budget_mb * MIB


def _cutoff(now: datetime, days: int) -> datetime | None:
    return now - timedelta(days=days) if days > 0 else None


def policy_for(company: Company, settings: Settings) -> Policy:
    def pick(name: str) -> int:
        own = getattr(company, name)
        return int(own) if own is not None else int(getattr(settings, name))

    return Policy(
        company_id=company.id,
        jobs_days=pick("retain_jobs_days"),
        failed_days=pick("retain_failed_days"),
        output_days=pick("retain_output_days"),
        artifacts_days=pick("retain_artifacts_days"),
        budget_mb=pick("artifact_budget_mb"),
    )


class RetentionError(ValueError):
    """A refused retention value; the message starts with the field's name."""


def set_overrides(company: Company, raw: dict[str, str]) -> None:
    """Set the company's overrides from form text: blank = the global setting, else 0..MAX."""
    values: dict[str, int | None] = {}
    for name, _label in FIELDS:
        text = (raw.get(name) or "").strip()
        if not text:
            values[name] = None
        elif (value := parse_id(text, MAX_VALUE)) is None:
            raise RetentionError(f"{name}: a whole number from 0 to {MAX_VALUE}, or blank")
        else:
            values[name] = value
    for name, value in values.items():
        setattr(company, name, value)


def shown(company: Company, settings: Settings) -> list[dict[str, object]]:
    """Per field: its label, the company's own value (None: default) and the effective one."""
    effective = policy_for(company, settings)
    eff = {
        "retain_jobs_days": effective.jobs_days,
        "retain_failed_days": effective.failed_days,
        "retain_output_days": effective.output_days,
        "retain_artifacts_days": effective.artifacts_days,
        "artifact_budget_mb": effective.budget_mb,
    }
    return [
        {"name": n, "label": label, "own": getattr(company, n), "effective": eff[n]}
        for n, label in FIELDS
    ]
