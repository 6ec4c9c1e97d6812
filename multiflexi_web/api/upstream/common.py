"""What every upstream route shares: the `.{suffix}` check and the listing arguments."""

from __future__ import annotations

from flask import request

from multiflexi_web.api.v1.errors import ApiError, bad_request
from multiflexi_web.api.v1.params import int_arg

# Upstream also renders yaml, xml and html; its clients (and its generated one) use json.
SUFFIXES = ("json",)
DEFAULT_LIMIT = 20  # upstream's engine limit for jobs and RunTemplates
MAX_LIMIT = 1000  # upstream's cap on /jobs
ASCENDING = {"A", "a", "id", "+id", "asc", "ASC"}
DESCENDING = {"D", "d", "-id", "desc", "DESC"}


def check_suffix(suffix: str) -> None:
    if suffix not in SUFFIXES:
        raise ApiError(404, f"format {suffix[:16]!r} is not served here; use .json")


def limit_offset() -> tuple[int, int]:
    """`limit` (default 20, at most 1000, as upstream) and `offset`."""
    limit = int_arg("limit")
    if limit is None:
        limit = DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_request(f"limit: must be 1 to {MAX_LIMIT}, got {limit}", "limit")
    return limit, int_arg("offset") or 0


def descending() -> bool:
    """`order`: upstream's A/D, or the client's field form (id, -id); ascending by default."""
    raw = request.args.get("order", "A").strip() or "A"
    if raw in ASCENDING:
        return False
    if raw in DESCENDING:
        return True
    raise bad_request("order: A or D (or id / -id): listings are ordered by id only", "order")
