"""One job in one container: image, create, attach, start, stream, police, exit code, remove.

The output is attached before the container starts (nothing is missed, and the engine keeps no
log of its own: log driver `none`) and read by a helper thread into a bounded queue; the job
thread hands it to the JobIO (which talks to the database) and polls timeout and stop requests
in between, like the native module. Whatever happens, the container is removed at the end.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import LogConfig
from requests.exceptions import RequestException

from multiflexi_web.errors import first_line
from multiflexi_web.executors import engine
from multiflexi_web.executors.base import JobIO, JobSpec, RunResult
from multiflexi_web.executors.container_env import container_env, remap
from multiflexi_web.executors.container_labels import LABEL_INSTALLATION, LABEL_JOB, LABEL_WORKER
from multiflexi_web.executors.container_options import ContainerOptions
from multiflexi_web.executors.container_user import ContainerUser
from multiflexi_web.runner import guard

log = logging.getLogger("multiflexi.executor")
WORKDIR = "/work"  # where the job's work directory appears inside the container
TICK = 0.2  # how often a quiet job checks its timeout and stop requests
QUEUE_CHUNKS = 64  # output chunks buffered between the reader thread and the job thread
DONE = ("", b"")  # the reader's last item
WAIT = 1.0  # seconds one wait for the exit may take before the job thread polices again
ENGINE_GONE = 60.0  # seconds without an answer from the engine before a job is given up


class RunProblem(Exception):
    """The job could not run; args: (exit code or None, message)."""


class ContainerRun:
    def __init__(
        self,
        client: docker.DockerClient,
        spec: JobSpec,
        io: JobIO,
        opts: ContainerOptions,
        user: ContainerUser,
        address: str = "",
    ) -> None:
        self.api, self.spec, self.io, self.opts = client.api, spec, io, opts
        self.user, self.address = user, address  # the engine's, for the job guard
        self.queue: queue.Queue[tuple[str, bytes]] = queue.Queue(QUEUE_CHUNKS)
        self.abandoned = threading.Event()
        self.reason: str | None = None
        self.deadline = time.monotonic() + spec.timeout if spec.timeout else None
        self.kill_at: float | None = None
        self.stream_error: str | None = None
        self.ct = ""  # the container's id once created
        self.exit_code: int | None = None  # once the engine reported the exit

    def run(self) -> RunResult:
        try:
            self._image()
            ct = self.ct = self._create()
        except RunProblem as exc:
            return RunResult(exc.args[0], error=exc.args[1])
        # Before it starts: killed and removed by the job guard if this executor dies meanwhile.
        guard.watch_container(ct, self.address)
        try:
            self.user.hand_over(self.spec.workdir)
            try:
                result = self._supervise(ct)
            except RunProblem as exc:
                result = RunResult(exc.args[0], error=exc.args[1])
            # The exit is journaled before the container, the engine's record of it, is
            # removed: an executor killed in between leaves one or the other, never neither
            # (the job would be reaped as lost and run again; runner/engines.py).
            self.io.ended(result)
            return result
        finally:
            self.abandoned.set()
            remove(self.api, ct, kill=self.exit_code is None)
            guard.forget_container(ct)
            self.user.take_back(self.spec.workdir)

    # -- before it starts -----------------------------------------------------------------------
    def _image(self) -> None:
        image, pull = self.spec.app.ociimage or "", self.opts.pull
        if not image:
            raise RunProblem(None, "the application has no OCI image (ociimage)")
        if pull != "always":
            try:
                self.api.inspect_image(image)
                return
            except ImageNotFound:
                if pull == "never":
                    raise RunProblem(
                        None, f"image {image!r} is not on the engine and the pull policy is never"
                    ) from None
            except (DockerException, RequestException) as exc:
                raise RunProblem(
                    None, f"cannot inspect image {image!r}: {first_line(exc)}"
                ) from None
        self._pull(image)

    def _pull(self, image: str) -> None:
        repo, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
        try:
            self.api.pull(repo, tag=tag or "latest", timeout=engine.PULL_TIMEOUT)
        except (DockerException, RequestException) as exc:
            raise RunProblem(None, f"cannot pull image {image!r}: {first_line(exc)}") from None

    def _create(self) -> str:
        spec, host = self.spec, str(self.spec.workdir)
        labels = {
            LABEL_JOB: str(spec.job_id),
            LABEL_WORKER: str(spec.worker_id or ""),
            LABEL_INSTALLATION: spec.installation,
        }
        try:
            host_config = self.api.create_host_config(
                binds={host: {"bind": WORKDIR, "mode": "rw"}},
                log_config=LogConfig(type="none"),
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                **self.opts.host_config(),
            )
            created = self.api.create_container(
                spec.app.ociimage,
                entrypoint=[remap(spec.argv[0], host, WORKDIR)],
                command=[remap(a, host, WORKDIR) for a in spec.argv[1:]],
                environment=container_env(spec, WORKDIR),
                name=f"multiflexi-job-{spec.job_id}-{secrets.token_hex(3)}",
                labels=labels,
                user=self.user.spec,
                working_dir=WORKDIR,
                host_config=host_config,
            )
        except (DockerException, RequestException) as exc:
            raise _problem(None, "cannot create the container", exc) from None
        return str(created["Id"])

    # -- while it runs --------------------------------------------------------------------------
    def _supervise(self, ct: str) -> RunResult:
        try:
            stream = self.api.attach(ct, stdout=True, stderr=True, stream=True, demux=True)
        except (DockerException, RequestException) as exc:
            raise RunProblem(None, f"cannot attach to the container: {first_line(exc)}") from None
        reader = threading.Thread(target=self._read, args=(stream,), name=f"attach-{ct[:12]}")
        reader.daemon = True
        reader.start()
        try:
            self.api.start(ct)
        except (DockerException, RequestException) as exc:
            code = 127 if re.search(r"not found|no such file", str(exc), re.I) else 126
            raise RunProblem(
                code, f"cannot start {self.spec.argv[0]!r}: {first_line(exc)}"
            ) from None
        self.io.started(container_id=ct)
        self._police(time.monotonic())  # at least once: the daemon records the id meanwhile
        self._pump()
        code = self._exit_code(ct)
        return self._result(ct, code)

    def _read(self, stream: Iterator[tuple[bytes | None, bytes | None]]) -> None:
        try:
            for out, err in stream:
                if out:
                    self._put(("stdout", out))
                if err:
                    self._put(("stderr", err))
        except Exception as exc:  # the engine went away: reported, the job thread decides
            self.stream_error = first_line(exc)
        finally:
            self._put(DONE)

    def _put(self, item: tuple[str, bytes]) -> None:
        while not self.abandoned.is_set():
            with contextlib.suppress(queue.Full):
                self.queue.put(item, timeout=TICK)
                return

    def _pump(self) -> None:
        """Hand the output over until the container's streams close."""
        while True:
            try:
                stream, data = self.queue.get(timeout=TICK)
            except queue.Empty:
                stream, data = "", b"-"
            if (stream, data) == DONE:
                return
            if stream:
                self.io.output(stream, data)
            self._police(time.monotonic())

    def _police(self, now: float) -> None:
        if self.reason is None:
            if self.deadline is not None and now >= self.deadline:
                self.reason = "timeout"
            elif self.io.should_stop():
                self.reason = "stop"
            if self.reason is not None:
                self._signal("SIGTERM")
                self.kill_at = now + self.spec.kill_grace
        if self.kill_at is not None and now >= self.kill_at:
            self._signal("SIGKILL")
            self.kill_at = float("inf")

    def kill(self) -> None:
        """No grace (the daemon's second SIGTERM); the job counts as stopped."""
        self.reason = self.reason or "stop"
        if self.ct:
            self._signal("SIGKILL")

    def _signal(self, sig: str) -> None:
        with contextlib.suppress(DockerException, RequestException):
            self.api.kill(self.ct, signal=sig)

    def _exit_code(self, ct: str) -> int:
        """The streams closed: wait for the exit (still policing: a job may close them early).
        A wait that ends before its timeout without an answer means the engine is away; after
        ENGINE_GONE seconds of that the job is given up (the reaper removes the container)."""
        failing_since: float | None = None
        while True:
            t0 = time.monotonic()
            try:
                self.exit_code = int(self.api.wait(ct, timeout=WAIT)["StatusCode"])
                return self.exit_code
            except RequestException as exc:  # a read timeout is a ConnectionError (TESTING.md)
                now = time.monotonic()
                if now - t0 < WAIT / 2:  # not a timeout: the engine does not answer
                    failing_since = failing_since or now
                    if now - failing_since >= ENGINE_GONE:
                        raise _problem(None, "lost the container engine", exc) from None
                    self.abandoned.wait(TICK)
                else:
                    failing_since = None
                self._police(now)
            except DockerException as exc:
                raise _problem(None, "lost the container", exc) from None

    def _result(self, ct: str, code: int) -> RunResult:
        timed_out, cancelled = self.reason == "timeout", self.reason == "stop"
        error = None
        if code != 0 and not (timed_out or cancelled):
            error = self._killed_reason(ct, code)
        if error is None and self.stream_error:
            error = f"the output stream broke: {self.stream_error}"
        return RunResult(code, timed_out=timed_out, cancelled=cancelled, error=error)

    def _killed_reason(self, ct: str, code: int) -> str | None:
        limit = f"{(self.opts.memory or 0) // (1024 * 1024)} MiB"
        if self._oom_killed(ct):
            return f"killed by the container's memory limit ({limit})"
        if code == 137 and self.opts.memory:  # Podman does not report OOMKilled
            return f"killed by SIGKILL (exit 137), most likely by the memory limit ({limit})"
        return None

    def _oom_killed(self, ct: str) -> bool:
        try:
            state: dict[str, Any] = self.api.inspect_container(ct)["State"]
        except (DockerException, RequestException):
            return False
        return bool(state.get("OOMKilled"))


def _problem(code: int | None, what: str, exc: BaseException) -> RunProblem:
    return RunProblem(code, f"{what}: {first_line(exc)}")


def _line(exc: BaseException) -> str:
    return first_line(exc).replace(" ", "_")


def remove(api: Any, ct: str, *, kill: bool = True) -> None:
    """Remove a container, running or not; already gone is fine. A running one is killed
    first: a forced remove may give it the engine's stop timeout (Podman: 10 s) first."""
    if kill:
        with contextlib.suppress(DockerException, RequestException):
            api.kill(ct, signal="SIGKILL")
    try:
        api.remove_container(ct, force=True, v=True)
    except NotFound:
        pass
    except (APIError, DockerException, RequestException) as exc:
        # Left for the reaper (runner/engines.py), which removes it by its labels.
        log.warning(
            "action=container_remove_failed container=%s error=%s", ct[:12], first_line(exc)
        )
