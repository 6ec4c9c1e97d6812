"""Keeping the platform's processes and files away from its jobs: umask, keys, dumpable, modes."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from multiflexi_web.config import ConfigError, Settings
from multiflexi_web.executors.base import RunAs

log = logging.getLogger("multiflexi.security")
UMASK = 0o077
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
CAP_SETGID, CAP_SETUID = 6, 7
_SWITCH_CAPS = 1 << CAP_SETGID | 1 << CAP_SETUID
_CAPABILITY_VERSION_3 = 0x20080522  # linux/capability.h: two 32-bit words per set
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


@functools.cache
def _libc() -> ctypes.CDLL:
    # Once per process (~13 µs each): a job's spawn makes five of these calls under systemd,
    # and the guard's child makes them after fork, where loading a library is no safe step.
    return ctypes.CDLL(None, use_errno=True)


def _prctl(*args: int) -> int:
    return int(_libc().prctl(*(ctypes.c_ulong(a) for a in args)))


def set_undumpable() -> bool:
    """Same-user processes (our jobs) can no longer read our /proc/<pid>/environ, mem, maps."""
    return _prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0


def term_with_parent() -> None:
    """This process gets SIGTERM (a clean stop) when the process that started it dies."""
    die_with_parent(15)


def die_with_parent(signum: int) -> None:
    """This process gets `signum` when the thread that started it (or its process) ends."""
    _prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def set_inheritable(bits: int) -> int:
    """Sets this thread's inheritable set (capset with pid 0 changes the calling thread only;
    its effective and permitted sets stay as they are) and returns the one it replaced."""
    libc = _libc()
    header, data = _CapHeader(_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    before = data[0].inheritable | data[1].inheritable << 32
    data[0].inheritable, data[1].inheritable = bits & 0xFFFFFFFF, bits >> 32
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    return int(before)


def clear_ambient_caps() -> None:
    """Capabilities systemd gave us (AmbientCapabilities=) must not pass on to jobs via exec:
    neither ambient nor inheritable (a uid change between two non-root users keeps the
    inheritable set, and an exec'd file with those inheritable file capabilities would gain
    them). Called before any thread starts, so every thread starts without them."""
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    if effective_caps():  # capget/capset exist wherever capabilities do
        with contextlib.suppress(OSError):
            set_inheritable(0)


def keep_across_exec(cap: int) -> None:
    """In a child before its exec (the guard's): `cap` alone in this thread's inheritable and
    ambient sets, so the program exec'd keeps it. The ambient set takes only inheritable ones."""
    set_inheritable(1 << cap)
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0)


@contextlib.contextmanager
def _switch_caps_lent() -> Iterator[None]:
    """CAP_SETUID and CAP_SETGID in this thread's ambient set for one spawn: the setpriv it
    execs gets them and nothing else, switches to the job user, and drops them (inheritable and
    ambient) before it execs the command. Capabilities are per thread, so the executor's other
    threads (and the processes they start meanwhile) never hold them; they are taken back
    before this returns, the spawn failed or not."""
    inheritable = set_inheritable(_SWITCH_CAPS)  # the ambient set takes only inheritable ones
    try:
        for cap in (CAP_SETGID, CAP_SETUID):
            if _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), f"PR_CAP_AMBIENT_RAISE {cap}")
        yield
    finally:
        try:
            # Empty before (harden_daemon cleared it at start), empty after.
            if _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "PR_CAP_AMBIENT_CLEAR_ALL")
            set_inheritable(inheritable)
        except OSError as exc:
            # Never seen (lowering cannot fail), but going on would leave this thread handing
            # CAP_SETUID to the next program it starts, and an exception here would record a
            # started job as not started. Stop as a kill would: the guard kills the jobs'
            # process groups, the next executor replays the journal (docs/architecture.md).
            log.critical("action=switch_caps_not_taken_back error=%s", exc)
            os._exit(70)


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


def start_job_process(
    argv: Sequence[str], run_as: RunAs | None, **popen: Any
) -> subprocess.Popen[bytes]:
    """Popen of a process of a job (its command, a CustomCommand action) as job_command says,
    with the switch capabilities lent to the spawning thread where its setpriv needs them."""
    command, switch = job_command(argv, run_as)
    lend = run_as is not None and _ambient_switch(run_as.uid, run_as.gid) is not None
    with _switch_caps_lent() if lend else contextlib.nullcontext():
        return subprocess.Popen(command, **popen, **switch)


