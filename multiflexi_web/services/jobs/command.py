"""The job's argv: executable + cmdparams (or cmdparamsTemplate) with {KEY}/${KEY} filled."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

# ${KEY} is tried first so that its inner {KEY} is not filled on its own, leaving a stray '$'.
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


class CommandError(ValueError):
    """The application's command line cannot be built; the message says which part and why."""


def fill(word: str, env: Mapping[str, str]) -> str:
    """Replace placeholders of known keys inside one word; unknown ones stay literal."""

    def repl(m: re.Match[str]) -> str:
        key = m.group(1) or m.group(2)
        return env[key] if key in env else m.group(0)

    return PLACEHOLDER.sub(repl, word)


def split_template(template: str | None) -> tuple[str, ...]:
    """The template's words, split as a POSIX shell would (quotes), before any filling."""
    try:
        return tuple(shlex.split(template or "", comments=False, posix=True))
    except ValueError as exc:
        raise CommandError(f"cmdparams {template!r}: {exc}") from None


def fill_argv(executable: str, words: tuple[str, ...], env: Mapping[str, str]) -> list[str]:
    """Fill each word on its own: a value is one argument and is never re-parsed."""
    if not executable.strip():
        raise CommandError("executable: the application has none")
    return [fill(executable.strip(), env), *(fill(w, env) for w in words)]


def build_argv(executable: str, template: str | None, env: Mapping[str, str]) -> list[str]:
    return fill_argv(executable, split_template(template), env)


def template_of(cmdparams_template: str | None, cmdparams: str | None) -> str:
    """cmdparamsTemplate wins over cmdparams when an app declares both."""
    return (cmdparams_template or "").strip() or (cmdparams or "").strip()
