"""Dashboard: what is running, queued and failing, and how each application fared lately."""

from __future__ import annotations

from flask import Blueprint, render_template

from multiflexi_web.extensions import db
from multiflexi_web.services import settings
from multiflexi_web.services.accounts.access import visible_company_ids
from multiflexi_web.services.housekeeping import figures as storage
from multiflexi_web.views._helpers import is_htmx, me
from multiflexi_web.views.dashboard import figures as dashboard
from multiflexi_web.views.dashboard.charts import BarChart, bar_chart, rate_tone, seconds_text

bp = Blueprint("dashboard", __name__)
STATS_DAYS = 30


@bp.get("/")
def index() -> str:
    visible = visible_company_ids(me())
    counts = dashboard.counts(visible)
    recent = dashboard.recent(visible)
    if is_htmx():
        return render_template("dashboard/_live.html", counts=counts, recent=recent)
    rate_chart, duration_chart = _charts(dashboard.app_stats(visible, STATS_DAYS))
    return render_template(
        "dashboard/index.html",
        counts=counts,
        recent=recent,
        rate_chart=rate_chart,
        duration_chart=duration_chart,
        workers=dashboard.worker_health(settings().lost_after),
        steps=dashboard.first_steps(visible),
        days=STATS_DAYS,
        storage=_storage(visible),
    )


def _storage(visible: set[int] | None) -> dict[str, str | int | None]:
    """Artifacts of the companies the user sees; the database's size for platform admins only."""
    count, size = storage.artifact_bytes(db.session(), visible)
    whole = storage.database_bytes(db.session()) if visible is None else None
    return {
        "artifacts": count,
        "artifact_size": storage.human_bytes(size),
        "database_size": storage.human_bytes(whole) if whole is not None else None,
    }


def _charts(stats: list[dashboard.AppStat]) -> tuple[BarChart, BarChart]:
    rates = [(s.name, s.rate * 100, f"{s.rate:.0%} of {s.total}", rate_tone(s.rate)) for s in stats]
    durations = [(s.name, s.avg_seconds or 0.0, seconds_text(s.avg_seconds), "info") for s in stats]
    return (
        bar_chart(f"Success rate per application, last {STATS_DAYS} days", rates, maximum=100),
        bar_chart(f"Average duration per application, last {STATS_DAYS} days", durations),
    )
