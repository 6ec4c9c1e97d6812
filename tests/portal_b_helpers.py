"""Test helpers for the RunTemplate, job and queue pages (on top of tests/factories.py)."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from multiflexi_web.extensions import db
from multiflexi_web.models import (
    Application,
    Company,
    Job,
    JobOutput,
    Role,
    RunTemplate,
    RunTemplateConfig,
    User,
)
from multiflexi_web.security.secrets import cipher
from tests.factories import add_member, login, make_app, make_company, make_user

ALL_FIELDS: list[dict[str, Any]] = [
    {"keyname": "VERBOSE", "type": "bool", "default": "true"},
    {
        "keyname": "MODE",
        "type": "set",
        "options": {"fast": "Fast", "safe": "Safe"},
        "default": "safe",
    },
    {"keyname": "API_PASSWORD", "type": "password", "secret": True},
    {"keyname": "NOTES", "type": "text"},
    {"keyname": "INPUT_FILE", "type": "file-path"},
    {"keyname": "COUNT", "type": "integer", "default": "3"},
    {"keyname": "RATIO", "type": "float"},
    {"keyname": "MAILTO", "type": "email"},
    {"keyname": "ENDPOINT", "type": "url"},
    {"keyname": "LABEL", "type": "string", "required": True},
]


def typed_app(**kwargs: Any) -> Application:
    """An application with one field of every type."""
    return make_app(fields=ALL_FIELDS, **kwargs)


def member_client(
    client: FlaskClient, company: Company, role: Role | None, *, admin: bool = False
) -> User:
    """Log in a new user holding `role` in the company (None: not a member)."""
    user = make_user(is_admin=admin)
    if role is not None:
        add_member(user, company, role)
    login(client, user)
    return user


def operator_setup(client: FlaskClient) -> tuple[Company, User]:
    company = make_company()
    return company, member_client(client, company, Role.OPERATOR)


def add_output(job: Job, *chunks: tuple[str, bytes]) -> list[int]:
    """Store output chunks (stream, bytes) for a job; returns their ids."""
    rows = [
        JobOutput(job_id=job.id, seq=i + 1, stream=stream, data=data)
        for i, (stream, data) in enumerate(chunks)
    ]
    db.session.add_all(rows)
    db.session.commit()
    return [r.id for r in rows]


def set_secret(rt: RunTemplate, key: str, value: str) -> None:
    db.session.add(
        RunTemplateConfig(runtemplate_id=rt.id, key=key, value=cipher().encrypt(value), secret=True)
    )
    db.session.commit()


def fresh(model: type[Any], obj_id: int) -> Any:
    """A row re-read from the database (the test client's requests used other sessions)."""
    db.session.rollback()
    return db.session.get(model, obj_id)
