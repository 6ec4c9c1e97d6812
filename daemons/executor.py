"""The executor daemon: claims due jobs, runs each in a thread, reaps jobs of dead executors."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from dataclasses import replace

from daemons.runtime import boot
from multiflexi_web.config import ConfigError
from multiflexi_web.runner import guard
from multiflexi_web.runner.action_process import ActionProcess
from multiflexi_web.runner.pool import Executor
from multiflexi_web.security.process import checked_switch, job_identity
from multiflexi_web.services.actions.settings import load as action_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="multiflexi-executor", description=__doc__)
    parser.add_argument(
        "--drain", action="store_true", help="exit once nothing is left to do (tests, benchmarks)"
    )
    args = parser.parse_args(argv)
    rt = boot("executor")
    try:
        run_as = job_identity(rt.settings)
        switch = checked_switch(run_as)  # probed before the fork below: the child inherits it
        settings = replace(action_settings(), run_as=run_as)  # CustomCommand runs as jobs do
    except ConfigError as exc:
        print(f"multiflexi-executor: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    # Post-job actions are delivered by a child process of this daemon, forked now while no
    # thread or connection exists (docs/architecture.md, Actions); 0 threads: by the others.
    if settings.threads:
        # Everything loaded so far is left out of cyclic garbage collection from now on: a full
        # collection writes to every object it visits, and so copied each page the child shares
        # with this process (an idle pair on PostgreSQL: 41 + 39 MiB private, 23 + 21 frozen).
        gc.freeze()
    actions = ActionProcess.fork(rt.app, settings, rt.stop) if settings.threads else None
    try:
        executor = Executor(rt, drain=args.drain)
    except ConfigError as exc:
        print(f"multiflexi-executor: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    rt.log(
        "jobs_run_as",
        **({"user": run_as.name, "uid": run_as.uid} if run_as else {"uid": os.getuid()}),
        switch=switch,
    )
    # Before any job: their process groups die with this process, however it dies, and the
    # exits this process had not yet journaled are written beside its journal.
    guard.start(executor.journal.path, executor.journal.fd)
    rt.register()
    rt.start_heartbeat()
    if actions is not None:
        actions.start(rt.worker_id or 0)
    code = executor.serve()
    if actions is not None:
        actions.close(drain=args.drain, hard=rt.hard_stop.is_set())
    rt.unregister()
    sys.stderr.flush()
    if executor.running:  # a job thread still blocked (database gone): do not hang on exit
        os._exit(code or 1)  # the guard sees the pipe close and kills what is left
    guard.stop()
    sys.exit(code)


if __name__ == "__main__":
    main()
