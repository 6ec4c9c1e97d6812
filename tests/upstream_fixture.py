"""An upstream (PHP) MultiFlexi database, built as upstream's final schema has it
(reference/multiflexi-upstream.md §1) and filled the way upstream fills it: real app files from
shared/multiflexi, credentials encrypted as upstream's DataEncryption does, bcrypt and legacy
md5 password hashes, PHP-serialised action maps, jobs with output lines and artifacts.

Written independently of the importer (its own encryption, its own DDL), so a test that imports
it checks the importer against upstream's formats, not against itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    insert,
)

from tests.services import upstream_files

ZONE = ZoneInfo("Europe/Prague")
MASTER_KEY = "upstream-master-key-from-multiflexi.env"
USER_PASSWORD = "Upstream-Pass1"
LEGACY_PASSWORD = "old-md5-pass"
ABRAFLEXI_PASSWORD = "abra-secret-42"
APPS = ("abraflexi_transaction_report.multiflexi.app.json", "mtr.multiflexi.app.json")
APPS += ("probe.multiflexi.app.json",)

meta = MetaData()


def _id() -> Column[int]:
    return Column("id", Integer, primary_key=True, autoincrement=True)


def _dt(name: str) -> Column[datetime]:
    return Column(name, DateTime, nullable=True)


Table(
    "company", meta, _id(), Column("enabled", Boolean, default=False),
    Column("settings", Text), Column("logo", Text), Column("server", Integer, default=0),
    Column("name", String(32)), Column("ic", String(32)), Column("setup", Boolean),
    _dt("DatCreate"), _dt("DatUpdate"), Column("customer", Integer), Column("email", String(64)),
    Column("slug", String(10), nullable=False, default=""), Column("zabbix_host", String(255)),
)  # fmt: skip
Table(
    "companyenv", meta, _id(), Column("keyword", String(255)), Column("value", String(255)),
    Column("company_id", Integer),
)  # fmt: skip
Table(
    "apps", meta, _id(), Column("enabled", Boolean), Column("image", Text),
    Column("name", String(64)), Column("description", String(255)),
    Column("executable", String(255)), _dt("DatCreate"), _dt("DatUpdate"),
    Column("setup", String(256)), Column("cmdparams", String(256)), Column("deploy", String(255)),
    Column("homepage", String(255)), Column("requirements", String(255)),
    Column("ociimage", String(255)), Column("version", String(255)), Column("code", String(8)),
    Column("uuid", String(36)), Column("tags", Text), Column("resultfile", String(255)),
    Column("artifacts", String(255)), Column("deffile", String(255)),
    Column("helmchart", String(255)),
)  # fmt: skip
Table(
    "conffield", meta, _id(), Column("app_id", Integer), Column("keyname", String(64)),
    Column("type", String(32)), Column("category", String(32)),
    Column("description", String(1024)), Column("hint", String(1024)),
    Column("note", String(1024)), Column("defval", String(256)), Column("required", Boolean),
    Column("secret", Boolean), Column("multiline", Boolean), Column("expiring", Boolean),
)  # fmt: skip
Table(
    "app_exit_codes", meta, _id(), Column("app_id", Integer), Column("exit_code", Integer),
    Column("lang", String(5)), Column("description", Text), Column("severity", String(16)),
    Column("retry", Boolean), _dt("DatCreate"), _dt("DatSave"),
)  # fmt: skip
Table(
    "app_artifacts", meta, _id(), Column("app_id", Integer), Column("path", String(512)),
    Column("type", String(128)), _dt("created"),
)  # fmt: skip
Table(
    "app_artifact_translations", meta, _id(), Column("app_artifact_id", Integer),
    Column("lang", String(5)), Column("name", String(255)), Column("description", Text),
    Column("hint", Text),
)  # fmt: skip
Table(
    "app_translations", meta, _id(), Column("app_id", Integer), Column("lang", String(5)),
    Column("name", String(255)), Column("title", String(255)), Column("description", Text),
)  # fmt: skip
Table(
    "app_produces", meta, _id(), Column("app_id", Integer), Column("name", String(128)),
    Column("format", String(16)), Column("description_json", Text),
    Column("patterns_json", Text), Column("fields_json", Text),
)  # fmt: skip
Table(
    "app_consumes", meta, _id(), Column("app_id", Integer), Column("name", String(128)),
    Column("format", String(16)), Column("description_json", Text), Column("required", Boolean),
    Column("target_env_key", String(128)), Column("fields_json", Text),
)  # fmt: skip
Table(
    "credential_prototype", meta, _id(), Column("uuid", String(36)), Column("code", String(64)),
    Column("name", String(255)), Column("description", Text), Column("version", String(20)),
    Column("url", String(255)), Column("homepage", String(255)), Column("tags", Text),
    Column("logo", String(255)), _dt("created_at"), _dt("updated_at"),
)  # fmt: skip
Table(
    "credential_prototype_field", meta, _id(), Column("credential_prototype_id", Integer),
    Column("keyword", String(64)), Column("type", String(32)), Column("name", String(255)),
    Column("description", Text), Column("hint", String(256)),
    Column("default_value", String(256)), Column("required", Boolean), Column("options", Text),
)  # fmt: skip
Table(
    "credential_type", meta, _id(), Column("name", String(255)), Column("url", String(255)),
    Column("logo", String(255)), Column("uuid", String(40)), Column("prototype", String(255)),
    Column("company_id", Integer), Column("version", String(20)),
)  # fmt: skip
Table(
    "crtypefield", meta, _id(), Column("credential_type_id", Integer),
    Column("keyname", String(64)), Column("type", String(32)),
    Column("description", String(1024)), Column("hint", String(256)),
    Column("defval", String(256)), Column("required", Boolean), Column("helper", String(255)),
)  # fmt: skip
Table(
    "credentials", meta, _id(), Column("name", String(255)), Column("company_id", Integer),
    Column("formType", String(255)), Column("credential_type_id", Integer),
)  # fmt: skip
Table(
    "credata", meta, _id(), Column("credential_id", Integer), Column("name", String(255)),
    Column("value", Text), Column("type", String(255)), Column("is_encrypted", Boolean),
    Column("encryption_key_version", Integer),
)  # fmt: skip
Table(
    "encryption_keys", meta, _id(), Column("key_name", String(50)), Column("version", Integer),
    Column("key_data", Text), Column("algorithm", String(50)), _dt("created_at"),
    _dt("rotated_at"), Column("is_active", Boolean),
)  # fmt: skip
Table(
    "user", meta, _id(), Column("enabled", Boolean), Column("settings", Text),
    Column("email", String(128)), Column("firstname", String(32)), Column("lastname", String(32)),
    Column("password", String(255)), Column("login", String(32)), _dt("DatCreate"),
    _dt("DatSave"), _dt("last_login_at"),
)  # fmt: skip
Table(
    "user_roles", meta, _id(), Column("name", String(64)), Column("description", Text),
    Column("permissions", Text),
)  # fmt: skip
Table(
    "user_role_assignments", meta, _id(), Column("user_id", Integer), Column("role_id", Integer),
    Column("assigned_by", Integer), _dt("assigned_at"), _dt("expires_at"),
)  # fmt: skip
Table(
    "company_user", meta, _id(), Column("company_id", Integer), Column("user_id", Integer),
    Column("role", String(32)), _dt("created_at"),
)  # fmt: skip
Table(
    "runtemplate", meta, _id(), Column("app_id", Integer), Column("company_id", Integer),
    Column("name", String(250)), Column("interv", String(1)), Column("cron", String(64)),
    Column("delay", Integer), Column("executor", String(255)), Column("active", Boolean),
    Column("prepared", Boolean), Column("success", String(250)), Column("fail", String(250)),
    _dt("last_schedule"), _dt("next_schedule"), Column("note", Text), _dt("DatCreate"),
    _dt("DatSave"), Column("successfull_jobs_count", Integer),
    Column("failed_jobs_count", Integer), Column("deadline_offset", String(32)),
    Column("max_attempts", Integer), Column("retry_backoff", String(16)),
    Column("retry_min_gap", Integer), Column("allow_late", Boolean),
)  # fmt: skip
Table(
    "configuration", meta, _id(), Column("app_id", Integer), Column("company_id", Integer),
    Column("runtemplate_id", Integer), Column("name", String(64)), Column("value", String(1024)),
    Column("config_type", String(32)),
)  # fmt: skip
Table(
    "runtplcreds", meta, _id(), Column("runtemplate_id", Integer),
    Column("credentials_id", Integer),
)  # fmt: skip
Table(
    "actionconfig", meta, _id(), Column("module", String(64)), Column("keyname", String(64)),
    Column("value", String(1024)), Column("mode", String(8)), Column("runtemplate_id", Integer),
)  # fmt: skip
Table(
    "modconfig", meta, _id(), Column("name", String(64)), Column("module", String(64)),
    Column("cfg", String(64)), Column("value", String(1024)), _dt("DatSave"),
)  # fmt: skip
Table("topic", meta, _id(), Column("topic", String(255)), Column("color", String(7)))
Table(
    "runtemplate_topics", meta, _id(), Column("runtemplate_id", Integer),
    Column("topic_id", Integer),
)  # fmt: skip
Table(
    "event_source", meta, _id(), Column("name", String(255)), Column("adapter_type", String(60)),
    Column("db_connection", String(10)), Column("db_host", String(255)),
    Column("db_port", String(10)), Column("db_database", String(255)),
    Column("db_username", String(255)), Column("db_password", String(255)),
    Column("enabled", Boolean), Column("last_processed_id", Integer),
    Column("poll_interval", Integer), _dt("created"), _dt("modified"),
)  # fmt: skip
Table(
    "event_rule", meta, _id(), Column("event_source_id", Integer),
    Column("runtemplate_source_id", Integer), Column("evidence", String(60)),
    Column("operation", String(10)), Column("runtemplate_id", Integer),
    Column("env_mapping", Text), Column("enabled", Boolean), Column("priority", Integer),
    _dt("created"), _dt("modified"),
)  # fmt: skip
Table(
    "job", meta, _id(), Column("app_id", Integer), Column("company_id", Integer),
    Column("runtemplate_id", Integer), Column("task_id", Integer), _dt("schedule"),
    Column("schedule_type", String(32)), Column("executor", String(255)), Column("env", Text),
    Column("command", Text), _dt("begin"), _dt("end"), Column("exitcode", Integer),
    Column("pid", Integer), Column("launched_by", Integer), Column("app_version", String(255)),
)  # fmt: skip
Table(
    "job_output_lines", meta, _id(), Column("job_id", Integer), Column("seq", Integer),
    Column("type", String(16)), Column("line", Text), _dt("created_at"),
)  # fmt: skip
Table(
    "artifacts", meta, _id(), Column("job_id", Integer), Column("filename", String(255)),
    Column("content_type", String(255)), Column("artifact", LargeBinary),
    Column("note", String(255)), _dt("created_at"),
)  # fmt: skip
Table("schedule", meta, _id(), _dt("after"), Column("job", Integer))
Table(
    "token", meta, _id(), Column("token", String(64)), _dt("start"), _dt("until"),
    Column("user_id", Integer),
)  # fmt: skip


# --- upstream's encryption (MultiFlexi\Security\DataEncryption), written out again ---------


def wrap_key(master_text: str, data_key: bytes) -> str:
    master = hashlib.sha256(master_text.encode()).digest()
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(data_key) + padder.finalize()
    enc = Cipher(algorithms.AES(master), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + enc.update(padded) + enc.finalize()).decode()


def envelope(data_key: bytes, plain: str, key_name: str = "credentials", version: int = 1) -> str:
    iv = os.urandom(12)
    sealed = AESGCM(data_key).encrypt(iv, plain.encode(), None)
    return json.dumps(
        {
            "ciphertext": base64.b64encode(sealed[:-16]).decode(),
            "iv": base64.b64encode(iv).decode(),
            "tag": base64.b64encode(sealed[-16:]).decode(),
            "algorithm": "AES-256-GCM",
            "key_name": key_name,
            "encrypted_at": 1767225600,
            "key_version": version,
        }
    )


def php_bcrypt(password: str) -> str:
    """password_hash(PASSWORD_BCRYPT): PHP writes the $2y$ prefix."""
    import bcrypt  # a dependency of the platform; imported here so collection never needs it

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return "$2y$" + hashed[4:]


def php_md5(password: str, salt: str = "a1") -> str:
    return hashlib.md5((salt + password).encode()).hexdigest() + ":" + salt  # noqa: S324


def php_serialize(flags: dict[str, bool]) -> str:
    body = "".join(f's:{len(k.encode())}:"{k}";b:{int(v)};' for k, v in flags.items())
    return f"a:{len(flags)}:{{{body}}}"


# --- content ------------------------------------------------------------------------------


@dataclass
class Upstream:
    """What the fixture put in, for the tests' expectations."""

    url: str
    now: datetime  # local naive "now" the fixture wrote times around
    next_schedule: datetime  # runtemplate 1's queued slot (local naive)
    app_ids: dict[str, int] = field(default_factory=dict)  # app uuid -> upstream id
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _en(value: Any) -> str:
    return str(value.get("en") or next(iter(value.values()))) if isinstance(value, dict) else value


