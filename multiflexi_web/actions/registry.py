"""The action kinds, by upstream's class names: one explicit list (no discovery magic)."""

from __future__ import annotations

from multiflexi_web.actions.base import Action, AppRef
from multiflexi_web.actions.chain_runtemplate import ChainRuntemplate
from multiflexi_web.actions.custom_command import CustomCommand
from multiflexi_web.actions.email import Email
from multiflexi_web.actions.github import Github
from multiflexi_web.actions.launch_job import LaunchJob
from multiflexi_web.actions.mattermost import Mattermost
from multiflexi_web.actions.redmine_issue import RedmineIssue
from multiflexi_web.actions.reschedule import Reschedule
from multiflexi_web.actions.slack import Slack
from multiflexi_web.actions.stop import Stop
from multiflexi_web.actions.trigger_jenkins import TriggerJenkins
from multiflexi_web.actions.web_hook import WebHook
from multiflexi_web.actions.zabbix import Zabbix

_KINDS: tuple[Action, ...] = (
    WebHook(),
    ChainRuntemplate(),
    LaunchJob(),
    Reschedule(),
    Stop(),
    CustomCommand(),
    Email(),
    Github(),
    RedmineIssue(),
    TriggerJenkins(),
    Mattermost(),
    Slack(),
    Zabbix(),
)
REGISTRY: dict[str, Action] = {kind.name: kind for kind in _KINDS}


class UnknownAction(KeyError):
    def __str__(self) -> str:
        return f"action kind {self.args[0]!r}: unknown (known: {', '.join(names())})"


def get(name: str) -> Action:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownAction(name) from None


def names() -> list[str]:
    return list(REGISTRY)


def usable(app: AppRef) -> list[Action]:
    """The kinds this application may use (e.g. Github only for apps hosted on github.com)."""
    return [kind for kind in REGISTRY.values() if kind.usable_for(app) is None]


def secret_keys(name: str) -> frozenset[str]:
    kind = REGISTRY.get(name)
    return frozenset(f.key for f in kind.fields if f.secret) if kind else frozenset()


def destination_keys(name: str) -> frozenset[str]:
    kind = REGISTRY.get(name)
    return frozenset(f.key for f in kind.fields if f.destination) if kind else frozenset()


def keys_of_type(name: str, field_type: str) -> tuple[str, ...]:
    """The kind's config keys of one field type (e.g. "credential", "runtemplate")."""
    return tuple(f.key for f in get(name).fields if f.type == field_type)


def admin_only(name: str) -> bool:
    return bool(getattr(REGISTRY.get(name), "admin_only", False))
