"""The Prometheus text format (0.0.4), written by hand because it is the hot path.

prometheus-client's `generate_latest` builds an object per sample, and a large org's page has
hundreds of thousands of samples. Here label blocks are escaped once per entity and reused for all
its series. The tests parse every page back with prometheus-client's parser and
`promtool check metrics`, so the format stays honest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

MetricType = Literal["gauge", "counter"]


def escape(value: str) -> str:
    """Label value escaping: backslash, double quote and line feed, as the format requires."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def labels(**pairs: str) -> str:
    """`a="x",b="y"`: a label block body, to put between braces or to extend with more pairs."""
    return ",".join(f'{name}="{escape(value)}"' for name, value in pairs.items())


def value_text(value: float) -> str:
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    return repr(value)


def sample_lines(name: str, samples: Iterable[tuple[str, float]]) -> str:
    """A line per (label block body, value): a family's body, or a piece of it."""
    return "".join(
        f"{name}{{{block}}} {value_text(value)}\n" if block else f"{name} {value_text(value)}\n"
        for block, value in samples
    )


def family(name: str, kind: MetricType, help_text: str, samples: Iterable[tuple[str, float]]) -> str:
    """One metric family: HELP and TYPE, then a line per (label block body, value); '' when empty."""
    return headed(name, kind, help_text, sample_lines(name, samples))


def headed(name: str, kind: MetricType, help_text: str, body: str) -> str:
    """A family's body (its sample lines, made in pieces) under its HELP and TYPE; '' when empty."""
    return family_header(name, kind, help_text) + body if body else ""


def info(name: str, help_text: str, blocks: Iterable[str]) -> str:
    """An `_info` family: value 1 for each label block, the descriptive labels other families join to."""
    return family(name, "gauge", help_text, ((block, 1) for block in blocks))


def family_header(name: str, kind: MetricType, help_text: str) -> str:
    """HELP and TYPE: for a family whose lines are streamed after it in pieces."""
    help_line = help_text.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {help_line}\n# TYPE {name} {kind}\n"
