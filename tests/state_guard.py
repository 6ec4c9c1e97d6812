"""Test databases refuse any job status change the job state table (models/job.py) lacks.

Triggers generated from TRANSITIONS: creating a job in a status no transition creates, or an
UPDATE of status to a status no transition reaches from the old one (same status allowed),
aborts the statement. Installed by conftest.create_schema on every database the tests make, so
the whole suite checks every transition any code under test makes, daemons in subprocesses
included. The database cannot know the writing function: `by` is checked by the import-time
look-ups (models/job.py sources, made, move) and tests/test_job_states.py.
"""

from __future__ import annotations

from collections import deque

from sqlalchemy import Connection

from multiflexi_web.models import JobStatus
from multiflexi_web.models.job import TRANSITIONS

NAME = "job_state_guard"
MESSAGE = "not in the job state table"  # part of every refusal (tests match it)


def _words(statuses: list[JobStatus]) -> str:
    # The enum's own plain words, not input.
    return ", ".join(f"'{s.value}'" for s in dict.fromkeys(statuses))


def _born() -> list[JobStatus]:
    return [t.to for t in TRANSITIONS if t.frm is None]


def _next(frm: JobStatus) -> list[JobStatus]:
    return [t.to for t in TRANSITIONS if t.frm is frm]


def sqlite_sql() -> list[str]:
    """SQLite: RAISE takes only a literal message, so one UPDATE trigger per old status."""
    out = [
        f"CREATE TRIGGER {NAME}_insert BEFORE INSERT ON job "
        f"WHEN NEW.status NOT IN ({_words(_born())}) "
        f"BEGIN SELECT RAISE(ABORT, 'job created in a status {MESSAGE}'); END"
    ]
    for s in JobStatus:
        when = f"OLD.status = '{s.value}' AND NEW.status NOT IN ({_words([s, *_next(s)])})"
        refuse = f"RAISE(ABORT, 'job status change from {s.value} {MESSAGE}')"
        trigger = f"{NAME}_from_{s.value} BEFORE UPDATE OF status ON job WHEN {when}"
        out.append(f"CREATE TRIGGER {trigger} BEGIN SELECT {refuse}; END")
    return out


def postgresql_sql() -> list[str]:
    # Messages concatenated, not RAISE's % placeholders: the driver would take them for its own.
    pairs = [f"('{t.frm.value}', '{t.to.value}')" for t in TRANSITIONS if t.frm]
    body = (
        "BEGIN "
        "IF TG_OP = 'INSERT' THEN "
        f"  IF NEW.status NOT IN ({_words(_born())}) THEN "
        "     RAISE EXCEPTION USING MESSAGE = "
        f"      'job created as ' || NEW.status || ': {MESSAGE}'; "
        "  END IF; "
        "ELSIF NEW.status IS DISTINCT FROM OLD.status "
        f"    AND (OLD.status::text, NEW.status::text) NOT IN ({', '.join(dict.fromkeys(pairs))}) "
        "THEN "
        "  RAISE EXCEPTION USING MESSAGE = 'job ' || OLD.id || ' status ' || OLD.status "
        f"    || ' -> ' || NEW.status || ': {MESSAGE}'; "
        "END IF; "
        "RETURN NEW; "
        "END"
    )
    return [
        f"CREATE OR REPLACE FUNCTION {NAME}() RETURNS trigger LANGUAGE plpgsql AS $$ {body} $$",
        f"DROP TRIGGER IF EXISTS {NAME} ON job",
        f"CREATE TRIGGER {NAME} BEFORE INSERT OR UPDATE OF status ON job "
        f"FOR EACH ROW EXECUTE FUNCTION {NAME}()",
    ]


def install(conn: Connection) -> None:
    """(Re)create the guard on this database's job table."""
    if conn.dialect.name == "postgresql":
        statements = postgresql_sql()
    else:
        names = [f"{NAME}_insert", *(f"{NAME}_from_{s.value}" for s in JobStatus)]
        statements = [*(f"DROP TRIGGER IF EXISTS {n}" for n in names), *sqlite_sql()]
    for sql in statements:
        conn.exec_driver_sql(sql)


def path_to(status: JobStatus) -> list[JobStatus]:
    """The shortest walk through the table from a job's creation to `status` (factories take
    it to make fixture jobs in any status without a change the guard refuses)."""
    seen = {s: [s] for s in _born()}
    todo = deque(seen)
    while todo:
        s = todo.popleft()
        for nxt in _next(s):
            if nxt not in seen:
                seen[nxt] = [*seen[s], nxt]
                todo.append(nxt)
    if status not in seen:
        raise LookupError(f"job state table: no job ever reaches {status}")
    return seen[status]