def _app_rows(doc: dict[str, Any], app_id: int) -> dict[str, list[dict[str, Any]]]:
    """One app file as upstream's application:import-json writes it (reference §12)."""
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in ("conffield", "app_exit_codes")}
    out |= {k: [] for k in ("app_translations", "app_produces", "app_artifacts")}
    out["apps"] = [
        {
            "id": app_id, "enabled": True, "image": "data:image/svg+xml;base64,PHN2Zy8+",
            "name": _en(doc["name"])[:64], "description": _en(doc.get("description", ""))[:255],
            "executable": doc["executable"], "cmdparams": doc.get("cmdparams"),
            "setup": doc.get("setup"), "deploy": doc.get("deploy"),
            "homepage": doc.get("homepage"),
            "requirements": ",".join(doc.get("requirements") or []),
            "ociimage": doc.get("ociimage") or "", "version": doc.get("version") or "",
            "uuid": doc.get("uuid"), "tags": ",".join(doc.get("tags") or []),
            "code": doc["executable"].split("/")[-1][:8].upper(),
            "artifacts": ",".join(a["path"] for a in doc.get("artifacts") or []),
        }
    ]  # fmt: skip
    if isinstance(doc["name"], dict):
        for lang, text in doc["name"].items():
            if lang != "en":
                desc = doc.get("description")
                out["app_translations"].append(
                    {"app_id": app_id, "lang": lang, "name": text,
                     "description": desc.get(lang) if isinstance(desc, dict) else None}
                )  # fmt: skip
    for key, spec in doc["environment"].items():
        defval = spec.get("defval")
        if isinstance(defval, bool):
            defval = "1" if defval else "0"
        out["conffield"].append(
            {"app_id": app_id, "keyname": key, "type": spec.get("type", "string"),
             "description": _en(spec.get("description", ""))[:1024],
             "hint": _en(spec.get("hint", "")), "category": spec.get("category", ""),
             "defval": None if defval is None else str(defval),
             "required": bool(spec.get("required")),
             "secret": spec.get("type") == "password", "multiline": spec.get("type") == "text",
             "expiring": False}
        )  # fmt: skip
    for code, spec in (doc.get("exitCodes") or {}).items():
        desc = spec["description"]
        for lang, text in (desc if isinstance(desc, dict) else {"en": desc}).items():
            out["app_exit_codes"].append(
                {"app_id": app_id, "exit_code": int(code), "lang": lang, "description": text,
                 "severity": spec.get("severity", "error"), "retry": bool(spec.get("retry"))}
            )  # fmt: skip
    for name, spec in (doc.get("produces") or {}).items():
        out["app_produces"].append(
            {"app_id": app_id, "name": name, "format": spec["format"],
             "description_json": json.dumps(spec.get("description")),
             "patterns_json": json.dumps(spec.get("patterns") or []),
             "fields_json": json.dumps(spec.get("fields") or {})}
        )  # fmt: skip
    for art in doc.get("artifacts") or []:
        out["app_artifacts"].append({"app_id": app_id, "path": art["path"], "type": art["type"]})
    return out


