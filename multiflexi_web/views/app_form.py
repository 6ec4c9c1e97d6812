"""The application editor's form: rows in and out, the definition it makes, errors by input."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from multiflexi_web.models import Application, FieldType
from multiflexi_web.security.secrets import MASK
from multiflexi_web.services.catalogue.import_common import default_text, localized

FIELD_TYPES = [t.value for t in FieldType]
SEVERITIES = ["success", "info", "warning", "error", "critical"]
# Form input -> definition key, for the one-line inputs at the top of the form.
SCALARS = {
    "name": "name",
    "description": "description",
    "executable": "executable",
    "cmdparams": "cmdparams",
    "cmdparams_template": "cmdparamsTemplate",
    "version": "version",
    "homepage": "homepage",
    "ociimage": "ociimage",
}
ALWAYS = {"name", "description", "executable"}  # the schema requires them, even empty
ROW_INPUT = re.compile(r"^(field|artifact|exit)-(\d{1,4})-([a-z]+)$")
PLAIN_KEY = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")  # how jsonschema writes a key in a path


@dataclass
class FieldRow:
    key: str = ""
    type: str = FieldType.STRING.value
    description: str = ""
    default: str = ""
    required: bool = False
    secret: bool = False


@dataclass
class ArtifactRow:
    name: str = ""
    path: str = ""
    type: str = "file"
    description: str = ""


@dataclass
class ExitRow:
    code: str = ""
    description: str = ""
    severity: str = "error"
    retry: str = ""  # "", "yes" or "no"


@dataclass
class AppForm:
    values: dict[str, str] = field(default_factory=dict)
    tags: str = ""
    fields: list[FieldRow] = field(default_factory=list)
    artifacts: list[ArtifactRow] = field(default_factory=list)
    exits: list[ExitRow] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # mistakes in the rows themselves

    @classmethod
    def from_app(cls, app: Application) -> AppForm:
        form = cls(values={i: getattr(app, i) or "" for i in SCALARS}, tags=", ".join(app.tags))
        for f in sorted(app.fields, key=lambda f: (f.position, f.keyname)):
            default = MASK if f.secret and f.default else f.default or ""
            form.fields.append(
                FieldRow(f.keyname, f.type, f.description, default, f.required, f.secret)
            )
        for a in app.artifacts or []:
            texts = [localized(a.get(k))[0] for k in ("name", "path", "type", "description")]
            form.artifacts.append(ArtifactRow(*texts))
        for c in sorted(app.exit_codes, key=lambda c: c.code):
            retry = "" if c.retry is None else ("yes" if c.retry else "no")
            form.exits.append(ExitRow(str(c.code), c.description, c.severity, retry))
        return form

    @classmethod
    def from_request(cls, data: MultiDict[str, str]) -> AppForm:
        form = cls(values={i: data.get(i, "").strip() for i in SCALARS})
        form.tags = data.get("tags", "").strip()
        rows = _rows(data)
        for i in sorted(rows.get("field", {})):
            form._add_field(rows["field"][i])
        for i in sorted(rows.get("artifact", {})):
            form._add_artifact(rows["artifact"][i])
        for i in sorted(rows.get("exit", {})):
            form._add_exit(rows["exit"][i])
        return form

    def _add_field(self, r: dict[str, str]) -> None:
        ftype = r.get("type") or FieldType.STRING.value  # the importer's default too
        row = FieldRow(r.get("key", ""), ftype, r.get("description", ""))
        row.default, row.required, row.secret = (
            r.get("default", ""),
            _on(r, "required"),
            _on(r, "secret"),
        )
        if _on(r, "remove") or not (row.key or row.description or row.default):
            return
        i = len(self.fields)
        self.fields.append(row)
        if not row.key:
            self.problems[f"field-{i}-key"] = "a field needs a key (or tick Remove)"
        elif any(f.key == row.key for f in self.fields[:i]):
            self.problems[f"field-{i}-key"] = f"{row.key} is given twice"

    def _add_artifact(self, r: dict[str, str]) -> None:
        row = ArtifactRow(r.get("name", ""), r.get("path", ""), r.get("type", ""))
        row.description = r.get("description", "")
        if _on(r, "remove") or not (row.name or row.path or row.description):
            return
        self.artifacts.append(row)

    def _add_exit(self, r: dict[str, str]) -> None:
        severity = r.get("severity") or "error"  # the importer's default too
        row = ExitRow(r.get("code", ""), r.get("description", ""), severity)
        row.retry = r.get("retry", "")
        if _on(r, "remove") or not (row.code or row.description):
            return
        i = len(self.exits)
        self.exits.append(row)
        if any(e.code == row.code for e in self.exits[:i]):
            self.problems[f"exit-{i}-code"] = f"exit code {row.code} is given twice"

    def document(self, base: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """The definition this form makes on top of `base` (keys the form does not show stay),
        and which input each JSON path belongs to."""
        doc, inputs = dict(base), {"$.environment": "fields", "$.artifacts": "artifacts"}
        inputs["$.exitCodes"] = "exits"
        for name, key in SCALARS.items():
            inputs[f"$.{key}"] = name
            value = self.values.get(name, "")
            if value or name in ALWAYS or (key in base and _keep(base[key], value) is base[key]):
                doc[key] = _keep(base.get(key), value)
            else:
                doc.pop(key, None)
        tags = [t.strip() for t in self.tags.split(",") if t.strip()]
        inputs["$.tags"] = "tags"
        _put(doc, "tags", tags)
        doc["environment"] = self._environment(base.get("environment") or {}, inputs)
        _put(doc, "artifacts", self._artifacts(base.get("artifacts") or [], inputs))
        _put(doc, "exitCodes", self._exit_codes(base.get("exitCodes") or {}, inputs))
        return doc, inputs

    def _environment(self, base: dict[str, Any], inputs: dict[str, str]) -> dict[str, Any]:
        env: dict[str, Any] = {}
        for i, row in enumerate(self.fields):
            spec = dict(base.get(row.key) or {})  # options, hint, category... stay
            spec["type"] = row.type
            spec["description"] = _keep(spec.get("description"), row.description)
            # A secret default is never shown: the mask keeps the stored one (or none); an
            # unchanged text keeps the stored value with its JSON type ("", true, 5).
            if row.default != MASK and default_text(spec.get("defval")) != row.default:
                spec["defval"] = row.default
                if not row.default:
                    del spec["defval"]
            spec["required"] = row.required
            spec.pop("secret", None)
            if row.secret and row.type != FieldType.PASSWORD.value:
                spec["secret"] = True
            env[row.key] = spec
            _map(inputs, "$.environment", row.key, f"field-{i}", "key")
            for part, name in (("defval", "default"), ("type", "type"), ("required", "required")):
                _map(inputs, "$.environment", row.key, f"field-{i}", name, part)
            for part in ("description", "secret"):
                _map(inputs, "$.environment", row.key, f"field-{i}", part, part)
        return env

    def _artifacts(self, base: list[Any], inputs: dict[str, str]) -> list[dict[str, Any]]:
        out = []
        for i, row in enumerate(self.artifacts):
            old = base[i] if i < len(base) and isinstance(base[i], dict) else {}
            art: dict[str, Any] = {"name": _keep(old.get("name"), row.name), "path": row.path}
            art["type"] = row.type
            if row.description:
                art["description"] = _keep(old.get("description"), row.description)
            out.append(art)
            inputs[f"$.artifacts[{i}]"] = f"artifact-{i}-name"
            for part in ("name", "path", "type", "description"):
                inputs[f"$.artifacts[{i}].{part}"] = f"artifact-{i}-{part}"
        return out

    def _exit_codes(self, base: dict[str, Any], inputs: dict[str, str]) -> dict[str, Any]:
        codes: dict[str, Any] = {}
        for i, row in enumerate(self.exits):
            old = base.get(row.code) or {}
            spec: dict[str, Any] = {"description": _keep(old.get("description"), row.description)}
            spec["severity"] = row.severity
            if row.retry:
                spec["retry"] = row.retry == "yes"
            codes[row.code] = spec
            _map(inputs, "$.exitCodes", row.code, f"exit-{i}", "code")
            for part in ("description", "severity", "retry"):
                _map(inputs, "$.exitCodes", row.code, f"exit-{i}", part, part)
        return codes

    def row_keys(self) -> dict[str, str]:
        """Row key -> its key input, to place errors about a key (named in the reason)."""
        keys = {f"'{r.key}'": f"field-{i}-key" for i, r in enumerate(self.fields) if r.key}
        keys.update({f"'{r.code}'": f"exit-{i}-code" for i, r in enumerate(self.exits)})
        return keys


def errors_by_input(
    problems: list[tuple[str, str]], inputs: dict[str, str], row_keys: dict[str, str]
) -> dict[str, str]:
    """Each (JSON path, reason) beside the input it is about; the rest on the whole form."""
    errors: dict[str, str] = {}
    for path, reason in problems:
        name = _input_for(path, inputs)
        if name in {"fields", "exits"}:  # a bad key: the reason quotes it
            name = next((n for k, n in row_keys.items() if k in reason), name)
        errors.setdefault(name or "_form", reason if name else f"{path}: {reason}")
    return errors


def _input_for(path: str, inputs: dict[str, str]) -> str | None:
    best = ""
    for known in inputs:
        rest = path[len(known) :]
        if path.startswith(known) and rest[:1] in {"", ".", "["} and len(known) > len(best):
            best = known
    return inputs.get(best)


def _map(
    inputs: dict[str, str], parent: str, key: str, row: str, name: str, part: str = ""
) -> None:
    """Register the input for parent.key(.part), in the importer's and jsonschema's spellings."""
    quoted = key.replace("\\", "\\\\").replace("'", "\\'")
    spellings = {f"{parent}.{key}", f"{parent}['{quoted}']"}
    if PLAIN_KEY.match(key):
        spellings = {f"{parent}.{key}"}
    for path in spellings:
        inputs[f"{path}.{part}" if part else path] = f"{row}-{name}"


def _rows(data: MultiDict[str, str]) -> dict[str, dict[int, dict[str, str]]]:
    rows: dict[str, dict[int, dict[str, str]]] = {}
    for name, value in data.items(multi=False):
        m = ROW_INPUT.match(name)
        if m:
            kind, index, part = m.group(1), int(m.group(2)), m.group(3)
            rows.setdefault(kind, {}).setdefault(index, {})[part] = value.strip()
    return rows


def _on(row: dict[str, str], name: str) -> bool:
    return row.get(name) in {"1", "on", "yes", "true"}


def _keep(original: Any, text: str) -> Any:
    """The stored (maybe localized) value while the form still shows its text."""
    return original if original is not None and localized(original)[0] == text else text


def _put(doc: dict[str, Any], key: str, value: Any) -> None:
    if value:
        doc[key] = value
    else:
        doc.pop(key, None)
