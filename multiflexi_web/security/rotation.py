"""Re-encrypt every stored secret under a new master key, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import (
    CompanyEnv,
    CredentialValue,
    EventSource,
    Job,
    RunTemplateConfig,
)
from multiflexi_web.security.secrets import Cipher
from multiflexi_web.services.catalogue.fields import is_secret_name


@dataclass(frozen=True)
class RotationReport:
    credential_values: int
    runtemplate_values: int
    job_overrides: int
    event_source_secrets: int
    company_env_values: int = 0


def rotate_all(old: Cipher, new_key: str) -> RotationReport:
    """Decrypt with `old` (current and old keys), encrypt with `new_key`.

    Nothing is written unless every value decrypts: a SecretError leaves the data untouched.
    """
    new = Cipher(new_key)

    def again(token: str) -> str:
        return new.encrypt(old.decrypt(token))

    creds = list(db.session.scalars(select(CredentialValue).where(CredentialValue.secret)))
    configs = list(db.session.scalars(select(RunTemplateConfig).where(RunTemplateConfig.secret)))
    jobs = list(db.session.scalars(select(Job).where(Job.env_override.is_not(None))))
    sources = list(db.session.scalars(select(EventSource).where(EventSource.secret.is_not(None))))
    envs = list(db.session.scalars(select(CompanyEnv).where(CompanyEnv.secret)))
    # Compute everything first so a bad token aborts before any row changes.
    new_creds = [again(v.value) for v in creds]
    new_configs = [again(v.value) for v in configs]
    new_jobs = [again(j.env_override or "") for j in jobs]
    new_sources = [again(s.secret or "") for s in sources]
    new_envs = [again(e.value) for e in envs]
    for row, value in zip(creds, new_creds, strict=True):
        row.value = value
    for cfg, value in zip(configs, new_configs, strict=True):
        cfg.value = value
    for job, value in zip(jobs, new_jobs, strict=True):
        job.env_override = value
    for src, value in zip(sources, new_sources, strict=True):
        src.secret = value
    for env, value in zip(envs, new_envs, strict=True):
        env.value = value
    # Rows set before company env secrets were encrypted: encrypted now, under the new key.
    plain = db.session.scalars(select(CompanyEnv).where(CompanyEnv.secret.is_(False)))
    for env in [e for e in plain if is_secret_name(e.key)]:
        env.value, env.secret = new.encrypt(env.value), True
        envs.append(env)
    db.session.flush()
    return RotationReport(len(creds), len(configs), len(jobs), len(sources), len(envs))
