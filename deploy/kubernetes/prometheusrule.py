"""Writes prometheusrule.yaml from the one rules file, so the two never drift (`make prometheusrule`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE.parent / "prometheus/rules/genesys.rules.yml"
OUTPUT = HERE / "prometheusrule.yaml"


def prometheus_rule() -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "genesys-exporter", "labels": {"app.kubernetes.io/name": "genesys-exporter"}},
        "spec": yaml.safe_load(RULES.read_text()),
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL, descriptions) as `|` blocks, as a person would write them."""


_Dumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None),
)


def render() -> str:
    header = "# Generated from deploy/prometheus/rules/genesys.rules.yml by prometheusrule.py: edit that file.\n"
    return header + yaml.dump(prometheus_rule(), Dumper=_Dumper, sort_keys=False, width=120)


if __name__ == "__main__":
    OUTPUT.write_text(render())
