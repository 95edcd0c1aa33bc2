"""observability/ and the chart's side of it: the alert rules and both Prometheus configurations pass promtool
(and the rules their unit tests), the Kubernetes scrape configuration finds the chart's pods with the `job`
labels the rules and dashboards use (on a real Prometheus), the collector, Loki and Grafana files say what
they must, every dashboard and rule names only metrics the parts export, and the rendered chart probes,
annotates, monitors and configures OpenTelemetry as its values say.

promtool and prometheus come from Debian's `prometheus` package (scripts/setup.sh); without them these tests
fail under CI and skip elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy import observed_metrics
from tests.deploy.chart import Helm, HelmFailed, only
from tests.deploy.test_chart_checks import builtin_errors
from vtp import prometheus as vtp_prometheus
from vtp.embedded.ports import free_port

PROMETHEUS = observed_metrics.OBSERVABILITY / "prometheus"
KUBERNETES_CONFIG = PROMETHEUS / "prometheus-kubernetes.yaml"
GRAFANA = observed_metrics.OBSERVABILITY / "grafana"
# The metrics contract (telemetry/metrics.py): the live scrape checks it against the parts themselves.
COUNTERS = {"vtp_jobs_submitted", "vtp_jobs_finished", "vtp_job_retries", "vtp_heartbeat_timeouts",
            "vtp_scheduler_inputs", "vtp_callbacks"}  # fmt: skip
GAUGES = {"vtp_pool_queue_depth", "vtp_pool_runners", "vtp_sse_clients"}
HISTOGRAMS = {"vtp_job_queue_seconds", "vtp_job_run_seconds", "vtp_epoch_seconds"}
EXPORTED = (
    {f"{name}_total" for name in COUNTERS}
    | GAUGES
    | {f"{name}{suffix}" for name in HISTOGRAMS for suffix in ("_bucket", "_count", "_sum")}
    | {"up", "process_cpu_seconds_total", "process_resident_memory_bytes"}
)
JOBS = {"vtp-api", "vtp-events", "vtp-scheduler"}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        why = f"{name} not found: scripts/setup.sh installs Debian's prometheus package (as root)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return path


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


def assert_ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


# --- Prometheus: rules and configurations -------------------------------------------------------------


def test_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    promtool = tool("promtool")
    assert "SUCCESS" in assert_ok(run(promtool, "check", "rules", str(PROMETHEUS / "alerts.yaml")))
    assert_ok(run(promtool, "test", "rules", "alerts-test.yaml", cwd=PROMETHEUS))


def test_every_alert_waits_has_a_severity_and_says_what_and_why() -> None:
    for group in yaml.safe_load((PROMETHEUS / "alerts.yaml").read_text())["groups"]:
        for rule in group["rules"]:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            assert rule["annotations"]["description"], rule["alert"]


def test_the_prometheus_yml_of_vtp_up_passes_promtool_with_the_alert_rules(tmp_path: Path) -> None:
    config = vtp_prometheus.write_config(
        tmp_path, {"api": 8000, "events": 8001, "scheduler": 9400, "pool": 9401}
    )
    output = assert_ok(run(tool("promtool"), "check", "config", str(config)))
    assert str(PROMETHEUS / "alerts.yaml") in output
    targets = json.loads((config.parent / "targets.json").read_text())
    assert {group["labels"]["job"] for group in targets} == {*JOBS, "vtp-pool"}


def file_sd_in_place_of_kubernetes_sd(folder: Path, targets: Path, scrape_interval: str = "15s") -> Path:
    """The Kubernetes configuration with its pod discovery swapped for a file of targets, everything else
    (relabelling, rules) as it is; alerts.yaml beside it, as on the cluster."""
    config = yaml.safe_load(KUBERNETES_CONFIG.read_text())
    [job] = config["scrape_configs"]
    [discovery] = job.pop("kubernetes_sd_configs")
    assert discovery["role"] == "pod"
    job["file_sd_configs"] = [{"files": [str(targets)]}]
    config["global"]["scrape_interval"] = scrape_interval
    shutil.copy(PROMETHEUS / "alerts.yaml", folder / "alerts.yaml")
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_kubernetes_configuration_passes_promtool(tmp_path: Path) -> None:
    """Debian's Prometheus is built without Kubernetes discovery: where promtool refuses the section for
    that reason alone, the rest of the file is checked with file discovery in its place."""
    promtool = tool("promtool")
    result = run(promtool, "check", "config", str(KUBERNETES_CONFIG))
    if "field kubernetes_sd_configs not found" in result.stdout + result.stderr:
        targets = tmp_path / "targets.json"
        targets.write_text("[]")
        result = run(promtool, "check", "config", str(file_sd_in_place_of_kubernetes_sd(tmp_path, targets)))
    output = assert_ok(result)
    assert re.search(r"alerts\.yaml\s+SUCCESS: [1-9][0-9]* rules found", output), output


def discovered_pods(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What Kubernetes discovery (role `pod`) would find for each workload's pod, one target per container
    port (or per container without ports), its address on the loopback range: nothing is scraped for real."""

    def meta(prefix: str, values: dict[str, str]) -> dict[str, str]:
        return {f"{prefix}_{re.sub(r'[^A-Za-z0-9_]', '_', k)}": str(v) for k, v in values.items()}

    groups = []
    for number, doc in enumerate(d for d in docs if d["kind"] in {"Deployment", "ScaledJob", "Job"}):
        spec = doc["spec"]["jobTargetRef"] if doc["kind"] == "ScaledJob" else doc["spec"]
        template, ip = spec["template"], f"127.0.0.{number + 10}"
        for phase in ("Running", "Succeeded"):
            labels = {
                "__meta_kubernetes_namespace": "vtp",
                "__meta_kubernetes_pod_name": f"{doc['metadata']['name']}-{phase.lower()}",
                "__meta_kubernetes_pod_phase": phase,
                **meta("__meta_kubernetes_pod_label", template["metadata"].get("labels", {})),
                **meta("__meta_kubernetes_pod_annotation", template["metadata"].get("annotations", {})),
            }
            for container in template["spec"]["containers"]:
                ports = [str(p["containerPort"]) for p in container.get("ports", [])] or [""]
                addresses = [f"{ip}:{port}" if port else ip for port in ports]
                groups.append({"targets": addresses, "labels": labels})
    return groups


