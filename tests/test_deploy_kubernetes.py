"""deploy/kubernetes/ stays consistent with itself and with the exporter it deploys."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT, exporter_env

DEPLOY = REPO_ROOT / "deploy" / "kubernetes"


def manifest(name: str) -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / name).read_text())


def container() -> dict[str, Any]:
    return manifest("statefulset.yaml")["spec"]["template"]["spec"]["containers"][0]


def test_kustomization_lists_every_manifest() -> None:
    listed = set(manifest("kustomization.yaml")["resources"])
    on_disk = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml", "prometheus-scrape-config.yaml"}
    assert listed == on_disk


def test_statefulset_takes_the_shard_from_the_pod_name_and_the_count_from_replicas() -> None:
    statefulset = manifest("statefulset.yaml")
    args = container()["args"]
    env = {item["name"]: item for item in container()["env"]}
    assert "--shard=auto" in args
    assert "--total-shards=$(TOTAL_SHARDS)" in args
    assert env["TOTAL_SHARDS"]["value"] == str(statefulset["spec"]["replicas"])


def test_headless_service_selects_the_statefulsets_pods_on_the_metrics_port() -> None:
    statefulset, service = manifest("statefulset.yaml"), manifest("service.yaml")
    assert service["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert statefulset["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    port_names = {port["name"] for port in container()["ports"]}
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names
    listen = next(arg for arg in container()["args"] if arg.startswith("--web.listen-address="))
    assert listen.endswith(f":{container()['ports'][0]['containerPort']}")


def test_probes_use_the_exporters_health_and_readiness_endpoints() -> None:
    assert container()["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert container()["livenessProbe"]["httpGet"]["path"] == "/-/healthy"


def test_configmap_config_passes_check_config_with_the_statefulsets_shard_count(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(manifest("configmap.yaml")["data"]["config.yaml"])
    mounted = next(m for m in container()["volumeMounts"] if m["name"] == "config")["mountPath"]
    assert f"--config={mounted}/config.yaml" in container()["args"]
    total = manifest("statefulset.yaml")["spec"]["replicas"]
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "--check-config", f"--config={config}", f"--total-shards={total}"],
        capture_output=True,
        text=True,
        env=exporter_env(GCORE_API_KEY="12345$example"),
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].startswith(f"sharded {total} ways")


def test_scrape_config_keeps_exactly_the_headless_services_metrics_port() -> None:
    scrape = manifest("prometheus-scrape-config.yaml")["scrape_configs"][0]
    keep = next(rule for rule in scrape["relabel_configs"] if rule["action"] == "keep")
    service = manifest("service.yaml")
    assert keep["regex"] == f"{service['metadata']['name']};{service['spec']['ports'][0]['name']}"
    namespace = manifest("kustomization.yaml")["namespace"]
    assert scrape["kubernetes_sd_configs"][0]["namespaces"]["names"] == [namespace]


def test_scrape_config_and_its_rules_pass_promtool(tmp_path: Path) -> None:
    """Debian's promtool is built without Kubernetes discovery, so the discovery block is swapped
    for a static target there; everything else (relabelling, rule files) is checked as written."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus); CI installs it")
    shutil.copy(REPO_ROOT / "prometheus" / "sharding-alerts.yml", tmp_path / "sharding-alerts.yml")
    config = manifest("prometheus-scrape-config.yaml")
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    if "kubernetes_sd_configs not found" in done.stdout + done.stderr:
        del config["scrape_configs"][0]["kubernetes_sd_configs"]
        config["scrape_configs"][0]["static_configs"] = [{"targets": ["livestream-exporter-0:9877"]}]
        path.write_text(yaml.safe_dump(config))
        done = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 3 rules found" in done.stdout
