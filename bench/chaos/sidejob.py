"""The chaos job: records its run in a side file (under flock), sleeps, records the end.

    sidejob.py SIDE_FILE SECONDS [ARTIFACT_BYTES]

Lines: "<job id> <key> <pid> <event> <unix time>", event one of start, beat (every 0.5 s),
term (SIGTERM received) and end (the work is done: the last thing before exit 0). The key is
$CHAOS_KEY (set by event rules) or "-". The attempt is not known here: the harness reads it from
the database by job id. ARTIFACT_BYTES > 0 writes blob.bin of that size into the work directory
before the end line (an artifact for the disk-full scenario).
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time

BEAT = 0.5


def record(path: str, event: str) -> None:
    job = os.environ.get("MULTIFLEXI_JOB_ID", "?")
    key = os.environ.get("CHAOS_KEY") or "-"
    line = f"{job} {key} {os.getpid()} {event} {time.time():.3f}\n"
    with open(path, "a", encoding="ascii") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(line)
        fh.flush()
        fcntl.flock(fh, fcntl.LOCK_UN)


def main() -> None:
    side, seconds = sys.argv[1], float(sys.argv[2])
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 0

    def on_term(_sig: int, _frame: object) -> None:
        record(side, "term")
        sys.exit(143)

    signal.signal(signal.SIGTERM, on_term)
    record(side, "start")
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(BEAT, left))
        if left > BEAT:
            record(side, "beat")
    if size:
        with open("blob.bin", "wb") as fh:
            fh.write(b"x" * size)
    print("done", flush=True)
    record(side, "end")
    # Exit at once: `end` must be the last thing before the exit, as the docstring says. The
    # interpreter's teardown after it (~10 ms idle, more under load; 1.5 ms from `end` to the
    # parent seeing the exit now) was a window in which a kill -9 of the executor had the guard
    # kill a job whose work was done: it ran again and counted "twice", though no supervisor
    # can know a job's work is done before the job exits.
    os._exit(0)


if __name__ == "__main__":
    main()
