"""The executor daemon: claims due jobs, runs each in a thread, reaps jobs of dead executors."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from dataclasses import replace

from daemons.runtime import boot
from multiflexi_web.config import ConfigError
from multiflexi_web.runner import guard
from multiflexi_web.runner.actions import Dispatcher
from multiflexi_web.runner.pool import Executor
from multiflexi_web.services.actions.settings import load as action_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="multiflexi-executor", description=__doc__)
    parser.add_argument(
        "--drain", action="store_true", help="exit once nothing is left to do (tests, benchmarks)"
    )
    args = parser.parse_args(argv)
    rt = boot("executor")
    try:
        executor = Executor(rt, drain=args.drain)
    except ConfigError as exc:
        print(f"multiflexi-executor: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    run_as = executor.run_settings.run_as
    rt.log(
        "jobs_run_as",
        **({"user": run_as.name, "uid": run_as.uid} if run_as else {"uid": os.getuid()}),
    )
    guard.start()  # before any job: their process groups die with this process, however it dies
    rt.register()
    rt.start_heartbeat()
    # Post-job actions are delivered by a thread of this daemon (docs/architecture.md, Actions).
    settings = replace(action_settings(), run_as=run_as)  # CustomCommand runs as jobs do
    actions = None
    if settings.threads:  # 0: this executor leaves deliveries to the others
        actions = Dispatcher(rt.app, rt.worker_id or 0, settings, threading.Event()).start()
    code = executor.serve()
    if actions is not None:
        if args.drain:
            actions.drain()
        actions.close()
    rt.unregister()
    sys.stderr.flush()
    if executor.running:  # a job thread still blocked (database gone): do not hang on exit
        os._exit(code or 1)  # the guard sees the pipe close and kills what is left
    guard.stop()
    sys.exit(code)


if __name__ == "__main__":
    main()
