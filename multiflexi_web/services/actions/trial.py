"""'Send a test': perform an action against a fake job context and show the response.

Effects a plug-in returns (jobs to start, schedules to stop) are described, never applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from multiflexi_web import __version__
from multiflexi_web.actions import registry
from multiflexi_web.actions.base import ActionContext, Outcome
from multiflexi_web.extensions import db
from multiflexi_web.models import RunTemplate
from multiflexi_web.services.actions import runs, values
from multiflexi_web.services.actions.context import ContextError, app_ref, login_for
from multiflexi_web.services.actions.mail_credential import MailLogin
from multiflexi_web.services.actions.settings import ActionSettings


def fake_context(
    rt: RunTemplate,
    mode: str,
    config: dict[str, str],
    s: ActionSettings,
    login: MailLogin | None = None,
) -> ActionContext:
    ok = mode == "success"
    return ActionContext(
        run_id=0,
        idempotency_key=f"multiflexi-test-{rt.id}",
        attempt=1,
        job_id=0,
        status="succeeded" if ok else "failed",
        exit_code=0 if ok else 1,
        exit_meaning="test delivery from the MultiFlexi portal",
        company_id=rt.company_id,
        company_slug=rt.company.slug,
        company_name=rt.company.name,
        zabbix_host=rt.company.zabbix_host,
        app=app_ref(rt.application),
        runtemplate_id=rt.id,
        runtemplate_name=rt.name,
        job_url=f"{s.base_url}/jobs/0",
        artifact_urls={},
        stdout_tail="(test) stdout tail\n",
        stderr_tail="",
        produced_files={},
        env={},
        config=config,
        timeout=min(s.timeout, 15.0),
        platform_version=__version__,
        run_as=s.run_as,
        credential=login.values if login else {},
        credential_secrets=login.secrets if login else (),
    )


def send_test(
    rt: RunTemplate, mode: str, kind: str, stored: Mapping[str, Any], s: ActionSettings
) -> Outcome:
    """Perform `kind` with the stored config (defaults merged by the caller); masked result."""
    action = registry.get(kind)
    secrets = values.secret_plain_values(stored)
    config = values.plain(stored)
    try:
        login = login_for(db.session(), kind, config, rt.company_id)
    except ContextError as exc:
        return Outcome(False, error=runs.masked(str(exc), secrets))
    secrets += login.secrets if login else ()
    try:
        out = action.perform(fake_context(rt, mode, config, s, login))
    except Exception as exc:
        out = Outcome(False, error=f"{type(exc).__name__}: {exc}")
    effects = "; ".join(f"would {type(e).__name__} {e}" for e in out.effects)
    response = "; ".join(filter(None, [out.response, effects])) or None
    return Outcome(
        out.ok, runs.masked(response, secrets), runs.masked(out.error, secrets), out.retryable
    )
