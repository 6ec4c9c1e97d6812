"""`python -m bench.chaos [--scenario NAME ...] [--quick] [--jobs N] [--strict] [--json FILE]`

Runs the chaos scenarios (all but the full-only ones with --quick: only the quick subset) on a
private PostgreSQL and prints a Markdown table, then the JSON. Exit code 0 whatever the counts
(a measuring tool) unless --strict: then 1 when a job ran twice, was lost or misrecorded
(a job cut at exit, see account.py, is reported and does not count).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.chaos.account import Result
from bench.chaos.report import as_json, markdown
from bench.chaos.runner import Suite, interrupts_as_exceptions
from bench.chaos.scenarios import BY_NAME, SCENARIOS, Scenario


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.splitlines()[0])
    p.add_argument("--scenario", action="append", choices=sorted(BY_NAME), help="repeatable")
    p.add_argument("--quick", action="store_true", help="few short jobs, LOST_AFTER=3 s")
    p.add_argument("--jobs", type=int, help="jobs per scenario (overrides the table)")
    p.add_argument("--strict", action="store_true", help="exit 1 on any twice/lost/misrecorded")
    p.add_argument("--json", type=Path, help="also write the JSON here")
    p.add_argument("--keep", action="store_true", help="keep the temp folder (logs, side files)")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return p.parse_args(argv)


def chosen(args: argparse.Namespace) -> list[Scenario]:
    if args.scenario:
        return [BY_NAME[n] for n in args.scenario]
    if args.quick:
        return [s for s in SCENARIOS if s.in_quick]
    return list(SCENARIOS)


def run(args: argparse.Namespace) -> tuple[list[Result], bool]:
    """The results of the scenarios run, and whether an interrupt cut the run short."""
    results: list[Result] = []
    suite = Suite(keep=args.keep)
    with interrupts_as_exceptions():
        try:
            for sc in chosen(args):
                print(f"== {sc.name}: {sc.what}", file=sys.stderr, flush=True)
                results.append(suite.run(sc, args.quick, args.jobs))
                print(markdown(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            print("interrupted: stopping everything the run started", file=sys.stderr)
            return results, True
        finally:
            suite.close()
    return results, False


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.list:
        for s in SCENARIOS:
            print(f"{s.name:36} {'quick ' if s.in_quick else ''}{s.what}")
        return 0
    results, interrupted = run(args)
    print(markdown(results))
    print(as_json(results))
    if args.json:
        args.json.write_text(as_json(results))
    if interrupted:
        return 130
    bad = any(r.twice or r.lost or r.misrecorded for r in results)
    return 1 if args.strict and bad else 0


if __name__ == "__main__":
    sys.exit(main())
