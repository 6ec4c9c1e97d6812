"""Job output: chunks batched into the database while the job runs, capped per stream.

Beyond the cap the first half is kept (head) and a rolling window of the last half (tail):
tail rows that fall out of the window are deleted and counted as dropped, so neither the
database nor the daemon holds more than the cap of a stream (rows are evicted whole).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from multiflexi_web.db.raw import driver
from multiflexi_web.models import Job, JobOutput, utcnow
from multiflexi_web.services.jobs import statements as job_sql

STREAMS = ("stdout", "stderr")
ROW_MAX = 256 * 1024  # bytes merged into one row: also the granularity of tail eviction
FLUSH_EVERY = 0.5  # seconds a chunk may wait before it is visible to readers


@dataclass
class _Row:
    seq: int
    stream: str
    data: bytearray
    tail: bool
    size: int = 0
    stored: bool = False


@dataclass
class StreamState:
    head_left: int
    tail_cap: int
    total: int = 0
    dropped: int = 0
    head_stored: int = 0
    head_last_seq: int = 0
    tail: deque[_Row] = field(default_factory=deque)
    tail_bytes: int = 0
    delete_upto: int = 0


@dataclass(frozen=True)
class Batch:
    rows: list[dict[str, Any]]
    deletes: dict[str, tuple[int, int]]  # stream -> (last head seq, last evicted seq)
    counters: dict[str, int]


class OutputSink:
    """Per-job buffer: add() as output arrives, take() a batch whenever it is due."""

    def __init__(self, job_id: int, cap_bytes: int) -> None:
        self.job_id = job_id
        self._seq = 0
        self._pending: list[_Row] = []
        self._pending_bytes = 0
        self._first_pending = 0.0
        self.ever_flushed = {s: False for s in STREAMS}
        self.streams = {
            s: StreamState(head_left=cap_bytes // 2, tail_cap=cap_bytes - cap_bytes // 2)
            for s in STREAMS
        }

    def add(self, stream: str, data: bytes) -> None:
        st = self.streams[stream]
        st.total += len(data)
        if st.head_left > 0:
            head = data[: st.head_left]
            st.head_left -= len(head)
            st.head_stored += len(head)
            st.head_last_seq = self._append(stream, head, tail=False).seq
            data = data[len(head) :]
        if data:
            row = self._append(stream, data, tail=True)
            if not st.tail or st.tail[-1] is not row:
                st.tail.append(row)
            st.tail_bytes += len(data)
            self._evict(st)

    def _append(self, stream: str, data: bytes, *, tail: bool) -> _Row:
        last = self._pending[-1] if self._pending else None
        if last and last.stream == stream and last.tail == tail and last.size < ROW_MAX:
            last.data += data
        else:
            self._seq += 1
            last = _Row(self._seq, stream, bytearray(data), tail)
            self._pending.append(last)
        last.size += len(data)
        if not self._pending_bytes:
            self._first_pending = time.monotonic()
        self._pending_bytes += len(data)
        return last

    def _evict(self, st: StreamState) -> None:
        while len(st.tail) > 1 and st.tail_bytes > st.tail_cap:
            row = st.tail.popleft()
            st.tail_bytes -= row.size
            st.dropped += row.size
            if row.stored:
                st.delete_upto = max(st.delete_upto, row.seq)
            else:
                self._pending.remove(row)
                self._pending_bytes -= row.size
            row.data = bytearray()

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def due(self) -> bool:
        if not self._pending_bytes:
            return any(st.delete_upto for st in self.streams.values())
        return (
            self._pending_bytes >= ROW_MAX or time.monotonic() - self._first_pending >= FLUSH_EVERY
        )

    def memory_content(self, stream: str) -> bytes | None:
        """The whole stream when nothing of it was flushed yet (the common, short job)."""
        if self.ever_flushed[stream] or self.streams[stream].dropped:
            return None
        return b"".join(bytes(r.data) for r in self._pending if r.stream == stream)

    def memory_tail(self, stream: str, chunks: int) -> list[bytes] | None:
        """The stream's last `chunks` rows as the database will hold them once this sink's
        rows are stored, when none was flushed or dropped yet (else None: read them there)."""
        if self.ever_flushed[stream] or self.streams[stream].dropped:
            return None
        rows = [bytes(r.data) for r in self._pending if r.stream == stream and r.data]
        return rows[-chunks:]

    def peek(self) -> Batch:
        """What take() would return, leaving everything as it is (for the journal's exit entry;
        the rows share the buffers, so use it before the next add())."""
        rows = [
            {"job_id": self.job_id, "seq": r.seq, "stream": r.stream, "data": r.data}
            for r in self._pending
            if r.data
        ]
        deletes = {
            s: (st.head_last_seq, st.delete_upto)
            for s, st in self.streams.items()
            if st.delete_upto
        }
        return Batch(rows, deletes, self.counters())

    def take(self) -> Batch:
        # The bytearrays themselves go to the driver (no copy); the rows let go of them below.
        batch = self.peek()
        for r in self._pending:
            r.stored = True
            self.ever_flushed[r.stream] = True
            r.data = bytearray()  # stored: only the size of a tail row still matters
        self._pending, self._pending_bytes = [], 0
        for st in self.streams.values():
            st.delete_upto = 0
        return batch

    def counters(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s, st in self.streams.items():
            out[f"{s}_bytes"], out[f"{s}_dropped"] = st.total, st.dropped
        return out


def store(session: Session, batch: Batch, job_id: int, *, counters: bool = True) -> None:
    """Write a batch: new rows, evicted tail rows, and (optionally) the job's byte counters."""
    if not batch.rows and not batch.deletes:
        return
    if batch.rows:
        now = utcnow()
        driver(session).many(job_sql.OUTPUT_INSERT, [{**r, "created_at": now} for r in batch.rows])
    for stream, (head_seq, upto) in batch.deletes.items():
        session.execute(
            delete(JobOutput).where(
                JobOutput.job_id == job_id,
                JobOutput.stream == stream,
                JobOutput.seq > head_seq,
                JobOutput.seq <= upto,
            )
        )
    if counters:
        session.execute(update(Job).where(Job.id == job_id).values(**batch.counters))


