"""schemathesis over every operation of /api/v1/openapi.json against a live server.

Positive and negative data, few examples per operation, derandomized: the server never
answers 500, every status, content type and body conforms to the document, and data that
breaks the document is refused with a 4xx.
"""

from __future__ import annotations

from dataclasses import replace

import requests
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from multiflexi_web.api.v1.auth import LIMITER_KEY
from multiflexi_web.api.v1.openapi import document
from tests.api_helpers import bearer, make_scene, make_token
from tests.api_live import serving
from tests.factories import (
    make_artifact,
    make_credential,
    make_event,
    make_event_rule,
    make_event_source,
    make_job,
    make_worker,
)

EXAMPLES = 6
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _seed(app: Flask) -> tuple[str, dict[str, int]]:
    """A little of everything; an admin token; the ids of existing rows per path parameter."""
    s = make_scene(app)
    job = make_job(s.rt_a, output="hello\n")
    source = make_event_source(s.a)
    ids = {
        "company_id": s.a.id,
        "app_id": s.rt_a.application_id,
        "credential_id": make_credential(s.a).id,
        "rt_id": s.rt_a.id,
        "job_id": job.id,
        "artifact_id": make_artifact(job).id,
        "source_id": source.id,
        "rule_id": make_event_rule(source, s.rt_a).id,
        "event_id": make_event(source).id,
        "worker_id": make_worker("executor").id,
    }
    app.extensions.pop(LIMITER_KEY, None)
    app.config["MULTIFLEXI"] = replace(app.config["MULTIFLEXI"], api_rate=(10**9, 60))
    return make_token(s.admin), ids


def test_every_operation_conforms(app: Flask) -> None:
    secret, ids = _seed(app)
    schema = schemathesis.openapi.from_dict(document())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    # Deleting last: the other operations then meet existing rows through the pinned ids.
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    with serving(app) as base, requests.Session() as http:
        for operation in operations:
            # Random ids (mostly unknown: 404 paths), then the ids of rows that exist.
            pinned = {k: v for k, v in ids.items() if "{" + k + "}" in operation.path}
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _exercise(operation, mode, f"{base}/api/v1", http, secret, None)
                if pinned:
                    _exercise(operation, mode, f"{base}/api/v1", http, secret, pinned)


def _exercise(  # type: ignore[no-untyped-def]
    operation,
    mode: GenerationMode,
    base_url: str,
    http: requests.Session,
    secret: str,
    pinned: dict[str, int] | None,
) -> None:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode, path_parameters=pinned))
        case.call_and_validate(
            base_url=base_url, session=http, headers=bearer(secret), checks=CHECKS
        )

    try:
        run()
    except Unsatisfiable:
        # An operation without parameters or body has no negative data to make.
        if mode is GenerationMode.POSITIVE:
            raise
