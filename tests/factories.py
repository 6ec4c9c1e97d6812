"""Typed test factories: each builds one row with sensible defaults and commits it.

They commit because the Flask test client runs each request in its own app context and
session: rows that were only flushed would be invisible to the view under test.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import uuid as uuidlib
from datetime import datetime, timedelta
from typing import Any, TypeVar

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

from multiflexi_web.extensions import db
from multiflexi_web.models import (
    AppExitCode,
    AppField,
    Application,
    Artifact,
    AuditLog,
    Company,
    CompanyEnv,
    CompanyMember,
    Credential,
    CredentialPrototype,
    CredentialPrototypeField,
    CredentialType,
    CredentialValue,
    Event,
    EventRule,
    EventSource,
    Job,
    JobOutput,
    JobStatus,
    Role,
    RunTemplate,
    User,
    Worker,
    utcnow,
)
from multiflexi_web.security.secrets import cipher
from multiflexi_web.services.catalogue.fields import is_secret_field
from tests import state_guard

PASSWORD = "correct-horse-battery"
T = TypeVar("T")
_seq = itertools.count(1)


def _n() -> int:
    return next(_seq)


def _save(obj: T) -> T:
    # End any read transaction first: under WAL its snapshot may predate a request's write,
    # and SQLite refuses to turn a stale snapshot into a write ("database is locked").
    db.session.commit()
    db.session.add(obj)
    db.session.commit()
    return obj


def reread() -> None:
    """End the test's transaction so the next read sees what requests committed since."""
    db.session.rollback()


def make_user(
    login: str | None = None,
    *,
    password: str = PASSWORD,
    is_admin: bool = False,
    enabled: bool = True,
    email: str | None = None,
) -> User:
    # A cheap hash method: the default (scrypt) costs ~50 ms per user in every test.
    return _save(
        User(
            login=login or f"user{_n()}",
            password_hash=generate_password_hash(password, method="pbkdf2:sha256:1000"),
            is_admin=is_admin,
            enabled=enabled,
            email=email,
        )
    )


def make_company(
    name: str | None = None,
    *,
    slug: str | None = None,
    env: dict[str, str] | None = None,
    enabled: bool = True,
) -> Company:
    n = _n()
    company = Company(name=name or f"Company {n}", slug=slug or f"co{n}", enabled=enabled)
    company.env = [CompanyEnv(key=k, value=v) for k, v in (env or {}).items()]
    return _save(company)


def add_member(user: User, company: Company, role: Role | str = Role.VIEWER) -> CompanyMember:
    return _save(CompanyMember(user_id=user.id, company_id=company.id, role=Role(role).value))


def make_app(
    name: str | None = None,
    *,
    executable: str = "/bin/echo",
    requirements: list[str] | None = None,
    tags: list[str] | None = None,
    fields: list[dict[str, Any]] | None = None,
    exit_codes: dict[int, str] | None = None,
    artifacts: list[dict[str, Any]] | None = None,
    enabled: bool = True,
    ociimage: str | None = None,
) -> Application:
    """An application; `fields` are AppField keyword dicts (at least `keyname`)."""
    app = Application(
        uuid=str(uuidlib.uuid4()),
        name=name or f"app{_n()}",
        description="test application",
        executable=executable,
        cmdparams="",
        requirements=requirements or [],
        tags=tags or [],
        artifacts=artifacts or [],
        enabled=enabled,
        ociimage=ociimage,
        version="1.0",
    )
    app.fields = [AppField(position=i, **f) for i, f in enumerate(fields or [])]
    app.exit_codes = [AppExitCode(code=c, description=d) for c, d in (exit_codes or {}).items()]
    return _save(app)


def make_prototype(
    code: str | None = None, *, fields: list[dict[str, Any]] | None = None
) -> CredentialPrototype:
    """A credential prototype; default fields: LOGIN (plain) and PASSWORD (secret)."""
    code = code or f"proto{_n()}"
    specs = (
        fields
        if fields is not None
        else [
            {"keyword": "LOGIN", "type": "string", "required": True},
            {"keyword": "PASSWORD", "type": "password", "secret": True},
        ]
    )
    proto = CredentialPrototype(uuid=str(uuidlib.uuid4()), code=code, name=code.title())
    proto.fields = [CredentialPrototypeField(position=i, **f) for i, f in enumerate(specs)]
    return _save(proto)


def make_credential_type(
    company: Company, prototype: CredentialPrototype | None = None
) -> CredentialType:
    proto = prototype or make_prototype()
    return _save(CredentialType(company_id=company.id, prototype_id=proto.id, name=proto.name))


def make_credential(
    company: Company,
    prototype: CredentialPrototype | None = None,
    *,
    name: str | None = None,
    values: dict[str, str] | None = None,
) -> Credential:
    """A credential; values of secret prototype fields are stored encrypted."""
    ctype = make_credential_type(company, prototype)
    proto = db.session.get(CredentialPrototype, ctype.prototype_id)
    assert proto is not None
    secret_keys = {f.keyword for f in proto.fields if is_secret_field(f)}
    given = values if values is not None else {"LOGIN": "alice", "PASSWORD": "s3cret-value"}
    cred = Credential(
        company_id=company.id, credential_type_id=ctype.id, name=name or f"cred{_n()}"
    )
    cred.values = [
        CredentialValue(
            key=k, value=cipher().encrypt(v) if k in secret_keys else v, secret=k in secret_keys
        )
        for k, v in given.items()
    ]
    return _save(cred)


