"""The chat message Slack and Mattermost incoming webhooks take, built and posted in one place."""

from __future__ import annotations

from collections.abc import Iterable

from multiflexi_web.actions.base import ActionContext, ConfigField, Outcome
from multiflexi_web.actions.delivery import missing, secret_values, send, settings
from multiflexi_web.actions.render import render

DEFAULT_MESSAGE = (
    "${app} (${runtemplate}, ${company}): job ${job_id} ${status}, exit code ${exit_code}"
    " ${exit_meaning}\n${job_url}"
)
# Optional fields a kind may declare; each one set is passed through as is (Mattermost's).
OVERRIDES = ("channel", "username", "icon_url")
TRUE = frozenset({"1", "true", "yes", "on"})


def message(ctx: ActionContext, values: dict[str, str]) -> dict[str, object]:
    """`text` from the message template; Block Kit blocks when asked for (Slack's `blocks`);
    the overrides the kind declares and the config sets."""
    text = render(values["message"], ctx)
    payload: dict[str, object] = {"text": text}
    if values.get("blocks", "").lower() in TRUE:
        payload["blocks"] = blocks(text, ctx)
    payload |= {k: values[k] for k in OVERRIDES if values.get(k)}
    return payload


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


def post(kind: str, fields: Iterable[ConfigField], ctx: ActionContext) -> Outcome:
    """POST the message to the incoming webhook `webhook_url` (itself a secret: whoever has
    it can post); 200 is success."""
    fields = tuple(fields)
    declared = {f.key for f in fields}  # a kind gets only the overrides it declares
    values = {k: v for k, v in settings(fields, ctx).items() if k in declared}
    if problem := missing(fields, values, kind):
        return problem
    _, outcome = send(
        "POST",
        values["webhook_url"],
        ok={200},
        secrets=secret_values(fields, values),
        timeout=ctx.timeout,
        idempotency_key=ctx.idempotency_key,
        json=message(ctx, values),
    )
    return outcome
