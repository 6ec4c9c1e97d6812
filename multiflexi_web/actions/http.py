"""The one HTTP call the network actions share: POST JSON, map the answer to an Outcome."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import requests

from multiflexi_web.actions.base import Outcome

RESPONSE_MAX = 4096  # bytes of a peer's answer kept in the run's record


def bounded(text: str, limit: int = RESPONSE_MAX) -> str:
    data = text.encode("utf-8", "replace")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore") + "…"


def post_json(
    url: str, payload: Any, headers: Mapping[str, str], timeout: float, *, body: bytes | None = None
) -> Outcome:
    """Network failures, timeouts and 5xx (and 429) are retryable; other 4xx are not.
    `body`: the exact bytes to send (when a signature covers them), else payload as JSON."""
    data = body if body is not None else json.dumps(payload).encode()
    sent = {"Content-Type": "application/json", **headers}
    try:
        resp = requests.post(url, data=data, headers=sent, timeout=timeout, allow_redirects=False)
    except requests.Timeout:
        return Outcome(False, error=f"POST {url}: no answer within {timeout:g} s", retryable=True)
    except requests.RequestException as exc:
        return Outcome(False, error=f"POST {url}: {type(exc).__name__}", retryable=True)
    return from_response(f"POST {url}", resp)


def from_response(what: str, resp: requests.Response) -> Outcome:
    text = bounded(resp.text)
    if resp.status_code < 300:
        return Outcome(True, response=f"HTTP {resp.status_code} {text}".rstrip())
    retryable = resp.status_code >= 500 or resp.status_code == 429
    return Outcome(
        False, error=f"{what}: HTTP {resp.status_code} {text}".rstrip(), retryable=retryable
    )
