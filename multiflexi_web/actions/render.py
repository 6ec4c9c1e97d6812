"""Texts the notification kinds send: template fields, placeholders, the issue report body."""

from __future__ import annotations

import re
import string
import unicodedata

from multiflexi_web.actions.base import ActionContext


def job_fields(ctx: ActionContext) -> dict[str, str]:
    """The placeholders a template may use, as ${name}."""
    return {
        "job_id": str(ctx.job_id),
        "status": ctx.status,
        "exit_code": "" if ctx.exit_code is None else str(ctx.exit_code),
        "exit_meaning": ctx.exit_meaning or "",
        "company": ctx.company_name,
        "company_slug": ctx.company_slug,
        "app": ctx.app.name,
        "runtemplate": ctx.runtemplate_name,
        "runtemplate_id": str(ctx.runtemplate_id),
        "job_url": ctx.job_url,
        "attempt": str(ctx.attempt),
        "platform_version": ctx.platform_version,
        "stdout_tail": ctx.stdout_tail,
        "stderr_tail": ctx.stderr_tail,
    }


def render(template: str, ctx: ActionContext) -> str:
    """string.Template substitution: no code evaluation, unknown placeholders left as written."""
    return string.Template(template).safe_substitute(job_fields(ctx))


def exit_text(ctx: ActionContext) -> str:
    if ctx.exit_code is None:
        return "none"
    return f"{ctx.exit_code} ({ctx.exit_meaning})" if ctx.exit_meaning else str(ctx.exit_code)


def fenced(text: str) -> str:
    """A Markdown code block whose fence is longer than any backtick run inside the text."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text.rstrip()}\n{fence}"


def issue_body(ctx: ActionContext) -> str:
    """The problem report Github and Redmine issues carry (upstream's body, with a job link
    instead of the command line, which may hold secrets)."""
    lines = [
        f"MultiFlexi job {ctx.job_id} of {ctx.runtemplate_name} ({ctx.company_name}): {ctx.status}",
        "",
        f"- Job: {ctx.job_url}",
        f"- Exit code: {exit_text(ctx)}",
        f"- Platform: MultiFlexi for Python {ctx.platform_version}".rstrip(),
        "",
        "stdout (tail):",
        fenced(ctx.stdout_tail),
        "",
        "stderr (tail):",
        fenced(ctx.stderr_tail),
    ]
    return "\n".join(lines)


def slug(text: str) -> str:
    """Lower-case ASCII words joined by '-' (accents dropped: "Účty" -> "ucty")."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
