"""ChainRuntemplate / LaunchJob: start another RunTemplate of the same company now."""

from __future__ import annotations

from multiflexi_web.actions.base import ActionContext, AppRef, ConfigField, EnqueueJob, Outcome

TRUE = {"1", "true", "yes", "on"}


def _flag(ctx: ActionContext, key: str, default: str) -> bool:
    return ctx.config.get(key, default).strip().lower() in TRUE


class ChainRuntemplate:
    name = "ChainRuntemplate"
    description = "Start another RunTemplate of the same company, passing env and/or files"
    key = "rtid"  # upstream's config key
    fields: tuple[ConfigField, ...] = (
        ConfigField(key, "runtemplate", "RunTemplate to start (same company)", required=True),
        ConfigField("pass_env", "bool", "Pass this job's environment", default="true"),
        ConfigField("pass_files", "bool", "Pass produced files to its inputs", default="false"),
    )

    def usable_for(self, app: AppRef) -> str | None:
        return None

    def perform(self, ctx: ActionContext) -> Outcome:
        raw = ctx.config.get(self.key, "").strip()
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
            return Outcome(False, error=f"{self.name} {self.key} {raw!r}: not a RunTemplate id")
        effect = EnqueueJob(
            int(raw),
            "chained",
            pass_env=_flag(ctx, "pass_env", "true"),
            pass_files=_flag(ctx, "pass_files", "false"),
        )
        return Outcome(True, response=f"RunTemplate {raw} queued", effects=(effect,))


class LaunchJob(ChainRuntemplate):
    """Upstream's LaunchJob (a no-op there) with its own config key: an alias."""

    name = "LaunchJob"
    description = "Alias of ChainRuntemplate (upstream config key jobid)"
    key = "jobid"
    fields: tuple[ConfigField, ...] = (
        ConfigField(key, "runtemplate", "RunTemplate to start (same company)", required=True),
        *ChainRuntemplate.fields[1:],
    )
