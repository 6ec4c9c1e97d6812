"""Known secret values masked in what the platform stores or shows (argv, output chunks)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from multiflexi_web.security.secrets import MASK

MIN_SECRET_LEN = 4  # shorter values ("1", "yes") would mask half of any output
MASK_BYTES = MASK.encode()


class Masker:
    """One compiled alternation of a job's secret values (longest first), built once per job."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)
        encoded = [v.encode() for v in values]
        self.values = tuple(encoded)
        self.longest = max((len(v) for v in encoded), default=0)
        self._text = re.compile("|".join(map(re.escape, values))) if values else None
        self.bytes_pattern = re.compile(b"|".join(map(re.escape, encoded))) if values else None

    def __bool__(self) -> bool:
        return self._text is not None

    def text(self, value: str) -> str:
        return self._text.sub(MASK, value) if self._text is not None else value

    def data(self, value: bytes) -> bytes:
        return (
            self.bytes_pattern.sub(MASK_BYTES, value) if self.bytes_pattern is not None else value
        )


class StreamMasker:
    """Masks a byte stream that arrives in chunks: a value split across two chunks is still
    masked, because the last `longest - 1` bytes are held back until more data (or the end)."""

    def __init__(self, masker: Masker) -> None:
        self._pattern = masker.bytes_pattern
        self._values = masker.values
        self._keep = max(masker.longest - 1, 0)
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        if self._pattern is None:
            return data
        text = self._held + data
        cut = max(len(text) - self._keep, 0)
        if not any(v in text for v in self._values):  # the usual chunk: C-speed substring tests
            self._held = text[cut:]
            return text[:cut]
        out, pos = bytearray(), 0
        # Every match starting before `cut` is complete in `text` (it is at most `keep`+1 long).
        for m in self._pattern.finditer(text, 0, len(text)):
            if m.start() >= cut:
                break
            out += text[pos : m.start()] + MASK_BYTES
            pos = m.end()
        cut = max(cut, pos)
        out += text[pos:cut]
        self._held = text[cut:]
        return bytes(out)

    def flush(self) -> bytes:
        """The held-back rest at the end of the stream."""
        rest, self._held = self._held, b""
        return self._pattern.sub(MASK_BYTES, rest) if self._pattern is not None else rest


class JobMasks:
    """A job's masking: its secret values for what is stored, and per output stream a
    StreamMasker when its output is masked (none at all when the job has no secrets)."""

    def __init__(self, secrets: Iterable[str] = (), streams: Iterable[str] = ()) -> None:
        self.masker = Masker(secrets)
        self.streams = {s: StreamMasker(self.masker) for s in streams} if self.masker else {}

    def text(self, value: str) -> str:
        return self.masker.text(value)

    def rests(self) -> list[tuple[str, bytes]]:
        """What each stream held back, masked: at the end of the job."""
        return [(s, rest) for s, m in self.streams.items() if (rest := m.flush())]
