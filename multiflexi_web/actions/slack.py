"""Slack: post the job's summary to a Slack incoming webhook."""

from __future__ import annotations

from multiflexi_web.actions.base import ActionContext, AppRef, ConfigField, Outcome
from multiflexi_web.actions.delivery import DELIVERY_HEADER, missing, secret_values, send, settings
from multiflexi_web.actions.render import render

DEFAULT_MESSAGE = (
    "${app} (${runtemplate}, ${company}): job ${job_id} ${status}, exit code ${exit_code}"
    " ${exit_meaning}\n${job_url}"
)


class Slack:
    name = "Slack"
    description = "Post a message to a Slack incoming webhook"
    fields: tuple[ConfigField, ...] = (
        # The webhook URL is itself the credential: whoever has it can post.
        ConfigField("webhook_url", "url", "Incoming webhook URL", True, secret=True),
        ConfigField("message", "text", "Message template", default=DEFAULT_MESSAGE),
        ConfigField("blocks", "bool", "Also send Block Kit blocks with a job button", default="0"),
    )

    def usable_for(self, app: AppRef) -> str | None:
        return None

    def perform(self, ctx: ActionContext) -> Outcome:
        values = settings(self.fields, ctx)
        if problem := missing(self.fields, values, self.name):
            return problem
        text = render(values["message"], ctx)
        payload: dict[str, object] = {"text": text}
        if values["blocks"].lower() in {"1", "true", "yes", "on"}:
            payload["blocks"] = blocks(text, ctx)
        _, outcome = send(
            "POST",
            values["webhook_url"],
            ok={200},
            secrets=secret_values(self.fields, values),
            timeout=ctx.timeout,
            json=payload,
            headers={DELIVERY_HEADER: ctx.idempotency_key},
        )
        return outcome


def blocks(text: str, ctx: ActionContext) -> list[dict[str, object]]:
    """A section with the text (plain, so job output cannot inject markup) and a link button."""
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": f"Job {ctx.job_id}"},
        "url": ctx.job_url,
    }
    return [
        {"type": "section", "text": {"type": "plain_text", "text": text[:3000]}},
        {"type": "actions", "elements": [button]},
    ]
