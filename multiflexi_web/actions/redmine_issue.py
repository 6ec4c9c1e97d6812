"""RedmineIssue: open an issue in a Redmine project about a job."""

from __future__ import annotations

from multiflexi_web.actions.base import ActionContext, AppRef, ConfigField, Outcome
from multiflexi_web.actions.delivery import missing, secret_values, send, settings
from multiflexi_web.actions.render import issue_body, render


class RedmineIssue:
    name = "RedmineIssue"
    description = "Open an issue in a Redmine project"
    fields: tuple[ConfigField, ...] = (
        ConfigField("url", "url", "Redmine base URL", True, destination=True),
        ConfigField("token", "password", "Redmine API key", True, secret=True),
        ConfigField("project_id", "string", "Project id or identifier", True),
        ConfigField("tracker_id", "integer", "Tracker id", default="1"),
        ConfigField("subject", "string", "Subject template", default="${app} problem"),
    )

    def usable_for(self, app: AppRef) -> str | None:
        return None

    def perform(self, ctx: ActionContext) -> Outcome:
        values = settings(self.fields, ctx)
        if problem := missing(self.fields, values, self.name):
            return problem
        if not (values["tracker_id"].isascii() and values["tracker_id"].isdigit()):
            return Outcome(ok=False, error="RedmineIssue: tracker_id must be a number")
        issue = {
            "project_id": values["project_id"],
            "subject": render(values["subject"], ctx),
            "description": issue_body(ctx),
            "tracker_id": int(values["tracker_id"]),
        }
        _, outcome = send(
            "POST",
            f"{values['url'].rstrip('/')}/issues.json",
            ok={201},
            secrets=secret_values(self.fields, values),
            timeout=ctx.timeout,
            idempotency_key=ctx.idempotency_key,
            json={"issue": issue},
            headers={"X-Redmine-API-Key": values["token"]},
        )
        return outcome
