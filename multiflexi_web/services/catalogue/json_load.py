"""Reading MultiFlexi JSON files: size cap, UTF-8, parse errors with positions, schema checks."""

from __future__ import annotations

import codecs
import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_REASONS = 5
MAX_MESSAGE = 240
# Draft 7's own checker does not know "uuid"; upstream's schemas use it for identities.
FORMAT_CHECKER = FormatChecker(formats=[*Draft7Validator.FORMAT_CHECKER.checkers, "uuid"])


class FileImportError(ValueError):
    """A file could not be read, parsed, validated or stored; the message names file and reason."""


def read_json_file(path: Path, max_bytes: int = MAX_FILE_BYTES) -> dict[str, Any]:
    """The JSON object in a file; FileImportError when it is missing, too big or not JSON."""
    try:
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise FileImportError(f"{path}: no such file") from None
    except OSError as exc:
        raise FileImportError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    return parse_json_bytes(str(path), data, max_bytes)


def parse_json_bytes(name: str, data: bytes, max_bytes: int = MAX_FILE_BYTES) -> dict[str, Any]:
    """Parse UTF-8 JSON whose top level must be an object; errors give line and column."""
    if len(data) > max_bytes:
        raise FileImportError(
            f"{name}: file is larger than the {_size(max_bytes)} limit; "
            "a MultiFlexi definition is a few kilobytes"
        )
    text = _decode(name, data)
    if not text.strip():
        raise FileImportError(f"{name}: the file is empty")
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        hint = " (trailing comma?)" if _after_comma(exc) else ""
        raise FileImportError(
            f"{name}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}{hint}"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise FileImportError(f"{name}: invalid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise FileImportError(f"{name}: the top level must be a JSON object, not {_kind(doc)}")
    return doc


def _decode(name: str, data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise FileImportError(
            f"{name}: not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line}, "
            f"column {column} (offset {exc.start}); save the file as UTF-8"
        ) from None


def _reject_constant(word: str) -> Any:
    raise ValueError(f"{word} is not allowed in JSON")


def _after_comma(exc: json.JSONDecodeError) -> bool:
    before = exc.doc[: exc.pos].rstrip()
    return before.endswith(",") and exc.doc[exc.pos : exc.pos + 1] in {"}", "]"}


def _kind(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number"}
    return "null" if value is None else names.get(type(value), "a number")


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB" if n >= 1024 * 1024 else f"{n} bytes"


@cache
def load_schema(name: str) -> dict[str, Any]:
    """One of the bundled schemas (application, credential-prototype, ...), parsed once."""
    schema: dict[str, Any] = json.loads(
        (SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8")
    )
    return schema


def schema_copy(name: str) -> dict[str, Any]:
    """A private deep copy of a bundled schema, to extend with this importer's tolerances."""
    return copy.deepcopy(load_schema(name))


def make_validator(schema: dict[str, Any]) -> Draft7Validator:
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, format_checker=FORMAT_CHECKER)


def schema_problems(doc: dict[str, Any], validator: Draft7Validator) -> list[tuple[str, str]]:
    """Every (JSON path, reason) the schema finds in `doc`, by path; the portal's app form
    shows them beside its inputs, the importers in one message."""
    errors = sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    return [(e.json_path, _reason(e)) for e in errors]


def validate(name: str, doc: dict[str, Any], validator: Draft7Validator, what: str) -> None:
    """Raise FileImportError listing the failing JSON paths and reasons, if any."""
    problems = schema_problems(doc, validator)
    if not problems:
        return
    reasons = [f"{path}: {reason}" for path, reason in problems[:MAX_REASONS]]
    more = f" (and {len(problems) - MAX_REASONS} more)" if len(problems) > MAX_REASONS else ""
    raise FileImportError(f"{name}: not a valid {what}: " + "; ".join(reasons) + more)


def _reason(error: ValidationError) -> str:
    # oneOf/anyOf failures say only "not valid under any of the given schemas": use the reason
    # from the alternative of the right JSON type (an object with a bad key, not "not a string").
    if error.context:
        inner = best_match([e for e in error.context if e.validator != "type"] or error.context)
        if inner is not None:
            error = inner
    message = error.message
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."