def content(now: datetime) -> tuple[dict[str, list[dict[str, Any]]], datetime]:
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in meta.tables}
    files = upstream_files()
    for i, name in enumerate(APPS, 1):
        doc = json.loads((files / "apps" / name).read_text())
        for table, found in _app_rows(doc, i).items():
            rows[table] += found
    proto = json.loads((files / "credentials" / "abraflexi.credprototype.json").read_text())
    rows["credential_prototype"].append(
        {"id": 1, "uuid": proto["uuid"], "code": proto["code"], "name": _en(proto["name"]),
         "description": _en(proto["description"]), "version": proto["version"],
         "homepage": proto.get("homepage"), "tags": ",".join(proto.get("tags") or []),
         "logo": proto.get("logo")}
    )  # fmt: skip
    for f in proto["fields"]:
        rows["credential_prototype_field"].append(
            {"credential_prototype_id": 1, "keyword": f["keyword"], "type": f["type"],
             "name": _en(f.get("name", "")), "description": _en(f.get("description", "")),
             "required": bool(f.get("required")),
             "default_value": f.get("default_value") or f.get("default")}
        )  # fmt: skip
    rows["company"] += [
        {"id": 1, "enabled": True, "name": "Vitex Software", "slug": "VS", "ic": "69438676",
         "email": "info@vitexsoftware.cz", "logo": "", "zabbix_host": "vs.zabbix"},
        {"id": 2, "enabled": False, "name": "Spoje.Net s.r.o.", "slug": ""},
    ]  # fmt: skip
    rows["companyenv"] += [
        {"company_id": 1, "keyword": "ABRAFLEXI_BANK", "value": "code:BANKOVNI UCET"},
        {"company_id": 1, "keyword": "EASE_LOGGER", "value": "syslog"},
        {"company_id": 1, "keyword": "COMPANY_API_TOKEN", "value": "tok-company-1"},
        {"company_id": 1, "keyword": "LD_PRELOAD", "value": "/tmp/evil.so"},
    ]  # fmt: skip
    data_key = secrets.token_bytes(32)
    rows["encryption_keys"] += [
        {"key_name": "credentials", "version": 1, "algorithm": "AES-256-GCM", "is_active": True,
         "key_data": wrap_key(MASTER_KEY, data_key)},
        {"key_name": "default", "version": 1, "algorithm": "AES-256-GCM", "is_active": True,
         "key_data": wrap_key(MASTER_KEY, secrets.token_bytes(32))},
    ]  # fmt: skip
    rows["credential_type"] += [
        {"id": 1, "name": "AbraFlexi demo", "uuid": "b5e1c1b0-0000-4000-8000-000000000001",
         "prototype": "AbraFlexi", "company_id": 1, "version": "1.0"},
        {"id": 2, "name": "Raiffeisen", "uuid": "b5e1c1b0-0000-4000-8000-000000000002",
         "prototype": "RaiffeisenBank", "company_id": 1, "version": "1.0"},
    ]  # fmt: skip
    rows["crtypefield"] += [
        {"credential_type_id": 2, "keyname": "CERT_FILE", "type": "file-path", "required": True},
        {"credential_type_id": 2, "keyname": "CERT_PASS", "type": "password", "required": True},
        {"credential_type_id": 2, "keyname": "XIBMCLIENTID", "type": "string", "required": True},
    ]  # fmt: skip
    rows["credentials"] += [
        {"id": 1, "name": "Demo AbraFlexi", "company_id": 1, "credential_type_id": 1,
         "formType": "AbraFlexi"},
        {"id": 2, "name": "Damaged", "company_id": 1, "credential_type_id": 1,
         "formType": "AbraFlexi"},
    ]  # fmt: skip
    broken = json.loads(envelope(data_key, "whatever"))
    broken["tag"] = base64.b64encode(b"\0" * 16).decode()
    rows["credata"] += [
        {"credential_id": 1, "name": "ABRAFLEXI_URL", "type": "url", "is_encrypted": False,
         "value": "https://demo.flexibee.eu:5434"},
        {"credential_id": 1, "name": "ABRAFLEXI_LOGIN", "type": "string", "is_encrypted": False,
         "value": "winstrom"},
        {"credential_id": 1, "name": "ABRAFLEXI_PASSWORD", "type": "password",
         "is_encrypted": True, "encryption_key_version": 1,
         "value": envelope(data_key, ABRAFLEXI_PASSWORD)},
        {"credential_id": 1, "name": "ABRAFLEXI_COMPANY", "type": "string", "is_encrypted": False,
         "value": "demo_de"},
        {"credential_id": 2, "name": "ABRAFLEXI_PASSWORD", "type": "password",
         "is_encrypted": True, "encryption_key_version": 1, "value": json.dumps(broken)},
    ]  # fmt: skip
    rows["user"] += [
        {"id": 1, "enabled": True, "login": "vitex", "email": "vitex@example.com",
         "firstname": "Vítězslav", "lastname": "Dvořák", "password": php_bcrypt(USER_PASSWORD)},
        {"id": 2, "enabled": True, "login": "oldtimer", "password": php_md5(LEGACY_PASSWORD)},
        {"id": 3, "enabled": False, "login": "multiflexi", "password": ""},
    ]  # fmt: skip
    rows["user_roles"] += [{"id": 1, "name": "admin"}, {"id": 2, "name": "viewer"}]
    rows["user_role_assignments"] += [{"user_id": 1, "role_id": 1}]
    rows["company_user"] += [
        {"company_id": 1, "user_id": 1, "role": "admin"},
        {"company_id": 2, "user_id": 2, "role": "viewer"},
        {"company_id": 1, "user_id": 2, "role": "superhero"},
    ]  # fmt: skip
    tomorrow = (now + timedelta(days=1)).replace(hour=2, minute=0, second=0, microsecond=0)
    rows["runtemplate"] += [
        {"id": 1, "app_id": 1, "company_id": 1, "name": "Daily transaction report",
         "interv": "d", "delay": 7200, "executor": "Native", "active": True,
         "success": php_serialize({"WebHook": True, "ChainRuntemplate": True}),
         "fail": php_serialize({"Stop": True, "Sleep": True, "Github": False}),
         "next_schedule": tomorrow, "last_schedule": tomorrow - timedelta(days=1),
         "successfull_jobs_count": 41, "failed_jobs_count": 2, "max_attempts": 3,
         "retry_backoff": "linear", "retry_min_gap": 60, "note": "<p>bank report</p>",
         "deadline_offset": "+3h"},
        {"id": 2, "app_id": 2, "company_id": 1, "name": "mtr to zabbix", "interv": "c",
         "cron": "*/5 * * * *", "delay": 0, "executor": "Native", "active": True,
         "success": "", "fail": None},
        {"id": 3, "app_id": 3, "company_id": 2, "name": "probe", "interv": "h", "delay": 0,
         "executor": "Fancy", "active": True},
        {"id": 4, "app_id": 2, "company_id": 2, "name": "mtr manual", "interv": "n", "delay": 0,
         "executor": "Native", "active": False, "success": "a:1:{s:7:\"WebHook\";b:1;",
         "fail": ""},
        {"id": 5, "app_id": 2, "company_id": 1, "name": "mtr hourly", "interv": "h",
         "delay": 0, "executor": "Native", "active": True,
         "next_schedule": (now - timedelta(days=3)).replace(minute=0, second=0)},
    ]  # fmt: skip
    rows["configuration"] += [
        {"runtemplate_id": 1, "app_id": 1, "company_id": 1, "name": "ABRAFLEXI_BANK",
         "value": "code:RB"},
        {"runtemplate_id": 1, "app_id": 1, "company_id": 1, "name": "LANG", "value": "cs_CZ"},
        {"runtemplate_id": 2, "app_id": 2, "company_id": 1, "name": "MTR_DESTINATION",
         "value": "vitexsoftware.com"},
    ]  # fmt: skip
    rows["runtplcreds"] += [
        {"runtemplate_id": 1, "credentials_id": 1},
        {"runtemplate_id": 2, "credentials_id": 2},
    ]  # fmt: skip
    rows["actionconfig"] += [
        {"module": "WebHook", "keyname": "uri", "value": "https://hooks.example.com/mf",
         "mode": "success", "runtemplate_id": 1},
        {"module": "Github", "keyname": "token", "value": "ghp_upstreamtoken", "mode": "fail",
         "runtemplate_id": 1},
        {"module": "ChainRuntemplate", "keyname": "rtid", "value": "2", "mode": "success",
         "runtemplate_id": 1},
    ]  # fmt: skip
    rows["modconfig"] += [{"module": "Zabbix", "cfg": "key", "value": "mf-data", "name": "x"}]
    rows["topic"] += [{"id": 1, "topic": "banking", "color": "#00ff00"}]
    rows["runtemplate_topics"] += [{"runtemplate_id": 1, "topic_id": 1}]
    rows["event_source"] += [
        {"id": 1, "name": "AbraFlexi webhooks", "adapter_type": "abraflexi-webhook",
         "db_connection": "mysql", "db_host": "db.example", "db_port": "3306",
         "db_database": "webhooks", "db_username": "hook", "db_password": "hookpw",
         "enabled": True, "last_processed_id": 1234, "poll_interval": 45},
    ]  # fmt: skip
    rows["event_rule"] += [
        {"event_source_id": 1, "evidence": "banka", "operation": "create", "runtemplate_id": 1,
         "env_mapping": json.dumps({"DOCUMENTID": "recordid"}), "enabled": True, "priority": 5},
        {"event_source_id": 1, "evidence": "faktura-vydana", "operation": "any",
         "runtemplate_id": 1, "env_mapping": "{DOCUMENTID: recordid", "enabled": True},
    ]  # fmt: skip
    started = now - timedelta(hours=3)
    rows["job"] += [
        {"id": 1, "app_id": 1, "company_id": 1, "runtemplate_id": 1, "schedule": started,
         "schedule_type": "daily", "executor": "Native", "command": "abraflexi-transaction-report",
         "begin": started, "end": started + timedelta(seconds=12), "exitcode": 0, "pid": 4242,
         "launched_by": 3, "app_version": "1.2.3"},
        {"id": 2, "app_id": 2, "company_id": 1, "runtemplate_id": 2, "schedule": started,
         "schedule_type": "adhoc", "executor": "Native", "command": "mtr 'vitex software.com'",
         "begin": started, "end": started + timedelta(seconds=3), "exitcode": 2,
         "launched_by": 1},
        {"id": 3, "app_id": 1, "company_id": 1, "runtemplate_id": 1, "schedule": tomorrow,
         "schedule_type": "daily", "executor": "Native", "launched_by": 3},
    ]  # fmt: skip
    rows["job_output_lines"] += [
        {"job_id": 1, "seq": 0, "type": "stdout", "line": "Report for 2 accounts\n"},
        {"job_id": 1, "seq": 1, "type": "stderr", "line": "warning: slow API\n"},
        {"job_id": 2, "seq": 0, "type": "stderr", "line": "mtr: host unknown\n"},
    ]  # fmt: skip
    rows["artifacts"] += [
        {"job_id": 1, "filename": "report.json", "content_type": "application/json",
         "artifact": b'{"accounts": 2}', "note": "RESULT_FILE"},
    ]  # fmt: skip
    rows["schedule"] += [{"after": tomorrow, "job": 3}]
    rows["token"] += [{"token": "abcdefghij0123456789", "start": now, "user_id": 1}]
    return rows, tomorrow


def build(engine: Engine) -> Upstream:
    now = datetime.now(ZONE).replace(tzinfo=None, microsecond=0)
    rows, tomorrow = content(now)
    meta.create_all(engine)
    with engine.begin() as conn:
        for table in meta.sorted_tables:
            for row in rows[table.name]:
                conn.execute(insert(table).values(**row))
    return Upstream(str(engine.url.render_as_string(hide_password=False)), now, tomorrow, rows=rows)


# --- where it lives: SQLite, MariaDB, PostgreSQL -------------------------------------------


def sqlite_db(tmp: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp / 'upstream.sqlite'}"


def mariadb_db() -> Iterator[str]:
    import pymysql

    name = f"mf_upstream_{secrets.token_hex(4)}"
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield f"mysql://root@127.0.0.1:3306/{name}?charset=utf8mb4"
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def postgres_db(admin_url: str) -> Iterator[str]:
    import psycopg

    name = f"mf_upstream_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def engine_for(url: str) -> Engine:
    from multiflexi_web.services.upstream_import.reader import upstream_url

    return create_engine(upstream_url(url))
