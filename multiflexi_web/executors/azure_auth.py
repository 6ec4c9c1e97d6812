"""Azure settings and the credential the management client signs its requests with."""

# DefaultAzureCredential when azure-identity is installed; it is not a dependency, so without it a
# client-secret credential from AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET.

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from multiflexi_web.config import ConfigError, read_sources
from multiflexi_web.executors import sdk

DEFAULT_BASE_URL = "https://management.azure.com"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
SECRET_TRIPLE = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")


@dataclass(frozen=True)
class AzureSettings:
    subscription: str
    resource_group: str
    location: str = "westeurope"
    base_url: str = DEFAULT_BASE_URL
    cpu: float = 1.0
    memory_gb: float = 1.5
    poll: float = 5.0
    start_timeout: float = 600.0

    @classmethod
    def load(cls, src: Mapping[str, str] | None = None) -> AzureSettings:
        src = read_sources() if src is None else src
        return cls(
            subscription=_required(src, "AZURE_SUBSCRIPTION_ID"),
            resource_group=_required(src, "MULTIFLEXI_AZURE_RESOURCE_GROUP"),
            location=src.get("MULTIFLEXI_AZURE_LOCATION", "").strip() or "westeurope",
            base_url=_url(src, "MULTIFLEXI_AZURE_BASE_URL", DEFAULT_BASE_URL),
            cpu=_positive(src, "MULTIFLEXI_AZURE_CPU", 1.0),
            memory_gb=_positive(src, "MULTIFLEXI_AZURE_MEMORY_GB", 1.5),
            poll=_positive(src, "MULTIFLEXI_AZURE_POLL", 5.0),
            start_timeout=_positive(src, "MULTIFLEXI_AZURE_START_TIMEOUT", 600.0),
        )

    @property
    def call_options(self) -> dict[str, Any]:
        """Per-call options: the bearer policy's https rule is lifted for a loopback test server
        only (_url accepts plain http for nothing else)."""
        return {"enforce_https": False} if self.base_url.startswith("http:") else {}


def _required(src: Mapping[str, str], key: str) -> str:
    value = src.get(key, "").strip()
    if not value:
        raise ConfigError(f"{key} is not set")
    return value


def _url(src: Mapping[str, str], key: str, default: str) -> str:
    raw = src.get(key, "").strip() or default
    parts = urlsplit(raw)
    if parts.scheme == "https" and parts.hostname:
        return raw.rstrip("/")
    if parts.scheme == "http" and parts.hostname in LOOPBACK:
        return raw.rstrip("/")
    raise ConfigError(f"{key}: expected an https URL (plain http only on loopback), got {raw!r}")


def _positive(src: Mapping[str, str], key: str, default: float) -> float:
    raw = src.get(key, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"{key}: expected a positive number, got {raw!r}")
    return value


def credential(src: Mapping[str, str] | None = None) -> Any:
    """The credential the management client signs its requests with."""
    src = read_sources() if src is None else src
    try:
        sdk.load(sdk.AZURE)
        from azure.identity import DefaultAzureCredential
    except ImportError:
        missing = [k for k in SECRET_TRIPLE if not src.get(k, "").strip()]
        if missing:
            raise ConfigError(
                f"{', '.join(missing)} not set (no azure-identity installed for other logins)"
            ) from None
        authority = _url(src, "AZURE_AUTHORITY_HOST", DEFAULT_AUTHORITY)
        tenant, client_id, secret = (src[k].strip() for k in SECRET_TRIPLE)
        return ClientSecretToken(tenant, client_id, secret, authority)
    return DefaultAzureCredential()


class ClientSecretToken:
    """OAuth2 client-credentials grant against Microsoft Entra ID (a TokenCredential)."""

    def __init__(self, tenant: str, client_id: str, secret: str, authority: str) -> None:
        self.url = f"{authority}/{tenant}/oauth2/v2.0/token"
        self.client_id, self._secret = client_id, secret
        self._lock = threading.Lock()
        self._token: Any = None

    def get_token(self, *scopes: str, **_: Any) -> Any:
        sdk.load(sdk.AZURE)
        from azure.core.credentials import AccessToken

        with self._lock:
            if self._token is None or self._token.expires_on - 300 < time.time():
                doc = self._request(scopes)
                expires = int(time.time()) + int(doc.get("expires_in", 3600))
                self._token = AccessToken(str(doc["access_token"]), expires)
            return self._token

    def _request(self, scopes: tuple[str, ...]) -> dict[str, Any]:
        sdk.load(sdk.AZURE)
        import requests
        from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._secret,
            "scope": " ".join(scopes),
        }
        try:
            resp = requests.post(self.url, data=form, timeout=30)
        except requests.RequestException as exc:
            # An Azure error like every other failure of a call: its callers (a job's run, the
            # engine watch's sweep) handle AzureError; requests' own escaped them and ended the
            # engine watch's thread while Entra ID could not be reached.
            raise ServiceRequestError(f"Azure token request failed: {exc}") from exc
        try:
            doc: dict[str, Any] = resp.json() if resp.content else {}
        except ValueError:  # not JSON: a proxy's page, say
            doc = {}
        if resp.status_code != 200 or "access_token" not in doc:
            why = doc.get("error_description") or doc.get("error") or resp.reason
            raise ClientAuthenticationError(f"Azure token request failed: {resp.status_code} {why}")
        return doc
