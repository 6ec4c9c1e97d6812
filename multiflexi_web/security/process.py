"""Keeping the platform's processes and files away from its jobs: umask, keys, dumpable, modes."""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import pwd
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from multiflexi_web.config import ConfigError, Settings
from multiflexi_web.executors.base import RunAs

log = logging.getLogger("multiflexi.security")
UMASK = 0o077
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
CAP_SETGID, CAP_SETUID = 6, 7
JOB_UMASK = 0o077  # what a job writes is its own (the daemon reads it with its privileges)
SETPRIV = "/usr/bin/setpriv"  # util-linux (essential on Debian); absent: Popen switches users
# Read once at start into Settings; then removed so that no child process inherits them.
KEY_VARIABLES = (
    "SECRET_KEY",
    "ENCRYPTION_MASTER_KEY",
    "ENCRYPTION_OLD_KEYS",
    "MULTIFLEXI_MASTER_KEY",
    "DATABASE_URL",
    "DB_PASSWORD",
    "MULTIFLEXI_METRICS_TOKEN",
)


def private_umask() -> None:
    """Everything this process creates is readable by its own user only."""
    os.umask(UMASK)


def forget_keys() -> None:
    """Drop the key variables (and their *_FILE pointers) from this process's environment."""
    for name in KEY_VARIABLES:
        os.environ.pop(name, None)
        os.environ.pop(f"{name}_FILE", None)


def _prctl(*args: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(*(ctypes.c_ulong(a) for a in args)))


def set_undumpable() -> bool:
    """Same-user processes (our jobs) can no longer read our /proc/<pid>/environ, mem, maps."""
    return _prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0


def term_with_parent() -> None:
    """This process gets SIGTERM (a clean stop) when the process that started it dies."""
    die_with_parent(15)


def die_with_parent(signum: int) -> None:
    """This process gets `signum` when the thread that started it (or its process) ends."""
    _prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)


def clear_ambient_caps() -> None:
    """Capabilities systemd gave us (AmbientCapabilities=) must not pass on to jobs via exec."""
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)


def effective_caps() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def can_switch_user() -> bool:
    """Root, or a daemon given CAP_SETUID and CAP_SETGID (systemd AmbientCapabilities=)."""
    caps = effective_caps()
    return os.geteuid() == 0 or bool(caps >> CAP_SETUID & 1 and caps >> CAP_SETGID & 1)


def job_user(name: str) -> RunAs | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)


