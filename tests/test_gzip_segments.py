"""Segments compressed apart make one gzip member that any inflater reads whole."""

from __future__ import annotations

import gzip
import zlib

from hypothesis import given
from hypothesis import strategies as st

from exporter.gzip_segments import Segment, compress, crc32_combine, gzip_pieces


def gzip_stream(segments: list[Segment]) -> bytes:
    return b"".join(gzip_pieces(segments))


@given(st.binary(max_size=300), st.binary(max_size=3000))
def test_crc32_combine_equals_the_crc_of_the_concatenation(first, second):
    assert crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second)) == zlib.crc32(first + second)


def test_crc32_combine_over_tens_of_megabytes():
    big = b"genesys_agent_presence 1\n" * 2_000_000  # 50 MB, a page's agent segment
    assert crc32_combine(zlib.crc32(b"head"), zlib.crc32(big), len(big)) == zlib.crc32(b"head" + big)


@given(st.lists(st.lists(st.text(max_size=200), max_size=5), min_size=1, max_size=5))
def test_segments_join_into_one_gzip_member_of_their_texts_in_order(segments):
    stream = gzip_stream([compress(texts) for texts in segments])
    expected = "".join("".join(texts) for texts in segments).encode()
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # one member: nothing may follow its trailer
    assert inflater.decompress(stream) == expected
    assert inflater.eof and not inflater.unused_data
    assert gzip.decompress(stream) == expected  # the trailer's CRC and size are checked here


def test_a_segment_can_be_replaced_without_touching_the_others():
    queues, agents = compress(["queue 1\n"]), compress(["agent 1\n" * 1000])
    before = gzip.decompress(gzip_stream([queues, agents]))
    after = gzip.decompress(gzip_stream([compress(["queue 2\n"]), agents]))
    assert before.replace(b"queue 1", b"queue 2") == after
