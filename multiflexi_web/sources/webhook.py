"""The webhook kind: received by the portal (views/webhook.py); config says how bodies read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from multiflexi_web.services.events.bodies import BODY_FORMATS
from multiflexi_web.sources.base import KindInfo, SourceConfigError


def _check(config: Mapping[str, Any]) -> None:
    if config.get("body") not in BODY_FORMATS:
        choices = ", ".join(f"{k} ({v})" for k, v in BODY_FORMATS.items())
        raise SourceConfigError(f"config body: choose one of {choices}")


KIND = KindInfo(
    "Webhook: POST /webhook/<token> on the portal",
    defaults={"body": "auto"},
    check=_check,
)