def active_targets(config: Path, folder: Path) -> list[dict[str, Any]]:
    """The targets a real Prometheus makes of `config` (its discovery publishes after about 5 s)."""
    port = free_port()
    command = [tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
               f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
    log = folder / "prometheus.log"
    with log.open("w") as output, subprocess.Popen(command, stdout=output, stderr=output) as process:
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                time.sleep(0.5)
                try:
                    answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=2).json()
                except httpx.HTTPError:
                    continue
                if answer["data"]["activeTargets"]:
                    return list(answer["data"]["activeTargets"])
        finally:
            process.terminate()
    raise AssertionError(f"no target after 30 s: {log.read_text()[-3000:]}")


def test_the_kubernetes_configuration_scrapes_the_charts_pods_as_the_rules_name_them(
    helm: Helm, tmp_path: Path
) -> None:
    """A real Prometheus, fed the chart's pods as Kubernetes discovery describes them, relabels them into
    one target per running pod that serves metrics, with the `job` the rules and dashboards select."""
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps(discovered_pods(helm.template())))
    # The addresses stand for pods, on the loopback range; an hour between scrapes keeps it to one at most.
    config = file_sd_in_place_of_kubernetes_sd(tmp_path, targets, scrape_interval="1h")
    active = active_targets(config, tmp_path)
    found = {(t["labels"]["job"], t["labels"]["pod"], t["scrapeUrl"].split("/", 3)[3]) for t in active}
    ports = {t["labels"]["job"]: int(t["scrapeUrl"].rsplit(":", 1)[1].split("/")[0]) for t in active}
    assert found == {(job, f"{job}-running", "metrics") for job in JOBS}
    assert ports == {"vtp-api": 8000, "vtp-events": 8001, "vtp-scheduler": 9400}
    assert {t["labels"]["namespace"] for t in active} == {"vtp"}


# --- the collector, Loki, Grafana ---------------------------------------------------------------------


def test_the_collector_takes_otlp_and_sends_each_signal_to_its_back_end() -> None:
    config = yaml.safe_load((observed_metrics.OBSERVABILITY / "otel-collector.yaml").read_text())
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics", "logs"}
    for pipeline in pipelines.values():
        assert "otlp" in pipeline["receivers"]
        for kind in ("receivers", "processors", "exporters"):
            assert set(pipeline[kind]) <= set(config[kind]), kind
    assert pipelines["traces"]["exporters"] == ["otlp/traces"]
    assert pipelines["metrics"]["exporters"] == ["prometheus"]
    assert pipelines["logs"]["exporters"] == ["otlphttp/loki"]
    assert config["exporters"]["otlphttp/loki"]["endpoint"].endswith("/otlp}")
    # Loki's stream label `service`, which the dashboards select by, is copied from service.name.
    [copy] = config["processors"]["resource/service"]["attributes"]
    assert (copy["key"], copy["from_attribute"]) == ("service", "service.name")
    assert "resource/service" in pipelines["logs"]["processors"]


