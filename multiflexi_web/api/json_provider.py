"""Request bodies parsed as JSON: a nesting too deep for the parser is bad JSON, not a 500."""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider


class BoundedJSON(DefaultJSONProvider):
    """`"[" * 100000` makes json.loads raise RecursionError, which request.get_json(silent=True)
    does not catch (only ValueError): every JSON endpoint answered such a body with a 500.
    Raised as ValueError, it is refused as any malformed body is (400)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
