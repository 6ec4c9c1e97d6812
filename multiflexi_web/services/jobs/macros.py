"""`{KEY}` placeholders inside a job's environment values, filled from its other values.

Upstream MultiFlexi fills them before a job starts (its `applyMacros`), and application
definitions rely on it: `RESULT_FILE` = `transaction-report_{ABRAFLEXI_COMPANY}.json`, a rates
file at `{MULTIFLEXI_TMP}/rates.json`. The rules here:

- only `{UPPER_CASE}` names are placeholders; `${KEY}` is left for the application's own shell
  and a name the environment lacks stays literal, as in the command line;
- one pass: a placeholder is filled only from a value that holds no placeholder itself, so no
  chain, loop or doubling can make a value grow past its sources;
- the platform's own values (and the daemon's, and upload paths) are filled into others but
  never filled themselves: a company named `{X}` stays so;
- a secret value is never copied into another value: its placeholder stays literal, with a note
  in the job's output. Otherwise an operator, who may edit a RunTemplate's values but not read
  the company's credentials, could have `{ABRAFLEXI_PASSWORD}` copied into a value the
  application sends or prints as plain text (a report title, a mail body); so could a webhook
  whose payload is mapped into the one-time environment;
- a value that would pass 128 KiB (Linux's limit for one environment string) is left as it is,
  with a note.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

MACRO = re.compile(r"(?<!\$)\{([A-Z][A-Z0-9_]*)\}")
FIXED_SOURCES = frozenset({"platform", "daemon", "upload"})
MAX_VALUE = 128 * 1024


@dataclass(frozen=True)
class Expanded:
    values: dict[str, str]
    notes: tuple[str, ...]  # placeholders left unfilled, and why


def expand(
    values: Mapping[str, str], sources: Mapping[str, str], secret: Collection[str]
) -> Expanded:
    has_macro = {k for k, v in values.items() if MACRO.search(v)}
    fillers = {k: v for k, v in values.items() if k not in has_macro and k not in secret}
    sizes = {k: len(v.encode()) for k, v in fillers.items()}
    out = dict(values)
    notes: list[str] = []
    for key in sorted(has_macro):
        value, source = values[key], sources.get(key)
        if source in FIXED_SOURCES:
            continue
        found = [m.group(1) for m in MACRO.finditer(value)]
        for name in sorted(set(found) & set(secret)):
            notes.append(f"{key} ({source}): {{{name}}} left unfilled: a secret is not copied")
        # Measured before it is built: 10,000 placeholders of a 64 KiB value would otherwise
        # make a 640 MB string in the executor first.
        grows = sum(sizes[n] - len(n) - 2 for n in found if n in sizes)
        if len(value.encode()) + grows > MAX_VALUE:
            notes.append(f"{key} ({source}): placeholders left unfilled: over 128 KiB")
            continue
        out[key] = MACRO.sub(lambda m: fillers.get(m.group(1), m.group(0)), value)
    return Expanded(out, tuple(notes))