def ensure_job_user(name: str) -> RunAs | None:
    """Create the unprivileged job user when we are root and it is missing (for `make run`)."""
    found = job_user(name)
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    if found is not None or os.geteuid() != 0 or not Path(useradd).exists():
        return found
    cmd = [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent"]
    cmd += ["--shell", "/usr/sbin/nologin", "--user-group", name]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        log.warning("action=job_user_failed user=%s error=%s", name, done.stderr.strip())
    return job_user(name)


def job_identity(settings: Settings) -> RunAs | None:
    """Who jobs run as: the job user when this process can switch users, else None (the
    daemon's own user; MULTIFLEXI_JOB_USER=daemon asks for that even as root: tests only)."""
    if not settings.job_user or not can_switch_user():
        return None
    found = ensure_job_user(settings.job_user)
    if found is None:
        raise ConfigError(
            f"MULTIFLEXI_JOB_USER: no user {settings.job_user!r} (create it: "
            f"useradd --system --no-create-home --shell /usr/sbin/nologin {settings.job_user})"
        )
    if found.uid == 0 or found.uid == os.getuid():
        raise ConfigError(f"MULTIFLEXI_JOB_USER: {found.name!r} must not be root or the daemon")
    return found


def job_command(argv: Sequence[str], run_as: RunAs | None) -> tuple[list[str], dict[str, Any]]:
    """The command line and Popen arguments for a process of a job (its command, a
    CustomCommand action): its own process group, private umask, and the switch to the job
    user, with no supplementary groups; the kernel drops every capability of a root parent on
    that switch (see docs/security.md). `run_as` None: the daemon's own user (job_identity)."""
    args: dict[str, Any] = {"process_group": 0, "umask": JOB_UMASK}
    if run_as is None:
        return list(argv), args
    # Popen switches users only in a full fork() of the executor (vfork is unsafe with setuid
    # in the child): ~1.8 ms of its CPU per job at 60 MiB, most of a job's cost. As root a
    # small program started with vfork switches instead, then execs the command.
    chroot = _chroot_switch(run_as.uid, run_as.gid)
    if chroot is not None:
        return [*chroot, *argv], args
    if _setpriv_usable():
        # setpriv keeps its capabilities up to its exec, so a second setpriv (no options) execs
        # the command as the job user with none: the kernel checks the command's execute
        # permission against the job user. Two execs: ~0.8 ms more CPU than chroot's one.
        switch = [SETPRIV, f"--reuid={run_as.uid}", f"--regid={run_as.gid}", "--clear-groups"]
        return [*switch, "--", SETPRIV, "--", *argv], args
    args.update(user=run_as.uid, group=run_as.gid, extra_groups=[])
    return list(argv), args


@functools.cache
def _chroot_switch(uid: int, gid: int) -> tuple[str, ...] | None:
    """As root: GNU chroot's `--userspec` into the root the process already has (`/`, keeping
    the work directory): setgroups(0), setgid, setuid, exec. Its setuid from root drops every
    capability before the exec, so the command's execute permission is the job user's to have
    (a 0700 root binary answers 126), with one exec of a small program where setpriv needs
    two (~1.6 against ~2.4 ms of CPU per job here). Checked once per user by running it: the
    credentials it leaves must be exactly the job user's, no groups, no capability; a system
    without it, a coreutils that does otherwise or a root without CAP_SYS_CHROOT (a hardened
    container) keep setpriv."""
    if os.geteuid() != 0:
        return None
    path = shutil.which("chroot", path="/usr/sbin:/usr/bin:/sbin:/bin")
    cat = shutil.which("cat", path="/usr/bin:/bin")
    if path is None or cat is None:
        return None
    switch = (path, "--skip-chdir", f"--userspec={uid}:{gid}", "--groups=", "--", "/")
    try:
        probe = subprocess.run(
            [*switch, cat, "/proc/self/status"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env={},
            cwd="/",
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("action=job_switch_probe_failed tool=chroot error=%r", exc)
        return None
    lines = probe.stdout.decode(errors="replace").splitlines()
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    expected = {
        "Uid": [str(uid)] * 4,
        "Gid": [str(gid)] * 4,
        "Groups": [],
        **{caps: ["0000000000000000"] for caps in ("CapInh", "CapPrm", "CapEff", "CapAmb")},
    }
    found = {key: fields.get(key, "?").split() for key in expected}
    if probe.returncode != 0 or found != expected:
        log.warning(
            "action=job_switch_probe_refused tool=chroot exit=%s found=%s",
            probe.returncode, found,
        )  # fmt: skip
        return None
    return switch


@functools.cache
def _setpriv_usable() -> bool:
    """Only as root: a non-root executor holds its setuid capability in no ambient set, so an
    exec'd setpriv would have none (systemd's design), and it must never be handed one."""
    return os.geteuid() == 0 and os.access(SETPRIV, os.X_OK)


def private_dir(path: Path, mode: int = 0o700) -> None:
    """Create (or tighten) a directory of the platform's own files."""
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    if path.stat().st_mode & 0o777 != mode:
        path.chmod(mode)


def private_sqlite(url: str) -> None:
    """The SQLite file and its -wal/-shm: 0600 (SQLite gives -wal/-shm the database's mode)."""
    if not url.startswith("sqlite:///") or ":memory:" in url:
        return
    base = Path(url.removeprefix("sqlite:///").split("?", 1)[0])
    for path in (base, Path(f"{base}-wal"), Path(f"{base}-shm"), Path(f"{base}-journal")):
        if path.exists() and path.stat().st_mode & 0o077:
            path.chmod(0o600)


def private_files(settings: Settings, *, work_area: bool, shared_tmp: bool = False) -> None:
    """Tighten the database, artifact store and (`work_area`: the executor, its owner) the work
    area; `shared_tmp`: jobs run as another user and must reach their own work directory by
    its path (0711: enter, never list)."""
    private_sqlite(settings.database_url)
    private_dir(Path(settings.artifact_dir))
    if work_area:
        private_dir(Path(settings.tmp_dir), 0o711 if shared_tmp else 0o700)
    if work_area and shared_tmp:
        _searchable_ancestors(Path(settings.tmp_dir))


def _searchable_ancestors(path: Path) -> None:
    """The job user reaches its work directory by absolute path (MULTIFLEXI_TMP): our own
    ancestors of the work area get search permission for others (x: enter, never list)."""
    for parent in Path(os.path.abspath(path)).parents:
        st = parent.stat()
        if st.st_uid == os.geteuid() and not st.st_mode & 0o001:
            parent.chmod((st.st_mode & 0o7777) | 0o001)
            log.info("action=dir_searchable path=%s", parent)


def harden_daemon(kind: str, settings: Settings) -> None:
    """At a daemon's start: umask, keys out of the environment, files private, and nothing of
    this process (environ, mem, maps) readable by a process of the same user."""
    private_umask()
    forget_keys()
    clear_ambient_caps()
    set_undumpable()
    switching = kind == "executor" and bool(settings.job_user) and can_switch_user()
    private_files(settings, work_area=kind == "executor", shared_tmp=switching)
    if kind == "executor" and not switching:
        log.warning(
            "daemon=executor action=jobs_share_user uid=%s reason=%s",
            os.getuid(),
            "MULTIFLEXI_JOB_USER=daemon" if not settings.job_user else "cannot switch users",
        )
