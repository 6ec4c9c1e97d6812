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
- the systemd design itself: this script again as `nobody` holding the unit's capabilities
  (`--systemd-child`, started through setpriv), its ambient and inheritable sets cleared as the
  executor clears them, with --ballast-mib MiB touched: Popen `user=` (the fallback) against
  `start_job_process` (security/process.py), setpriv lent CAP_SETUID/CAP_SETGID for its exec.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

COMMAND = ["/bin/sh", "-c", "echo hello; echo err 1>&2"]


def cpu_ms(spawn: Callable[[], None], n: int) -> float:
    """CPU per call of `spawn` over n calls: this process's and its reaped children's."""
    before = os.times()
    for _ in range(n):
        spawn()
    after = os.times()
    spent = (after.user + after.system + after.children_user + after.children_system) - (
        before.user + before.system + before.children_user + before.children_system
    )
    return spent * 1000 / n


def run(argv: Sequence[str], **popen: Any) -> None:
    subprocess.run(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        process_group=0,
        check=True,
        **popen,
    )


def cpu_per_spawn(argv: Sequence[str], n: int, **popen: Any) -> float:
    return cpu_ms(lambda: run(argv, **popen), n)


UNIT_CAPS = "setuid,setgid,chown,kill,dac_override,fowner"  # systemd/multiflexi-executor.service


def ballast(mib: int) -> bytearray:
    held = bytearray(mib * 2**20)
    for i in range(0, len(held), 4096):  # touched: resident, as an executor's heap is
        held[i] = 1
    return held


def systemd_child(uid: int, gid: int, n: int, mib: int) -> None:
    """As the executor under its unit: not root, the capabilities in effect, none ambient."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from multiflexi_web.executors.base import RunAs
    from multiflexi_web.security import process

    process.clear_ambient_caps()
    run_as = RunAs("job", uid, gid)
    switch = process.job_switch(run_as)
    held = ballast(mib)

    def lent() -> None:
        proc = process.start_job_process(
            COMMAND, run_as, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if proc.wait() != 0:
            raise SystemExit(f"bench/spawn.py: the job failed through {switch}")

    results = {
        f"systemd design, Popen user=, caller holding {mib} MiB": cpu_per_spawn(
            COMMAND, n, user=uid, group=gid, extra_groups=[]
        ),
        f"systemd design, {switch} lent caps, caller holding {mib} MiB": cpu_ms(lent, n),
    }
    del held
    print(json.dumps(results))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spawns", type=int, default=500)
    ap.add_argument("--ballast-mib", type=int, default=50)
    ap.add_argument("--user", default="multiflexi-job")
    ap.add_argument("--systemd-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.systemd_child:
        user = pwd.getpwnam(args.user)
        systemd_child(user.pw_uid, user.pw_gid, args.spawns, args.ballast_mib)
        return
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
    held = ballast(args.ballast_mib)
    results[f"Popen user=, caller holding {args.ballast_mib} MiB"] = cpu_per_spawn(
        COMMAND, n, **as_user
    )
    del held
    caps = ",".join(f"+{cap}" for cap in UNIT_CAPS.split(","))
    as_unit = ["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    as_unit += [f"--inh-caps={caps}", f"--ambient-caps={caps}", "--"]
    mine = [sys.executable, __file__, "--systemd-child", f"--spawns={n}"]
    mine += [f"--ballast-mib={args.ballast_mib}", f"--user={args.user}"]
    child = subprocess.run(
        [*as_unit, *mine],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    )
    results.update(json.loads(child.stdout))
    print(f"load average {os.getloadavg()[0]:.2f}, {n} spawns each, CPU ms per spawn")
    for name, ms in results.items():
        print(f"{name:<62} {ms:6.2f}")


if __name__ == "__main__":
    main()
