"""API request parsing: paging, query filters and JSON bodies; each error names the field."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flask import request
from sqlalchemy import BigInteger, Select
from sqlalchemy.orm import InstrumentedAttribute

from multiflexi_web.api.v1.errors import bad_request
from multiflexi_web.extensions import db
from multiflexi_web.models.bounds import BIGINT_MAX, INT32_MAX, parse_id

T = TypeVar("T")
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
# Ids of most tables are 32-bit on PostgreSQL (jobs, output, artifacts and events 64-bit):
# a larger number cannot even be bound there, so it is refused or known to match nothing.


def id_limit(column: Any) -> int:
    """The largest id a column can hold."""
    return BIGINT_MAX if isinstance(column.type, BigInteger) else INT32_MAX


def int_arg(name: str, maximum: int = INT32_MAX) -> int | None:
    if name not in request.args:
        return None
    raw = request.args[name].strip()
    # Given but empty is an error, not "absent": the document says integer, and a client that
    # sends `after=` by mistake must not silently get the first page again.
    value = parse_id(raw, maximum)  # ASCII digits only: int() refuses "²", which isdigit() takes
    if value is None:
        msg = f"{name}: must be a whole number from 0 to {maximum}, got {raw[:40]!r}"
        raise bad_request(msg, name)
    return value


def limit_arg() -> int:
    value = int_arg("limit")
    if value is None:
        return DEFAULT_LIMIT
    if not 1 <= value <= MAX_LIMIT:
        raise bad_request(f"limit: must be 1 to {MAX_LIMIT}, got {value}", "limit")
    return value


def envelope(items: list[dict[str, Any]], next_cursor: int | None) -> dict[str, Any]:
    return {"items": items, "next": next_cursor}


def page(
    query: Select[Any],
    id_column: InstrumentedAttribute[int],
    to_dict: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """Keyset page in ascending id order after the `after` cursor: inserts never shift it."""
    limit, after = limit_arg(), int_arg("after", BIGINT_MAX)
    if after is not None and after >= id_limit(id_column):
        return envelope([], None)  # nothing can come after the largest id
    if after is not None:
        query = query.where(id_column > after)
    rows: Sequence[Any] = db.session.scalars(query.order_by(id_column).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return envelope([to_dict(r) for r in rows], rows[-1].id if more else None)


def json_body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise bad_request("body: must be a JSON object (Content-Type: application/json)")
    return data


def _absent(body: dict[str, Any], name: str, required: bool, nullable: bool) -> bool:
    """Whether the key is missing (allowed unless required); null only where documented."""
    if name not in body:
        if required:
            raise bad_request(f"{name}: required", name)
        return True
    if body[name] is None:
        if not nullable:
            raise bad_request(f"{name}: must not be null", name)
        return True
    return False


def text_field(
    body: dict[str, Any],
    name: str,
    *,
    required: bool = False,
    max_len: int = 255,
    nullable: bool = False,
) -> str | None:
    if _absent(body, name, required, nullable):
        return None
    value = body[name]
    if not isinstance(value, str):
        raise bad_request(f"{name}: must be a string", name)
    if len(value) > max_len:
        raise bad_request(f"{name}: at most {max_len} characters", name)
    return value


def int_field(
    body: dict[str, Any], name: str, *, required: bool = False, nullable: bool = False
) -> int | None:
    if _absent(body, name, required, nullable):
        return None
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT32_MAX:
        raise bad_request(f"{name}: must be a whole number from 0 to {INT32_MAX}", name)
    return value


def required_int(body: dict[str, Any], name: str) -> int:
    value = int_field(body, name, required=True)
    assert value is not None  # noqa: S101  (required, not nullable)
    return value


def bool_field(body: dict[str, Any], name: str) -> bool | None:
    if _absent(body, name, False, False):
        return None
    value = body[name]
    if not isinstance(value, bool):
        raise bad_request(f"{name}: must be true or false", name)
    return value


def str_map(body: dict[str, Any], name: str) -> dict[str, str]:
    """An object of string values (env, config, credential values); absent: {}."""
    if _absent(body, name, False, False):
        return {}
    value = body[name]
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise bad_request(f"{name}: must be an object of string values", name)
    return dict(value)


def str_list(body: dict[str, Any], name: str) -> list[str]:
    if _absent(body, name, False, False):
        return []
    value = body[name]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"{name}: must be a list of strings", name)
    return list(value)