def test_loki_takes_otlp_and_indexes_the_service_label() -> None:
    config = yaml.safe_load((observed_metrics.OBSERVABILITY / "loki" / "loki.yaml").read_text())
    [schema] = config["schema_config"]["configs"]
    assert (schema["store"], schema["schema"]) == ("tsdb", "v13")
    limits = config["limits_config"]
    assert limits["allow_structured_metadata"] is True
    [index] = limits["otlp_config"]["resource_attributes"]["attributes_config"]
    assert index == {"action": "index_label", "attributes": ["service"]}


def test_grafana_is_provisioned_with_the_data_sources_the_dashboards_ask_for() -> None:
    provisioning = GRAFANA / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "vtp.yaml").read_text())["datasources"]
    assert {(s["uid"], s["type"]) for s in sources} == {
        ("prometheus", "prometheus"), ("loki", "loki"), ("tempo", "tempo"), ("jaeger", "jaeger")
    }  # fmt: skip
    [provider] = yaml.safe_load((provisioning / "dashboards" / "vtp.yaml").read_text())["providers"]
    assert provider["type"] == "file"
    for name, board in observed_metrics.dashboards().items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        for panel in observed_metrics.panels(board):
            for target in [panel, *panel.get("targets", [])]:
                uid = (target.get("datasource") or {}).get("uid", "")
                if uid.startswith("${"):
                    variable = variables[uid[2:-1]]
                    assert variable["type"] == "datasource", name
                    assert variable["query"] == target["datasource"]["type"], name


def test_dashboards_and_rules_name_only_exported_metrics_in_valid_promql(tmp_path: Path) -> None:
    expressions = observed_metrics.dashboard_expressions()
    uids = [board["uid"] for board in observed_metrics.dashboards().values()]
    assert sorted(uids) == ["vtp-job", "vtp-overview", "vtp-pools"]
    named = {(where, m) for where, expr in expressions for m in observed_metrics.metrics_in(expr)}
    alerts = observed_metrics.alert_expressions().items()
    named |= {(alert, m) for alert, expr in alerts for m in observed_metrics.metrics_in(expr)}
    assert {(where, m) for where, m in named if m not in EXPORTED} == set()
    assert observed_metrics.metric_names_used() <= EXPORTED
    # Every contract metric is on some dashboard or rule.
    assert {re.sub(r"_(total|bucket|count|sum)$", "", m) for m in observed_metrics.metric_names_used()} == (
        COUNTERS | GAUGES | HISTOGRAMS
    )
    # The dashboards' PromQL parses, as promtool parses a rule's: Grafana's variables filled in.
    durations = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}
    rules = [
        {
            "record": f"dashboard:query{i}",
            "expr": re.sub(r"\$\{?(\w+)\}?", lambda m: durations.get(m[1], ".*"), e),
        }
        for i, (_, e) in enumerate(expressions)
    ]
    path = tmp_path / "dashboards.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = run(tool("promtool"), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + "\n".join(
        f"query{i}: {w}" for i, (w, _) in enumerate(expressions)
    )


