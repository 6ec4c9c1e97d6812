"""Mattermost: post the job's summary to a Mattermost incoming webhook."""

from __future__ import annotations

from multiflexi_web.actions.base import ActionContext, AppRef, ConfigField, Outcome
from multiflexi_web.actions.delivery import DELIVERY_HEADER, missing, secret_values, send, settings
from multiflexi_web.actions.render import render
from multiflexi_web.actions.slack import DEFAULT_MESSAGE


class Mattermost:
    name = "Mattermost"
    description = "Post a message to a Mattermost incoming webhook"
    fields: tuple[ConfigField, ...] = (
        # The webhook URL is itself the credential: whoever has it can post.
        ConfigField("webhook_url", "url", "Incoming webhook URL", True, secret=True),
        ConfigField("message", "text", "Message template", default=DEFAULT_MESSAGE),
        ConfigField("channel", "string", "Channel override (when the webhook allows it)"),
        ConfigField("username", "string", "Username override"),
        ConfigField("icon_url", "url", "Icon URL override"),
    )

    def usable_for(self, app: AppRef) -> str | None:
        return None

    def perform(self, ctx: ActionContext) -> Outcome:
        values = settings(self.fields, ctx)
        if problem := missing(self.fields, values, self.name):
            return problem
        payload = {"text": render(values["message"], ctx)}
        payload |= {k: values[k] for k in ("channel", "username", "icon_url") if values.get(k)}
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
