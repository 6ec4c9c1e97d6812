"""`multiflexi prune`, `worker list` and `installation`: the operator's view of storage, daemons
and what this installation's engine objects are labelled with."""

from __future__ import annotations

from typing import Any

import click

from multiflexi_web.cli.common import emit, format_option
from multiflexi_web.db.engine import begin_write
from multiflexi_web.executors.container_labels import LABEL_INSTALLATION
from multiflexi_web.extensions import db
from multiflexi_web.models import utcnow
from multiflexi_web.services import audit, installation, settings
from multiflexi_web.services.housekeeping.figures import human_bytes
from multiflexi_web.services.housekeeping.prune import prune
from multiflexi_web.views.queries.operations import workers_with_running
from multiflexi_web.views.workers import heartbeat_age, is_stale

PRUNE_COLUMNS = ["what", "count", "bytes", "size"]
WORKER_COLUMNS = ["id", "kind", "hostname", "pid", "status", "heartbeat_age", "running", "stale"]


@click.command("prune")
@click.option("--dry-run", is_flag=True, help="Only show what would be removed.")
@format_option
def prune_command(dry_run: bool, fmt: str) -> None:
    """Apply the retention policies now: old jobs, output, artifacts, orphaned files."""
    report = prune(db.session(), settings(), utcnow(), dry_run=dry_run)
    data = report.as_dict()
    if not dry_run:
        begin_write()
        audit.record("prune", "platform", None, _summary(data), actor="cli")
        db.session.commit()
    if fmt == "json":
        emit(data, fmt, [])
        return
    rows = [
        {"what": k, "count": v.get("count", v.get("rows")), "bytes": v["bytes"]}
        for k, v in data.items()
        if isinstance(v, dict) and "bytes" in v
    ]
    emit([{**r, "size": human_bytes(r["bytes"])} for r in rows], fmt, PRUNE_COLUMNS)
    click.echo("(dry run: nothing removed)" if dry_run else "removed.")


def _summary(data: dict[str, Any]) -> str:
    gone = data["removed"]
    return ", ".join(f"{k}={v}" for k, v in gone.items())


@click.group("worker")
def worker_group() -> None:
    """Daemons registered in the database."""


@worker_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include stopped workers.")
@format_option
def worker_list(show_all: bool, fmt: str) -> None:
    """Every scheduler, executor and eventor with its heartbeat and running jobs."""
    now, lost_after = utcnow(), settings().lost_after
    rows = [
        {
            "id": w.id,
            "kind": w.kind,
            "hostname": w.hostname,
            "pid": w.pid,
            "status": w.status,
            "started_at": w.started_at,
            "heartbeat_age": round(heartbeat_age(w, now), 1),
            "running": running,
            "stale": is_stale(w, now, lost_after),
        }
        for w, running in workers_with_running()
        if show_all or w.stopped_at is None
    ]
    emit(rows, fmt, WORKER_COLUMNS)


@click.command("installation")
@format_option
def installation_command(fmt: str) -> None:
    """This installation's uid: the label on every container, Pod and container group it starts
    (e.g. `docker ps --filter label=multiflexi.installation=UID`)."""
    uid = installation.uid(db.session())
    emit({"uid": uid, "label": f"{LABEL_INSTALLATION}={uid}"}, fmt, [])
