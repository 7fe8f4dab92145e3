"""Which queues are in scope, and their names: the labels every queue series carries.

The routing queue list changes rarely (default refresh 10 minutes). The name glob is applied here,
case-insensitively, because the API's `name` filter only understands a `*` at either end.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from exporter.genesys.client import GenesysClient
from exporter.genesys.endpoints import ROUTING_QUEUES
from exporter.genesys.models import QueueEntity, QueueListing
from exporter.snapshot import Queue

MAX_IDS_PER_LISTING = 100  # beyond this the URL grows long: list everything and filter here instead


@dataclass(frozen=True, slots=True)
class QueueScope:
    ids: tuple[str, ...] = ()
    name_glob: str | None = None
    division_ids: tuple[str, ...] = ()

    def listing_params(self) -> dict[str, str | list[str]]:
        """Filters the API can apply itself, to fetch fewer pages; `matches` stays the judge."""
        params: dict[str, str | list[str]] = {}
        if self.ids and len(self.ids) <= MAX_IDS_PER_LISTING:
            params["id"] = list(self.ids)
        if self.division_ids:
            params["divisionId"] = list(self.division_ids)
        glob = self.name_glob
        if glob and not any(ch in glob.strip("*") for ch in "*?["):
            params["name"] = glob
        return params

    def matches(self, queue: QueueEntity) -> bool:
        if self.ids and queue.id not in self.ids:
            return False
        if self.division_ids and (queue.division is None or queue.division.id not in self.division_ids):
            return False
        return not self.name_glob or fnmatch.fnmatchcase(queue.name.casefold(), self.name_glob.casefold())


def parse_queue_pages(pages: Iterable[QueueListing], scope: QueueScope) -> dict[str, Queue]:
    """Pure: routing queue listing pages in, the queues in scope out (keyed by id)."""
    queues: dict[str, Queue] = {}
    for page in pages:
        for entity in page.entities:
            if scope.matches(entity):
                division = entity.division.name if entity.division and entity.division.name else ""
                queues[entity.id] = Queue(entity.id, entity.name, division)
    return queues


async def discover_queues(client: GenesysClient, scope: QueueScope) -> dict[str, Queue]:
    pages = [
        client.validate(ROUTING_QUEUES, page, QueueListing)
        async for page in client.pages(ROUTING_QUEUES, params=scope.listing_params(), page_size=100)
    ]
    return parse_queue_pages(pages, scope)
