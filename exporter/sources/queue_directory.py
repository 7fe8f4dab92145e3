"""The queues in scope and their names: the labels every queue series carries.

The routing queue list (`GET /api/v2/routing/queues`) changes rarely; it is listed first and
alone, so the live queue data need not wait for the much longer agent listing. The name glob is
applied here, case-insensitively, because the API's `name` filter only understands a `*` at
either end (https://developer.genesys.cloud/routing/routing/).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from exporter.config import Settings
from exporter.exposition import info, labels
from exporter.genesys.client import GenesysClient
from exporter.genesys.endpoints import ROUTING_QUEUES
from exporter.genesys.models import QueueEntity, QueueListing
from exporter.snapshot import Directory, Snapshot
from exporter.sources.source import Poll, Poller, Show, Source, Wiring, unsharded

log = structlog.get_logger(__name__)

MAX_IDS_PER_LISTING = 100  # beyond this the URL grows long: list everything and filter here instead


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue in scope, from the routing queue list: what labels its series."""

    id: str
    name: str
    division: str  # division name ("" when the API gave none)


QUEUES: Directory[Queue] = Directory("queues")


@dataclass(frozen=True, slots=True)
class QueueScope:
    ids: tuple[str, ...] = ()
    name_glob: str | None = None
    division_ids: tuple[str, ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> QueueScope:
        return cls(settings.queue_ids, settings.queue_name, settings.division_ids)

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


async def refresh_queues(wiring: Wiring) -> None:
    scope = QueueScope.of(wiring.settings)
    queues = await discover_queues(wiring.client, scope)
    if not queues:
        log.warning("no queue in scope", queue_ids=len(scope.ids), name=scope.name_glob, divisions=scope.division_ids)
    wiring.store.set(QUEUES, queues)


def render_queue_info(snapshot: Snapshot) -> tuple[str, ...]:
    queues = sorted(snapshot[QUEUES].items())
    blocks = (labels(queue_id=qid, queue_name=q.name, division=q.division) for qid, q in queues)
    return (info("genesys_queue_info", "Queue in scope (value 1), from GET /api/v2/routing/queues.", blocks),)


# The directory changes least and stretches first when the budget cannot feed every cadence.
DIRECTORY_POLLER = Poller(name="directory", cadence=lambda s: s.directory_interval, priority=3)
SOURCE = Source(
    name="queue_directory",
    keeps=(QUEUES,),
    polls=(Poll(DIRECTORY_POLLER, refresh_queues),),
    show=Show(segment="queue_info", collector="queues", reads=(QUEUES,), render=unsharded(render_queue_info)),
)
