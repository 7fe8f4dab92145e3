"""Reading a /metrics page as Prometheus would: fetch it, parse it, pick samples by label, lint it with promtool."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families


def families_of(text: str) -> dict[str, Any]:
    """The page's metric families by name (counters without their `_total`), as prometheus_client parses them."""
    return {family.name: family for family in text_string_to_metric_families(text)}


async def scrape(url: str) -> tuple[str, dict[str, Any]]:
    """GET `url`/metrics (it must answer 200): the text and its families."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return text, families_of(text)


def by_labels(families: dict[str, Any], name: str, *keys: str) -> dict[tuple[str, ...], float]:
    """Samples of one family by the given labels; {} when the family has no sample at all."""
    family = families.get(name.removesuffix("_total"))
    return {tuple(s.labels[k] for k in keys): s.value for s in family.samples} if family else {}


async def assert_promtool_accepts(promtool: str, text: str) -> None:
    """`promtool check metrics` passes the page and says nothing at all (a lint warning is a failure too)."""
    result = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr
