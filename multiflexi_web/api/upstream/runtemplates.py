"""RunTemplates of the caller's companies, with upstream's success/fail action maps."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from flask import jsonify
from sqlalchemy import select
from werkzeug.wrappers import Response

from multiflexi_web.api.upstream import shapes
from multiflexi_web.api.upstream.blueprint import bp
from multiflexi_web.api.upstream.common import check_suffix, descending, limit_offset
from multiflexi_web.api.v1 import access
from multiflexi_web.extensions import db
from multiflexi_web.models import ActionConfig, RunTemplate


@bp.get("/runtemplates.<suffix>")
def runtemplates(suffix: str) -> Response:
    """`limit` (default 20) and `offset`, as upstream; `order` A/D by id."""
    check_suffix(suffix)
    limit, offset = limit_offset()
    order = RunTemplate.id.desc() if descending() else RunTemplate.id
    query = access.scoped(select(RunTemplate), RunTemplate.company_id)
    rows = list(db.session.scalars(query.order_by(order).limit(limit).offset(offset)))
    actions = _actions([rt.id for rt in rows])
    return jsonify([shapes.runtemplate(rt, actions[rt.id]) for rt in rows])


@bp.get("/runtemplate/<int:rt_id>.<suffix>")
def runtemplate(rt_id: int, suffix: str) -> dict[str, Any]:
    check_suffix(suffix)
    rt = access.owned(RunTemplate, rt_id)
    return shapes.runtemplate(rt, _actions([rt.id])[rt.id])


def _actions(rt_ids: list[int]) -> dict[int, list[ActionConfig]]:
    found: dict[int, list[ActionConfig]] = defaultdict(list)
    if rt_ids:
        query = select(ActionConfig).where(ActionConfig.runtemplate_id.in_(rt_ids))
        for action in db.session.scalars(query.order_by(ActionConfig.position)):
            found[action.runtemplate_id].append(action)
    return found