def test_the_job_dashboard_finds_a_trace_and_its_logs_by_trace_id() -> None:
    board = observed_metrics.dashboards()["vtp-job.json"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["trace_id"]["type"] == "textbox"
    panels = list(observed_metrics.panels(board))
    [trace] = [p for p in panels if p["type"] == "traces"]
    assert trace["targets"][0]["query"] == "$trace_id"
    loki = [t["expr"] for p in panels for t in p.get("targets", []) if t["datasource"]["type"] == "loki"]
    assert len(loki) >= 2
    assert all('{service=~"vtp-.*"} |= "$trace_id"' in expr for expr in loki)
    urls = {link["title"]: link["url"] for link in board["links"] if link["type"] == "link"}
    assert set(urls) == {"Trace in Tempo", "Trace in Jaeger", "Logs in Loki"}
    assert all("${trace_id}" in url for url in urls.values())


# --- the chart ----------------------------------------------------------------------------------------


def render(helm: Helm, tmp_path: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return helm.template([path])


def pod(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]["jobTargetRef"] if doc["kind"] == "ScaledJob" else doc["spec"]
    return dict(spec["template"])


def test_the_scheduler_is_probed_on_its_metrics_port(helm: Helm) -> None:
    [container] = pod(only(helm.template(), "Deployment", "vtp-scheduler"))["spec"]["containers"]
    assert container["ports"] == [{"name": "metrics", "containerPort": 9400}]
    assert {"name": "VTP_METRICS_PORT", "value": "9400"} in container["env"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def test_every_long_running_pod_is_probed_and_annotated_for_scraping_and_runners_are_not(helm: Helm) -> None:
    """The chart runs no pool process (KEDA's ScaledJobs stand in for it): its Deployments are services."""
    docs = helm.template()
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == JOBS
    for deployment in deployments:
        template = pod(deployment)
        [container] = template["spec"]["containers"]
        assert container["livenessProbe"]
        assert container["readinessProbe"]
        annotations = template["metadata"]["annotations"]
        port = int(annotations["prometheus.io/port"])
        assert (annotations["prometheus.io/scrape"], annotations["prometheus.io/path"]) == (
            "true",
            "/metrics",
        )
        assert port in {p["containerPort"] for p in container["ports"]}
    for doc in (only(docs, "ScaledJob"), only(docs, "Job")):
        assert "prometheus.io/scrape" not in pod(doc)["metadata"].get("annotations", {})


def test_scrape_annotations_can_be_turned_off(helm: Helm, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {"metrics": {"podAnnotations": False}})
    for doc in (d for d in docs if d["kind"] == "Deployment"):
        assert "prometheus.io/scrape" not in pod(doc)["metadata"]["annotations"]


def test_a_service_monitor_selects_every_metrics_port_with_its_job_when_enabled(
    helm: Helm, tmp_path: Path
) -> None:
    assert not [d for d in helm.template() if d["kind"] == "ServiceMonitor"]
    values = {
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}}
    }
    docs = render(helm, tmp_path, values)
    monitor = only(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = monitor["spec"]
    selected = [
        s for s in docs
        if s["kind"] == "Service"
        and spec["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        and all(e["key"] in s["metadata"]["labels"] for e in spec["selector"]["matchExpressions"])
    ]  # fmt: skip
    assert {s["metadata"]["labels"][spec["jobLabel"]] for s in selected} == JOBS
    scraped = {
        (s["metadata"]["labels"][spec["jobLabel"]], port["targetPort"])
        for s in selected for port in s["spec"]["ports"]
        if port["name"] in {e["port"] for e in spec["endpoints"]}
    }  # fmt: skip
    assert scraped == {("vtp-api", "http"), ("vtp-events", "http"), ("vtp-scheduler", "metrics")}
    assert all(e["path"] == "/metrics" for e in spec["endpoints"])
    # The built-in kinds beside it stay valid (the ServiceMonitor is a CRD kubernetes-validate does not know).
    assert builtin_errors([d for d in docs if d["kind"] != "ServiceMonitor"]) == []


OTEL = {
    "endpoint": "http://otel-collector.observability.svc:4318",
    "sampler": "parentbased_traceidratio",
    "samplerArg": "0.25",
    "resourceAttributes": {"deployment.environment": "production"},
}


def test_every_pod_gets_the_otel_variables_only_when_an_endpoint_is_set(helm: Helm, tmp_path: Path) -> None:
    def containers(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        workloads = [d for d in docs if d["kind"] in {"Deployment", "ScaledJob", "Job"}]
        return [
            c
            for d in workloads
            for c in pod(d)["spec"].get("initContainers", []) + pod(d)["spec"]["containers"]
        ]

    for container in containers(helm.template()):
        assert not any(e["name"].startswith("OTEL_") for e in container.get("env", [])), container["name"]
    docs = render(helm, tmp_path, {"otel": OTEL})
    expected = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": OTEL["endpoint"],
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=production,k8s.namespace.name=vtp",
    }
    found = containers(docs)
    assert {c["name"] for c in found} == {"api", "events", "scheduler", "runner", "migrate", "pools"}
    for container in found:
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert {k: v for k, v in env.items() if k.startswith("OTEL_")} == expected, container["name"]
    assert builtin_errors(docs) == []


@pytest.mark.parametrize(
    "values",
    [
        {"otel": {"protocol": "grpc"}},
        {"otel": {"samplerArg": "2"}},
        {"otel": {"resourceAttributes": {"team": "a,b"}}},
        {"metrics": {"serviceMonitor": {"enabled": True, "intervall": "30s"}}},
        {"scheduler": {"metricsPort": 0}},
    ],
    ids=["grpc", "sampler-arg", "attribute-comma", "misspelt-key", "port-zero"],
)
def test_impossible_observability_values_fail_the_schema(
    helm: Helm, tmp_path: Path, values: dict[str, Any]
) -> None:
    with pytest.raises(HelmFailed, match="schema"):
        render(helm, tmp_path, values)
