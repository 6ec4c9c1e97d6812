"""Mattermost: post the job's summary to a Mattermost incoming webhook."""

from __future__ import annotations

from multiflexi_web.actions import chat
from multiflexi_web.actions.base import ActionContext, AppRef, ConfigField, Outcome


class Mattermost:
    name = "Mattermost"
    description = "Post a message to a Mattermost incoming webhook"
    fields: tuple[ConfigField, ...] = (
        # The webhook URL is itself the credential: whoever has it can post.
        ConfigField(
            "webhook_url", "url", "Incoming webhook URL", True, secret=True, destination=True
        ),
        ConfigField("message", "text", "Message template", default=chat.DEFAULT_MESSAGE),
        ConfigField("channel", "string", "Channel override (when the webhook allows it)"),
        ConfigField("username", "string", "Username override"),
        ConfigField("icon_url", "url", "Icon URL override"),
    )

    def usable_for(self, app: AppRef) -> str | None:
        return None

    def perform(self, ctx: ActionContext) -> Outcome:
        return chat.post(self.name, self.fields, ctx)
