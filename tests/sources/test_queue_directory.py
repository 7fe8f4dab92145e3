"""The queue directory: which queues of the listing the exporter watches."""

from __future__ import annotations

from exporter.sources.queue_directory import QueueScope, parse_queue_pages

Q1, Q2, Q3 = (f"11111111-aaaa-4000-8000-00000000000{i}" for i in (1, 2, 3))  # as in routing_queues_page*.json


def test_scope_filters_by_name_glob_division_and_id(queue_listings):
    pages = queue_listings
    assert set(parse_queue_pages(pages, QueueScope(name_glob="support*"))) == {Q2, Q3}
    assert set(parse_queue_pages(pages, QueueScope(division_ids=("d1",)))) == {Q1}
    assert set(parse_queue_pages(pages, QueueScope(ids=(Q3, "gone")))) == {Q3}
    assert QueueScope(name_glob="Support*").listing_params() == {"name": "Support*"}
    assert "name" not in QueueScope(name_glob="Sup?ort").listing_params()
