"""Event source kinds: one consumer module per kind, listed in an explicit registry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from multiflexi_web.sources import amqp, changes_db, directory, mqtt, redis_source, webhook
from multiflexi_web.sources.base import KindInfo, SourceConfigError

KINDS: dict[str, KindInfo] = {
    "webhook": webhook.KIND,
    "directory": directory.KIND,
    "redis": redis_source.KIND,
    "amqp": amqp.KIND,
    "mqtt": mqtt.KIND,
    "changes-db": changes_db.KIND,
}


def get_kind(name: str) -> KindInfo:
    try:
        return KINDS[name]
    except KeyError:
        raise SourceConfigError(
            f"kind {name!r}: unknown, choose one of {', '.join(KINDS)}"
        ) from None


def validate_config(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults filled in; raises SourceConfigError naming a missing required key."""
    info = get_kind(kind)
    merged = {**info.defaults, **config}
    for key in info.required:
        if merged.get(key) in (None, ""):
            raise SourceConfigError(f"config {key}: required for a source of kind {kind}")
    if info.check is not None:
        info.check(merged)
    return merged
