"""A Pod's log followed off-thread, and its /work copied out with `tar` through exec."""

from __future__ import annotations

import os
import queue
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO, Any

from multiflexi_web.executors import sdk
from multiflexi_web.executors.k8s_objects import KEEPER, MAIN, MOUNT

READ_SIZE = 64 * 1024
MIB = 1024 * 1024
STDERR_KEEP = 4096  # of tar's complaints, the tail is kept for the job's error
END = b""  # the follower's last item: the log stream is over


class LogFollower:
    """Follows the main container's log (`follow=true`) in a thread; the module's own thread
    drains the chunks, so the job's IO is only ever called from the thread that runs the job."""

    def __init__(self, core: Any, name: str, namespace: str) -> None:
        self.chunks: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self.error: str | None = None
        self.done = threading.Event()
        args = (core, name, namespace)
        self._thread = threading.Thread(target=self._follow, args=args, daemon=True)
        self._thread.start()

    def _follow(self, core: Any, name: str, namespace: str) -> None:
        try:
            resp = core.read_namespaced_pod_log(
                name, namespace, container=MAIN, follow=True, _preload_content=False
            )
            try:
                while data := resp.read1(READ_SIZE):
                    self.chunks.put(data)
            finally:
                resp.release_conn()
        except Exception as exc:  # reported on the job, never lost in a thread
            self.error = f"log stream broke: {exc}"
        finally:
            self.chunks.put(END)

    def drain(self, wait: float) -> list[bytes]:
        """The chunks that arrived, waiting up to `wait` seconds for the first one."""
        out: list[bytes] = []
        try:
            item = self.chunks.get(timeout=wait) if wait > 0 else self.chunks.get_nowait()
            while True:
                if item == END:
                    self.done.set()
                    break
                out.append(item)
                item = self.chunks.get_nowait()
        except queue.Empty:
            pass
        return out


class _Discard:
    """Replaces the exec client's copy of everything it received (it would hold the whole tar)."""

    def write(self, data: bytes) -> None:
        pass


class CopyStopped(Exception):
    """The job was cancelled or timed out while its files were being copied."""


def copy_out(
    core: Any, name: str, namespace: str, workdir: Path, limit_mb: float, stop: Callable[[], bool]
) -> None:
    """`tar cf - -C /work .` in the keeper container, unpacked into the job's work directory;
    raises RuntimeError with the reason when the copy fails or passes `limit_mb`. `stop` is
    asked between reads (it also beats the job's heartbeat: a big copy takes a while)."""
    sdk.load(sdk.KUBERNETES)
    from kubernetes.stream import stream

    ws = stream(
        core.connect_get_namespaced_pod_exec,
        name,
        namespace,
        container=KEEPER,
        command=["tar", "cf", "-", "-C", MOUNT, "."],
        stdin=False,
        stdout=True,
        stderr=True,
        tty=False,
        binary=True,
        _preload_content=False,
    )
    ws._all = _Discard()
    with tempfile.TemporaryFile() as buf:
        errors = _pump(ws, buf, int(limit_mb * MIB), stop)
        code = _returncode(ws)
        if code != 0:
            text = errors.decode(errors="replace").strip()
            raise RuntimeError(f"tar in the {KEEPER} container exited {code}: {text}")
        buf.seek(0)
        _unpack(buf, workdir)


def _returncode(ws: Any) -> int:
    """tar's exit status from the stream's status channel."""
    try:
        return int(ws.returncode)
    except (TypeError, KeyError, IndexError, ValueError):  # no or a garbled status message
        raise RuntimeError("the exec stream ended without tar's exit status") from None


def _pump(ws: Any, buf: IO[bytes], limit: int, stop: Callable[[], bool]) -> bytes:
    """Stdout of the exec into `buf` until the stream closes; stderr's tail is returned."""
    errors: bytes = b""
    try:
        while True:
            is_open = ws.is_open()
            if is_open:
                ws.update(timeout=1)
            buf.write(ws.read_channel(1))
            errors = (errors + ws.read_channel(2))[-STDERR_KEEP:]
            if buf.tell() > limit:
                size = f"{limit / MIB:g} MiB"
                raise RuntimeError(f"the result files pass {size} (MULTIFLEXI_K8S_COPY_MAX_MB)")
            if not is_open:
                break
            if stop():
                raise CopyStopped
    finally:
        ws.close()
    return errors


def _unpack(buf: IO[bytes], workdir: Path) -> None:
    """Regular files only, inside the work directory, owned by the daemon, mode 0600: absolute
    paths, `..` and paths through a link are skipped one by one (the rest still come back);
    links and devices altogether. By hand: Debian 12's Python 3.11.2 has no extraction filters."""
    root = workdir.resolve()
    with tarfile.open(fileobj=buf, mode="r:") as tar:
        for member in tar:
            target = _inside(root, member.name) if member.isfile() else None
            source = tar.extractfile(member) if target is not None else None
            if target is None or source is None:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.parent.resolve() != target.parent:
                continue  # a link on the way out of the work directory
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
            with source, os.fdopen(os.open(target, flags, 0o600), "wb") as out:
                shutil.copyfileobj(source, out)
            os.chmod(target, 0o600)


def _inside(root: Path, name: str) -> Path | None:
    parts = PurePosixPath(name).parts
    if not parts or parts[0] == "/" or ".." in parts:
        return None
    target = root.joinpath(*[p for p in parts if p != "."])
    return target if target != root and root in target.parents else None