def job_command(argv: Sequence[str], run_as: RunAs | None) -> tuple[list[str], dict[str, Any]]:
    """The command line and Popen arguments for a process of a job (its command, a
    CustomCommand action): its own process group, private umask, and the switch to the job
    user, with no supplementary groups; the kernel drops every capability of a root parent on
    that switch (see docs/security.md). `run_as` None: the daemon's own user (job_identity).
    Start it with start_job_process: a non-root executor's switch needs capabilities lent."""
    args: dict[str, Any] = {"process_group": 0, "umask": JOB_UMASK}
    if run_as is None:
        return list(argv), args
    # Popen switches users only in a full fork() of the executor (vfork is unsafe with setuid
    # in the child): ~1.8 ms of its CPU per job at 60 MiB, most of a job's cost. A small
    # program started with vfork switches instead, then execs the command: as root chroot, as
    # a non-root executor with CAP_SETUID setpriv, given those capabilities for its exec.
    chroot = _chroot_switch(run_as.uid, run_as.gid)
    if chroot is not None:
        return [*chroot, *argv], args
    ambient = _ambient_switch(run_as.uid, run_as.gid)
    if ambient is not None:
        return [*ambient, *argv], args
    if _setpriv_usable():
        # setpriv keeps its capabilities up to its exec, so a second setpriv (no options) execs
        # the command as the job user with none: the kernel checks the command's execute
        # permission against the job user. Two execs: ~0.8 ms more CPU than chroot's one.
        switch = [SETPRIV, f"--reuid={run_as.uid}", f"--regid={run_as.gid}", "--clear-groups"]
        return [*switch, "--", SETPRIV, "--", *argv], args
    args.update(user=run_as.uid, group=run_as.gid, extra_groups=[])
    return list(argv), args


def checked_switch(run_as: RunAs | None) -> str:
    """job_switch, refusing the way a non-root executor must not take: Popen's switch in a
    forked child keeps the daemon's capabilities (CAP_DAC_OVERRIDE...) up to the job's exec."""
    way = job_switch(run_as)
    if way == "popen_fork" and os.geteuid() != 0:
        raise ConfigError(
            "MULTIFLEXI_JOB_USER: this executor is not root, so it switches to the job user "
            f"through {SETPRIV} (util-linux, with --ambient-caps; Linux 4.3+), and that check "
            "failed (see action=job_switch_probe_* above); Popen's own switch would start jobs "
            "with this daemon's capabilities in effect"
        )
    return way


def job_switch(run_as: RunAs | None) -> str:
    """Which way processes of jobs switch to the job user, probed now (the executor logs it at
    start): chroot, setpriv (lent the capabilities), setpriv_twice, popen_fork or none."""
    if run_as is None:
        return "none"
    if _chroot_switch(run_as.uid, run_as.gid) is not None:
        return "chroot"
    if _ambient_switch(run_as.uid, run_as.gid) is not None:
        return "setpriv"
    return "setpriv_twice" if _setpriv_usable() else "popen_fork"


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
    if path is None:
        return None
    switch = (path, "--skip-chdir", f"--userspec={uid}:{gid}", "--groups=", "--", "/")
    return switch if _switch_checks_out("chroot", switch, uid, gid, lend=False) else None


@functools.cache
def _ambient_switch(uid: int, gid: int) -> tuple[str, ...] | None:
    """Not root, with CAP_SETUID and CAP_SETGID (systemd's design): util-linux setpriv,
    started with vfork from a thread that lends it those two capabilities (its ambient set)
    and nothing else. It switches ids, clears its inheritable and ambient sets and execs the
    command, which therefore holds no capability, and whose execute permission is checked
    against the job user (setpriv never has CAP_DAC_OVERRIDE). One exec of a small program
    instead of a full fork of the executor: ~3.0 against ~4.7 ms of CPU per job here. Checked
    once per user by running it; where that check fails, Popen switches users as before."""
    if os.geteuid() == 0 or not can_switch_user() or not os.access(SETPRIV, os.X_OK):
        return None
    ids = (f"--reuid={uid}", f"--regid={gid}", "--clear-groups")
    switch = (SETPRIV, *ids, "--inh-caps=-all", "--ambient-caps=-all", "--")
    return switch if _switch_checks_out("setpriv", switch, uid, gid, lend=True) else None


def _switch_checks_out(tool: str, switch: Sequence[str], uid: int, gid: int, lend: bool) -> bool:
    """Runs `cat /proc/self/status` through `switch`: the credentials it leaves must be
    exactly the job user's (real, effective, saved and filesystem ids), no supplementary
    groups, every capability set empty."""
    cat = shutil.which("cat", path="/usr/bin:/bin")
    if cat is None:
        return False
    try:
        with _switch_caps_lent() if lend else contextlib.nullcontext():
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
        log.warning("action=job_switch_probe_failed tool=%s error=%r", tool, exc)
        return False
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
            "action=job_switch_probe_refused tool=%s exit=%s found=%s",
            tool, probe.returncode, found,
        )  # fmt: skip
        return False
    return True


@functools.cache
def _setpriv_usable() -> bool:
    """As root, where chroot's check failed. A non-root executor's setpriv is _ambient_switch:
    it holds its setuid capability in no ambient set (cleared at start), so a setpriv it execs
    has none unless lent for that one spawn, and the command must never be handed any."""
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
