"""What the rendered manifests say: every pool's ScaledJob from its values, the scheduler's ScaledObject on
its consumers, CPU autoscaling for the HTTP services, each pod with only the secrets its role needs, and
environment variables the services actually read."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from contracts import subjects
from services.api.settings import ApiSettings
from services.events.settings import EventsSettings
from services.scheduler.settings import SchedulerSettings
from tests.deploy.chart import CHART, GPU_POOLS, Helm, only

SETTINGS: dict[str, type[BaseSettings]] = {
    "api": ApiSettings,
    "events": EventsSettings,
    "scheduler": SchedulerSettings,
}


@pytest.fixture(scope="module")
def default(helm: Helm) -> list[dict[str, Any]]:
    return helm.template()


@pytest.fixture(scope="module")
def gpu(helm: Helm) -> list[dict[str, Any]]:
    return helm.template([GPU_POOLS])


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]["jobTargetRef"] if doc["kind"] == "ScaledJob" else doc["spec"]
    return spec["template"]["spec"]


def env_names(settings: type[BaseSettings]) -> set[str]:
    names: set[str] = set()
    for field in settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, str):
            names.add(alias)
    return names


def test_every_gpu_pool_gets_a_scaled_job_from_its_values(gpu: list[dict[str, Any]]) -> None:
    values = yaml.safe_load(GPU_POOLS.read_text())
    chart_defaults = yaml.safe_load((CHART / "values.yaml").read_text())["poolDefaults"]
    for pool in values["pools"]:
        job = only(gpu, "ScaledJob", f"vtp-pool-{pool['name']}")
        spec = job["spec"]
        pod = pod_spec(job)
        runner = pod["containers"][0]
        assert spec["maxReplicaCount"] == pool["maxReplicaCount"]
        assert spec["jobTargetRef"]["activeDeadlineSeconds"] == pool["activeDeadlineSeconds"]
        assert spec["scalingStrategy"] == {"strategy": "default"}
        for limit in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
            assert spec[limit] == chart_defaults[limit]
        assert runner["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert pod["nodeSelector"] == pool["nodeSelector"]
        assert pod["tolerations"] == values["poolDefaults"]["tolerations"]
        assert pod["restartPolicy"] == "Never"
        assert {"name": "VTP_POOL", "value": pool["name"]} in runner["env"]
        assert runner["image"].startswith(pool["image"]["repository"] + ":")
        assert spec["triggers"][0]["metadata"]["consumer"] == subjects.pool_consumer(pool["name"])
    assert len([d for d in gpu if d["kind"] == "ScaledJob"]) == len(values["pools"])


def test_prepare_hook_migrates_then_prepares_every_pool(gpu: list[dict[str, Any]]) -> None:
    job = only(gpu, "Job", "vtp-prepare")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    pod = pod_spec(job)
    assert [c["args"] for c in pod["initContainers"]] == [["migrate"]]
    assert pod["containers"][0]["args"] == ["pools", "prepare", "gpu-a100", "gpu-l4"]
    # What the hook reads must exist before it: its ConfigMap and Secret are hooks of a lower weight.
    for kind in ("ConfigMap", "Secret"):
        config = only(gpu, kind, f"vtp-{'config' if kind == 'ConfigMap' else 'env'}")
        assert int(config["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0


def test_scheduler_scales_on_the_lag_of_its_consumers(default: list[dict[str, Any]]) -> None:
    scaled = only(default, "ScaledObject", "vtp-scheduler")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "vtp-scheduler"
    assert scaled["spec"]["minReplicaCount"] >= 1
    watched = {(t["metadata"]["stream"], t["metadata"]["consumer"]) for t in scaled["spec"]["triggers"]}
    assert watched == {
        (subjects.COMMANDS_STREAM, subjects.SCHEDULER_COMMANDS_CONSUMER),
        (subjects.REPORTS_STREAM, subjects.SCHEDULER_REPORTS_CONSUMER),
    }
    # The autoscaler owns the replica count.
    assert "replicas" not in only(default, "Deployment", "vtp-scheduler")["spec"]


@pytest.mark.parametrize("service", ["api", "events"])
def test_http_services_scale_on_cpu_and_are_probed(default: list[dict[str, Any]], service: str) -> None:
    hpa = only(default, "HorizontalPodAutoscaler", f"vtp-{service}")
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    deployment = only(default, "Deployment", f"vtp-{service}")
    assert "replicas" not in deployment["spec"]
    container = pod_spec(deployment)["containers"][0]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    service_doc = only(default, "Service", f"vtp-{service}")
    assert service_doc["spec"]["ports"][0]["targetPort"] == "http"


def test_each_role_mounts_only_its_callback_key_and_runners_get_no_secrets(
    default: list[dict[str, Any]],
) -> None:
    def callback_items(name: str) -> list[str]:
        volumes = pod_spec(only(default, "Deployment", name)).get("volumes", [])
        return [item["key"] for v in volumes if "secret" in v for item in v["secret"]["items"]]

    assert callback_items("vtp-scheduler") == ["callback-signing.pem"]
    assert callback_items("vtp-events") == ["callback-verify.pem"]
    assert callback_items("vtp-api") == []
    runner = pod_spec(only(default, "ScaledJob"))
    assert all("secretRef" not in source for source in runner["containers"][0]["envFrom"])
    assert not any("secret" in volume for volume in runner.get("volumes", []))


def test_services_get_only_variables_they_read(default: list[dict[str, Any]]) -> None:
    """A misspelt variable would be ignored silently by the service; here it fails."""
    read = set().union(*(env_names(settings) for settings in SETTINGS.values()))
    shared = set(only(default, "ConfigMap")["data"]) | set(only(default, "Secret", "vtp-env")["stringData"])
    assert shared - read == {"NATS_MONITOR_URL"}  # read by the pool (trainers/pool.py), KEDA's endpoint
    for service, settings in SETTINGS.items():
        container = pod_spec(only(default, "Deployment", f"vtp-{service}"))["containers"][0]
        assert {e["name"] for e in container.get("env", [])} <= env_names(settings), service
