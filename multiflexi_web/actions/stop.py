"""Stop: switch the RunTemplate's schedule to manual (upstream interv 'n'), audited."""

from __future__ import annotations

from multiflexi_web.actions.base import ActionContext, AppRef, ConfigField, DisableSchedule, Outcome


class Stop:
    name = "Stop"
    description = "Disable the RunTemplate's periodic schedule"
    fields: tuple[ConfigField, ...] = ()

    def usable_for(self, app: AppRef) -> str | None:
        return None

    def perform(self, ctx: ActionContext) -> Outcome:
        effect = DisableSchedule(ctx.runtemplate_id)
        return Outcome(True, response="schedule set to manual", effects=(effect,))
