"""Reschedule: run the same RunTemplate again after a delay (its cadence is not touched)."""

from __future__ import annotations

from multiflexi_web.actions.base import ActionContext, AppRef, ConfigField, EnqueueJob, Outcome

DEFAULT_DELAY = 3600


class Reschedule:
    name = "Reschedule"
    description = "Run the same RunTemplate once more after a delay"
    fields: tuple[ConfigField, ...] = (
        ConfigField("delay", "integer", "Seconds to wait", default=str(DEFAULT_DELAY)),
    )

    def usable_for(self, app: AppRef) -> str | None:
        return None

    def perform(self, ctx: ActionContext) -> Outcome:
        raw = ctx.config.get("delay", "").strip() or str(DEFAULT_DELAY)
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 12):
            return Outcome(False, error=f"Reschedule delay {raw!r}: must be whole seconds >= 0")
        effect = EnqueueJob(ctx.runtemplate_id, "reschedule", delay_seconds=int(raw), pass_env=True)
        return Outcome(True, response=f"runs again in {raw} s", effects=(effect,))
