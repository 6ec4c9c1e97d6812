"""CPU per job spawn for each way of starting a job as the job user (run as root).

    python bench/spawn.py [--spawns 500] [--ballast-mib 50] [--user multiflexi-job]

Each variant starts `sh -c 'echo hello; echo err 1>&2'` --spawns times with subprocess (its
own process group, as the executor's jobs) and prints the CPU per spawn: this process's and
its reaped children's (the exec'd programs and the job), user + system, from os.times().

- no switch: the job as this process's user (what the executor's floor does);
- chroot: `chroot --skip-chdir --userspec=U:G --groups= -- /` (security/process.py, as root);
- setpriv twice: the switch before chroot replaced it (setpriv keeps root's capabilities up to
  its exec, so a second one execs the command);
- Popen user=: CPython's own switch, a full fork() of the caller (vfork is ruled out with a uid
  change): once from this small process, once while it holds --ballast-mib MiB of touched
  memory, the size of an executor (what a non-root executor with CAP_SETUID pays, the systemd
  design in docs/security.md).
"""

from __future__ import annotations

import argparse
import os
import pwd
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

COMMAND = ["/bin/sh", "-c", "echo hello; echo err 1>&2"]


def cpu_per_spawn(argv: Sequence[str], n: int, **popen: Any) -> float:
    before = os.times()
    for _ in range(n):
        subprocess.run(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            process_group=0,
            check=True,
            **popen,
        )
    after = os.times()
    spent = (after.user + after.system + after.children_user + after.children_system) - (
        before.user + before.system + before.children_user + before.children_system
    )
    return spent * 1000 / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spawns", type=int, default=500)
    ap.add_argument("--ballast-mib", type=int, default=50)
    ap.add_argument("--user", default="multiflexi-job")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/spawn.py: run as root (the job-user switches need it)")
    user = pwd.getpwnam(args.user)
    uid, gid, n = user.pw_uid, user.pw_gid, args.spawns
    chroot = ["/usr/sbin/chroot", "--skip-chdir", f"--userspec={uid}:{gid}", "--groups=", "--"]
    setpriv = ["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]
    as_user = {"user": uid, "group": gid, "extra_groups": []}
    variants: list[tuple[str, Callable[[], float]]] = [
        ("no switch", lambda: cpu_per_spawn(COMMAND, n)),
        ("chroot", lambda: cpu_per_spawn([*chroot, "/", *COMMAND], n)),
        ("setpriv twice", lambda: cpu_per_spawn([*setpriv, "/usr/bin/setpriv", "--", *COMMAND], n)),
        ("Popen user=, small caller", lambda: cpu_per_spawn(COMMAND, n, **as_user)),
    ]
    results = {name: run() for name, run in variants}
    ballast = bytearray(args.ballast_mib * 2**20)
    for i in range(0, len(ballast), 4096):  # touched: resident, as an executor's heap is
        ballast[i] = 1
    results[f"Popen user=, caller holding {args.ballast_mib} MiB"] = cpu_per_spawn(
        COMMAND, n, **as_user
    )
    del ballast
    print(f"load average {os.getloadavg()[0]:.2f}, {n} spawns each, CPU ms per spawn")
    for name, ms in results.items():
        print(f"{name:<36} {ms:6.2f}")


if __name__ == "__main__":
    main()
