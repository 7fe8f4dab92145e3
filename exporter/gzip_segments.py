"""One gzip stream made of segments compressed on their own, so one can change without the others.

A large org's agent families are tens of MB of text, slow to compress; the queue families are a
few MB and change every few seconds. Compressed as separate raw deflate
runs, each ended on a byte boundary by a sync flush and never referring back to another, the
segments concatenate into one valid deflate stream (as pigz does); the gzip trailer's CRC-32 is
combined from the segments' CRCs and lengths, so no segment's text is needed again. Clients see
one ordinary gzip member: Prometheus, curl and browsers alike.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass

LEVEL = 1  # the page is mostly repeated label text: level 1 compresses it well at a fraction of 6's CPU
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip magic, deflate, no flags, no mtime, unknown OS
_LAST_BLOCK = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS).flush()  # an empty final block


@dataclass(frozen=True, slots=True)
class Segment:
    # Raw deflate blocks, none final, ending on a byte boundary, in pieces: a joined segment keeps its
    # parts' bytes rather than a copy of them (the agent states' runs would otherwise be held twice).
    pieces: tuple[bytes, ...]
    crc: int  # CRC-32 of the text
    size: int  # bytes of text
    samples: int = 0  # lines of text that are samples, not HELP or TYPE: the series a scrape of it stores


EMPTY = Segment((), 0, 0)


def compress(texts: Iterable[str]) -> Segment:
    """Encode and deflate the texts one by one, so the whole segment is never held as text."""
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunks, crc, size, samples = [], 0, 0, 0
    for text in texts:
        data = text.encode()
        crc, size = zlib.crc32(data, crc), size + len(data)
        # Label values hold no raw line feed (escaped), so a '#' after one starts a comment line.
        samples += data.count(b"\n") - data.count(b"\n#") - data.startswith(b"#")
        chunks.append(compressor.compress(data))
    chunks.append(compressor.flush(zlib.Z_SYNC_FLUSH))
    return Segment((b"".join(chunks),), crc, size, samples)


class Runs:
    """Runs of a segment's text compressed while each piece of the run is the very object it was: a
    segment too big to compress whole at every change compresses again only the runs that moved.
    The runs not asked for since the last `forget_unused` go then, and their text with them."""

    def __init__(self) -> None:
        self.kept: dict[Hashable, tuple[tuple[str, ...], Segment]] = {}
        self._used: set[Hashable] = set()

    def __call__(self, key: Hashable, run: tuple[str, ...]) -> Segment:
        kept = self.kept.get(key)
        if kept is None or len(kept[0]) != len(run) or any(a is not b for a, b in zip(kept[0], run, strict=True)):
            kept = self.kept[key] = (run, compress(run))
        self._used.add(key)
        return kept[1]

    def chunked(self, key: tuple[Hashable, ...], pieces: Sequence[str], per_run: int) -> Iterator[Segment]:
        """The pieces in runs of `per_run`, each run keyed by `key` and the index of its first piece."""
        for first in range(0, len(pieces), per_run):
            yield self((*key, first), tuple(pieces[first : first + per_run]))

    def forget_unused(self) -> None:
        for key in self.kept.keys() - self._used:
            del self.kept[key]
        self._used = set()


def join(segments: Sequence[Segment]) -> Segment:
    """Segments in order as one: their deflate runs end to end, their CRCs combined."""
    crc, size = 0, 0
    for segment in segments:
        crc, size = crc32_combine(crc, segment.crc, segment.size), size + segment.size
    pieces = tuple(piece for segment in segments for piece in segment.pieces)
    return Segment(pieces, crc, size, sum(segment.samples for segment in segments))


def gzip_pieces(segments: Sequence[Segment]) -> tuple[bytes, ...]:
    """The segments, in order, as one gzip member in pieces: written one after another, never joined."""
    crc, size = 0, 0
    for segment in segments:
        crc, size = crc32_combine(crc, segment.crc, segment.size), size + segment.size
    trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
    return (_HEADER, *(piece for s in segments for piece in s.pieces if piece), _LAST_BLOCK + trailer)


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-32 of A+B from CRC-32(A), CRC-32(B) and len(B): zlib's crc32_combine, which Python lacks.

    Appending len(B) zero bytes to A is a linear map on its CRC (a 32x32 matrix over GF(2)); the map
    for 2^k bytes is the square of the one for 2^(k-1), all computed at import, so a combination costs
    one matrix-vector product per bit set in len(B).
    """
    for bit, operator in enumerate(_ZERO_BYTES[: length2.bit_length()]):
        if length2 >> bit & 1:
            crc1 = _times(operator, crc1)
    return crc1 ^ crc2


def _times(matrix: list[int], vector: int) -> int:
    total, row = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _square(matrix: list[int]) -> list[int]:
    return [_times(matrix, column) for column in matrix]


def _zero_byte_operators() -> tuple[list[int], ...]:
    """[k]: the map that appends 2^k zero bytes to a CRC, for k < 64 (a few ms, once, at import)."""
    operator = [0xEDB88320] + [1 << n for n in range(31)]  # one zero bit
    for _ in range(3):
        operator = _square(operator)  # one zero byte
    operators = [operator]
    while len(operators) < 64:
        operators.append(_square(operators[-1]))
    return tuple(operators)


_ZERO_BYTES = _zero_byte_operators()
