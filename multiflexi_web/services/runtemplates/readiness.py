"""What a RunTemplate still needs before it can run: required values (refused) and credentials
(saved, but kept inactive until every requirement has one)."""

from __future__ import annotations

from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import CredentialPrototype, RunTemplate, utcnow
from multiflexi_web.services import settings
from multiflexi_web.services.runtemplates.configure import RunTemplateError
from multiflexi_web.services.scheduling.times import refresh_next_run


class MissingValues(RunTemplateError):
    """Required config values that nothing sets; the message names each of them."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(
            f"config: required values missing: {', '.join(keys)} "
            "(no value, default, company value or credential sets them)"
        )
        self.keys = keys


class UnmetRequirements(RunTemplateError):
    """Activation refused: a credential requirement has no credential."""

    def __init__(self, codes: list[str]) -> None:
        super().__init__(
            f"credentials: no credential for {', '.join(codes)}; "
            "assign one per requirement before activating"
        )
        self.codes = codes


def unmet_requirements(rt: RunTemplate) -> list[str]:
    """The application's credential requirements that no credential of the template meets."""
    met = {link.requirement for link in rt.credentials}
    return [code for code in rt.application.requirements if code not in met]


def credential_keys(rt: RunTemplate) -> set[str]:
    """Environment keys the template's credentials supply (their prototype's fields)."""
    return {
        f.keyword
        for link in rt.credentials
        for f in link.credential.credential_type.prototype.fields
    }


def _promised_keys(codes: list[str]) -> set[str]:
    """Keys that the credentials still to be assigned will supply: they are not asked for twice."""
    if not codes:
        return set()
    protos = db.session.scalars(
        select(CredentialPrototype).where(CredentialPrototype.code.in_(codes))
    )
    return {f.keyword for p in protos for f in p.fields}


def missing_required(rt: RunTemplate) -> list[str]:
    """Required fields with no value, no app default, no company value and no credential (given
    or still required) to fill them."""
    values = {c.key: c.value for c in rt.config}
    company_keys = {e.key for e in rt.company.env}
    covered = credential_keys(rt) | _promised_keys(unmet_requirements(rt)) | company_keys
    return [
        f.keyname
        for f in rt.application.fields
        if f.required and not values.get(f.keyname) and not f.default and f.keyname not in covered
    ]


def require_ready(rt: RunTemplate) -> list[str]:
    """The one rule at every save (portal, API, CLI): a missing required value refuses it; an
    unmet credential requirement saves it inactive. Returns the unmet requirements."""
    missing = missing_required(rt)
    if missing:
        raise MissingValues(missing)
    unmet = unmet_requirements(rt)
    if unmet and rt.active:
        rt.active = False
        refresh_next_run(rt, utcnow(), settings().timezone)
    return unmet


def require_activatable(rt: RunTemplate) -> None:
    """An explicit "activate" (API enable, CLI --active) is refused while a requirement is unmet."""
    unmet = unmet_requirements(rt)
    if unmet:
        raise UnmetRequirements(unmet)


def inactive_warning(unmet: list[str]) -> str:
    return (
        f"Saved inactive: no credential yet for {', '.join(unmet)}. "
        "Assign one per requirement, then activate it."
    )
