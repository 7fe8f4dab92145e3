"""Deployment files: what an operator copies must hold the promises the README makes."""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from typing import Any

import yaml

from exporter.page import collectors_of
from exporter.sources import SHOWS

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy/kubernetes"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_prometheusrule_is_the_rules_file():
    generator = runpy.run_path(str(K8S / "prometheusrule.py"))
    assert (K8S / "prometheusrule.yaml").read_text() == generator["render"](), "run `make prometheusrule`"
    assert load(K8S / "prometheusrule.yaml")["spec"] == load(ROOT / "deploy/prometheus/rules/genesys.rules.yml")


def test_deployment_is_probed_bounded_and_unprivileged():
    deployment = load(K8S / "deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deployment["spec"]["replicas"] == 1
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["envFrom"][0]["secretRef"]["name"] == load(K8S / "secret.example.yaml")["metadata"]["name"]
    kustomization = load(K8S / "kustomization.yaml")
    assert all((K8S / resource).exists() for resource in kustomization["resources"])


def test_compose_wires_the_repo_configs():
    compose = load(ROOT / "deploy/compose.yml")
    services = compose["services"]
    assert {"genesys-exporter", "prometheus", "alertmanager", "grafana"} <= set(services)
    assert services["genesys-exporter"]["command"][0] == "${GENESYS_EXPORTER_COMMAND:-demo}"
    assert services["genesys-exporter"]["env_file"][0]["required"] is False
    mounts = [v.split(":")[0] for s in services.values() for v in s.get("volumes", [])]
    for mount in mounts:
        assert (ROOT / "deploy" / mount).resolve().exists(), mount
    targets = load(ROOT / "deploy/prometheus/prometheus.yml")["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["genesys-exporter:10474"]


def test_dockerfile_runs_as_non_root_without_build_tools():
    stages = (ROOT / "Dockerfile").read_text().split("\nFROM ")
    final = stages[-1]
    assert "USER 10001" in final
    assert "apt-get" not in final and "gcc" not in final
    assert 'ENTRYPOINT ["genesys-exporter"]' in final


def scrape_jobs() -> dict[str, dict[str, Any]]:
    """The shipped Prometheus jobs by name."""
    return {job["job_name"]: job for job in load(ROOT / "deploy/prometheus/prometheus.yml")["scrape_configs"]}


def test_the_scrape_jobs_split_the_page_every_collector_in_one_job():
    jobs = scrape_jobs()
    # A part scraped by two jobs would put each of its series in Prometheus twice (one per job label).
    assert sorted(c for job in jobs.values() for c in job["params"]["collect[]"]) == sorted(collectors_of(SHOWS))
    assert all(re.fullmatch(".*genesys.*", name) for name in jobs)  # what GenesysExporterDown matches
    targets = {t for job in jobs.values() for config in job["static_configs"] for t in config["targets"]}
    assert targets == {"genesys-exporter:10474"}
    urgent = next(job for job in jobs.values() if "queues" in job["params"]["collect[]"])
    assert "exporter" in urgent["params"]["collect[]"]  # the queue alerts and DataStale read one job
    assert urgent["scrape_interval"] == "5s"

    endpoints = load(K8S / "servicemonitor.yaml")["spec"]["endpoints"]
    by_collectors = {tuple(e["params"]["collect[]"]): e for e in endpoints}
    assert {tuple(job["params"]["collect[]"]): job["scrape_interval"] for job in jobs.values()} == {
        collectors: e["interval"] for collectors, e in by_collectors.items()
    }
    job_labels = [
        next((r["replacement"] for r in e.get("relabelings", []) if r.get("targetLabel") == "job"), "genesys-exporter")
        for e in endpoints
    ]
    assert len(set(job_labels)) == len(endpoints), "two endpoints with one job label would mix their `up` series"
    assert all(re.fullmatch(".*genesys.*", name) for name in job_labels)


def test_the_leaderboards_15_s_is_the_agents_scrape_interval():
    (agents,) = (job for job in scrape_jobs().values() if job["params"]["collect[]"] == ["agents"])
    assert agents["scrape_interval"] == "15s"
    exprs = {
        panel["title"]: panel["targets"][0]["expr"]
        for panel in load(ROOT / "grafana/dashboards/genesys-leaderboard.json")["panels"]
        if panel.get("targets")
    }
    assert exprs["Data delayed by up to"].endswith("+ 15")
    assert "offset 15s" in exprs["Last updated"] and "offset 15s" in exprs["Data freshness"]


def test_the_standby_example_has_a_client_of_its_own_and_the_same_scrape():
    standby = {doc["kind"]: doc for doc in yaml.safe_load_all((K8S / "standby.example.yaml").read_text())}
    main = load(K8S / "deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    container = standby["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"][0]["secretRef"]["name"] == standby["Secret"]["metadata"]["name"]
    assert standby["Secret"]["metadata"]["name"] != main["envFrom"][0]["secretRef"]["name"]  # a client of its own
    for key in ("securityContext", "livenessProbe", "ports", "image"):
        assert container[key] == main[key], key
    monitor = load(K8S / "servicemonitor.yaml")["spec"]["selector"]["matchLabels"]
    assert monitor.items() <= standby["Service"]["metadata"]["labels"].items()
    pods = standby["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert standby["Service"]["spec"]["selector"].items() <= pods.items()
    assert not monitor.items() <= pods.items()  # the first Deployment's selector does not take its pods
    assert "standby.example.yaml" not in load(K8S / "kustomization.yaml")["resources"]  # optional