def stored_seqs(session: Session, job_id: int) -> set[int]:
    """The seq numbers of a job's stored rows (for a replay that may hold some of them)."""
    return set(session.scalars(select(JobOutput.seq).where(JobOutput.job_id == job_id)))


def chunks_after(
    session: Session, job_id: int, after_id: int = 0, stream: str | None = None, limit: int = 500
) -> list[JobOutput]:
    """Output rows of a job newer than `after_id`, oldest first: for incremental readers."""
    q = select(JobOutput).where(JobOutput.job_id == job_id, JobOutput.id > after_id)
    if stream:
        q = q.where(JobOutput.stream == stream)
    return list(session.scalars(q.order_by(JobOutput.id).limit(limit)))


def stream_bytes(session: Session, job_id: int, stream: str) -> Iterator[bytes]:
    """A stream's stored bytes in order, a row at a time (never the whole stream in memory)."""
    last = 0
    while True:
        rows = session.execute(
            select(JobOutput.seq, JobOutput.data)
            .where(JobOutput.job_id == job_id, JobOutput.stream == stream, JobOutput.seq > last)
            .order_by(JobOutput.seq)
            .limit(4)
        ).all()
        if not rows:
            return
        for seq, data in rows:
            last = seq
            yield bytes(data)


def stored_with_marker(
    session: Session, job_id: int, stream: str, st: StreamState
) -> Iterator[bytes]:
    """The stored stream for its artifact: head, a line saying how much was dropped, tail."""
    sent = 0
    for chunk in stream_bytes(session, job_id, stream):
        yield chunk
        sent += len(chunk)
        if st.dropped and sent == st.head_stored:
            yield f"\n[... {st.dropped} bytes dropped by the output cap ...]\n".encode()
