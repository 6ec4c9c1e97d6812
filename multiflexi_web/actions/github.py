"""Github: open an issue in the application's own GitHub repository about a failed job."""

from __future__ import annotations

from urllib.parse import urlsplit

from multiflexi_web.actions.base import ActionContext, AppRef, ConfigField, Outcome
from multiflexi_web.actions.delivery import missing, secret_values, send, settings
from multiflexi_web.actions.render import issue_body, render

GITHUB_HOSTS = frozenset({"github.com", "www.github.com"})


def repository(homepage: str | None) -> tuple[str, str] | None:
    """(owner, repo) from a https://github.com/<owner>/<repo>[...] homepage, else None."""
    parts = urlsplit(homepage or "")
    segments = [s for s in parts.path.split("/") if s]
    if (parts.hostname or "").lower() not in GITHUB_HOSTS or len(segments) < 2:
        return None
    repo = segments[1].removesuffix(".git")
    return (segments[0], repo) if repo else None


class Github:
    name = "Github"
    description = "Open a GitHub issue in the application's repository (its homepage)"
    fields: tuple[ConfigField, ...] = (
        ConfigField(
            "token", "password", "GitHub token allowed to create issues", True, secret=True
        ),
        ConfigField(
            "api_url",
            "url",
            "GitHub API base URL",
            default="https://api.github.com",
            destination=True,
        ),
        ConfigField("title", "string", "Issue title template", default="${app} problem"),
        ConfigField("labels", "string", "Comma-separated labels", default="Bug"),
    )

    def usable_for(self, app: AppRef) -> str | None:
        if repository(app.homepage) is None:
            return "the application's homepage is not a github.com/<owner>/<repo> address"
        return None

    def perform(self, ctx: ActionContext) -> Outcome:
        values = settings(self.fields, ctx)
        repo = repository(ctx.app.homepage)
        if repo is None:
            return Outcome(ok=False, error=f"Github: {self.usable_for(ctx.app)}")
        if problem := missing(self.fields, values, self.name):
            return problem
        url = f"{values['api_url'].rstrip('/')}/repos/{repo[0]}/{repo[1]}/issues"
        _, outcome = send(
            "POST",
            url,
            ok={201},
            secrets=secret_values(self.fields, values),
            timeout=ctx.timeout,
            idempotency_key=ctx.idempotency_key,
            json=self.payload(ctx, values),
            headers={
                "Authorization": f"Bearer {values['token']}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
        )
        return outcome

    def payload(self, ctx: ActionContext, values: dict[str, str]) -> dict[str, object]:
        # GitHub has no idempotency header; the key in a hidden comment lets a search find repeats.
        body = f"{issue_body(ctx)}\n\n<!-- multiflexi-delivery: {ctx.idempotency_key} -->"
        labels = [label.strip() for label in values.get("labels", "").split(",") if label.strip()]
        return {"title": render(values["title"], ctx), "body": body, "labels": labels}
