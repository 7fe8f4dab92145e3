"""Ids are asked for in batches the API accepts, in an order that does not move between cycles."""

from __future__ import annotations

from exporter.sources.batches import batches


def test_batches_hold_at_most_100_queues_in_a_stable_order():
    ids = [f"q{i:04d}" for i in range(250)]
    chunks = batches(reversed(ids), 100)
    assert [len(c) for c in chunks] == [100, 100, 50]
    assert [q for c in chunks for q in c] == ids