def make_runtemplate(
    company: Company,
    app: Application | None = None,
    *,
    name: str | None = None,
    interval: str = "n",
    active: bool = True,
) -> RunTemplate:
    application = app or make_app()
    return _save(
        RunTemplate(
            company_id=company.id,
            application_id=application.id,
            name=name or f"rt{_n()}",
            interval=interval,
            active=active,
        )
    )


def make_job(
    rt: RunTemplate,
    *,
    status: JobStatus | str = JobStatus.SUCCEEDED,
    exit_code: int | None = None,
    started_at: datetime | None = None,
    duration: float = 1.0,
    schedule_type: str = "adhoc-web",
    output: str | None = None,
) -> Job:
    """A job in any status (fixture data: real status changes go through jobs/transitions.py).

    It is created and moved along the job state table's shortest path to `status`, so the
    test databases' guard (tests/state_guard.py) accepts it like any real job.
    """
    st = JobStatus(status)
    path = state_guard.path_to(st)
    begin = started_at or utcnow() - timedelta(minutes=5)
    finished = st.is_terminal and st is not JobStatus.SKIPPED
    job = Job(
        runtemplate_id=rt.id,
        company_id=rt.company_id,
        application_id=rt.application_id,
        status=path[0].value,
        schedule_type=schedule_type,
        scheduled_for=begin,
        started_at=begin if st is not JobStatus.SCHEDULED else None,
        finished_at=begin + timedelta(seconds=duration) if finished else None,
        exit_code=exit_code if exit_code is not None else _default_exit(st),
        command=["/bin/echo", "hello"],
        env=[],
    )
    _save(job)
    for step in path[1:]:
        db.session.execute(update(Job).where(Job.id == job.id).values(status=step.value))
    db.session.commit()
    if output is not None:
        _save(JobOutput(job_id=job.id, seq=1, stream="stdout", data=output.encode()))
    return job


def _default_exit(status: JobStatus) -> int | None:
    return {JobStatus.SUCCEEDED: 0, JobStatus.FAILED: 1}.get(status)


def make_artifact(
    job: Job, *, filename: str = "result.json", content: bytes = b'{"ok": true}'
) -> Artifact:
    return _save(
        Artifact(
            job_id=job.id,
            filename=filename,
            mime_type="application/json",
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            content=content,
        )
    )


def make_worker(
    kind: str = "executor", *, heartbeat_age: float = 0.0, status: str = "running"
) -> Worker:
    return _save(
        Worker(
            kind=kind,
            hostname="testhost",
            pid=1000 + _n(),
            status=status,
            heartbeat_at=utcnow() - timedelta(seconds=heartbeat_age),
        )
    )


def make_event_source(
    company: Company | None = None, *, kind: str = "webhook", name: str | None = None
) -> EventSource:
    return _save(
        EventSource(
            name=name or f"source{_n()}",
            kind=kind,
            company_id=company.id if company else None,
            token=secrets.token_urlsafe(24) if kind == "webhook" else None,
        )
    )


def make_event(source: EventSource, payload: Any = None) -> Event:
    return _save(Event(source_id=source.id, payload=payload or {"hello": "world"}))


def make_event_rule(source: EventSource, rt: RunTemplate, *, name: str | None = None) -> EventRule:
    return _save(EventRule(source_id=source.id, runtemplate_id=rt.id, name=name or f"rule{_n()}"))


def make_audit(
    action: str = "update",
    entity_type: str = "company",
    entity_id: object = 1,
    *,
    actor: str = "tester",
    user: User | None = None,
) -> AuditLog:
    return _save(
        AuditLog(
            action=action,
            entity_type=entity_type,
            entity_id=str(entity_id),
            actor=actor,
            user_id=user.id if user else None,
            summary=f"{action} {entity_type}",
        )
    )


class IsolatedClient(FlaskClient):
    """A test client whose every request runs in its own app context, as in production.

    The `app` fixture keeps one app context open for the whole test; a plain test client
    reuses it, so requests would share one database session (with its identity map and loader
    options) and Flask-Login's cached user in `g` with each other and with the test.
    """

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        with self.application.app_context():
            return super().open(*args, **kwargs)


def isolate_requests(app: Flask) -> None:
    """Make `app.test_client()` return IsolatedClient from now on."""
    app.test_client_class = IsolatedClient


def login(client: FlaskClient, user: User, password: str = PASSWORD) -> TestResponse:
    """Log a user in through the real login form (the `app` fixture disables CSRF)."""
    resp = client.post("/login", data={"login": user.login, "password": password})
    assert resp.status_code == 302, f"login of {user.login!r} failed: {resp.status_code}"
    return resp


def client_for(app: Flask, user: User, password: str = PASSWORD) -> FlaskClient:
    """A fresh isolated test client with `user` logged in."""
    isolate_requests(app)
    client = app.test_client()
    login(client, user, password)
    return client
