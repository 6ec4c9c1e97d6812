"""A job's stored output read incrementally (`after=<chunk id>`), decoded and rendered to HTML."""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from sqlalchemy import and_, select

from multiflexi_web.extensions import db
from multiflexi_web.models import LIVE_STATUSES, Job, JobOutput
from multiflexi_web.views.jobs.ansi import AnsiConverter

# One poll returns at most this many rows / bytes (the executor merges output into rows of up to
# 256 KiB); when there is more, the poller asks again at once.
CHUNK_LIMIT = 32
POLL_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Piece:
    stream: str
    html: str


@dataclass(frozen=True)
class OutputBatch:
    job_id: int
    company_id: int
    status: str
    pieces: list[Piece]
    last_id: int
    more: bool  # the limit was hit: more chunks are already stored

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def keep_polling(self) -> bool:
        return self.live or self.more


def read_batch(
    job_id: int, after: int, limit: int = CHUNK_LIMIT, byte_cap: int | None = POLL_BYTES
) -> OutputBatch | None:
    """The job's status and its chunks after `after`, in one statement (None: no such job).

    One indexed query: the job by primary key joined to job_output(job_id, id) > after. A single
    statement sees one snapshot, so a finished status never comes without its last output.
    """
    q = (
        select(Job.status, Job.company_id, JobOutput.id, JobOutput.stream, JobOutput.data)
        .select_from(Job)
        .outerjoin(JobOutput, and_(JobOutput.job_id == Job.id, JobOutput.id > after))
        .where(Job.id == job_id)
        .order_by(JobOutput.id)
        .limit(limit)
    )
    rows = db.session.execute(q).all()
    if not rows:
        return None
    status, company_id = rows[0][0], rows[0][1]
    stored = [(r[2], r[3], r[4]) for r in rows if r[2] is not None]
    chunks = _capped(stored, byte_cap)
    more = len(rows) >= limit or len(chunks) < len(stored)
    # Only the true end of the output may be flushed with replacement characters.
    final = status not in LIVE_STATUSES and not more
    pieces, last_id = render_chunks(chunks, after, final=final)
    return OutputBatch(job_id, company_id, status, pieces, last_id, more=more)


def _capped(chunks: list[tuple[int, str, bytes]], cap: int | None) -> list[tuple[int, str, bytes]]:
    if cap is None:
        return chunks
    total = 0
    for i, (_, _, data) in enumerate(chunks):
        total += len(data)
        if total > cap and i > 0:
            return chunks[:i]
    return chunks


def render_chunks(
    chunks: list[tuple[int, str, bytes]], after: int, *, final: bool
) -> tuple[list[Piece], int]:
    """Decode chunks (id, stream, data) to HTML pieces; returns them and the last id consumed."""
    texts = _decode(chunks, final=final)
    used = chunks[: len(texts)]
    converters: dict[str, AnsiConverter] = {}
    pieces: list[Piece] = []
    for (_, stream, _), text in zip(used, texts, strict=True):
        html = converters.setdefault(stream, AnsiConverter()).feed(text)
        if pieces and pieces[-1].stream == stream:
            pieces[-1] = Piece(stream, pieces[-1].html + html)
        elif html:
            pieces.append(Piece(stream, html))
    return pieces, (used[-1][0] if used else after)


def _decode(chunks: list[tuple[int, str, bytes]], *, final: bool) -> list[str]:
    """UTF-8 text of each chunk, with one incremental decoder per stream so characters split
    between chunks survive. While the job runs, a last chunk that ends mid-character is left for
    the next poll (it will be re-read together with its continuation)."""
    decoders: dict[str, codecs.IncrementalDecoder] = {}
    texts: list[str] = []
    for _, stream, data in chunks:
        dec = decoders.setdefault(stream, codecs.getincrementaldecoder("utf-8")("replace"))
        texts.append(dec.decode(data))
    pending = {s for s, d in decoders.items() if d.getstate()[0]}
    if not pending:
        return texts
    last_stream = chunks[-1][1]
    if not final and pending == {last_stream} and not _earlier_pending(chunks, last_stream):
        return texts[:-1]
    # Finished (or an unfinished character in the middle): flush with replacement characters.
    for i in reversed(range(len(chunks))):
        stream = chunks[i][1]
        if stream in pending:
            texts[i] += decoders[stream].decode(b"", final=True)
            pending.discard(stream)
    return texts


def _earlier_pending(chunks: list[tuple[int, str, bytes]], stream: str) -> bool:
    """True when dropping the last chunk would still leave its stream mid-character."""
    dec = codecs.getincrementaldecoder("utf-8")("replace")
    for _, s, data in chunks[:-1]:
        if s == stream:
            dec.decode(data)
    return bool(dec.getstate()[0])
