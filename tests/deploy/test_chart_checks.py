"""The chart's offline checks: `helm lint --strict`, `helm template` with the default values and with two GPU
pools, the built-in kinds validated by kubernetes-validate (strict), the KEDA kinds against KEDA's own CRDs.
Broken values, and manifests the validators must refuse, fail them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.chart import GPU_POOLS, Helm, HelmFailed

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.latest_version())
VALUES = {"default": [], "gpu-pools": [GPU_POOLS]}
BUILT_IN_KINDS = {"ConfigMap", "Secret", "Deployment", "Service", "HorizontalPodAutoscaler", "Job"}
KEDA_KINDS = {"ScaledJob", "ScaledObject"}


@pytest.fixture(scope="module", params=list(VALUES))
def rendered(request: pytest.FixtureRequest, helm: Helm) -> list[dict[str, Any]]:
    return helm.template(VALUES[request.param])


def builtin_errors(docs: list[dict[str, Any]]) -> list[str]:
    errors = []
    for doc in docs:
        if doc["kind"] in KEDA_KINDS:
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as exc:
                errors.append(
                    f"{doc['kind']} {doc['metadata']['name']} (Kubernetes {version}): {exc.message}"
                )
    return errors


def keda_errors(docs: list[dict[str, Any]], validators: dict[tuple[str, str], Any]) -> list[str]:
    errors = []
    for doc in docs:
        if doc["kind"] not in KEDA_KINDS:
            continue
        validator = validators.get((doc["apiVersion"], doc["kind"]))
        if validator is None:
            errors.append(f"no CRD serves {doc['apiVersion']} {doc['kind']}")
            continue
        for error in validator.iter_errors(doc):
            errors.append(f"{doc['kind']} {doc['metadata']['name']} at {error.json_path}: {error.message}")
    return errors


@pytest.mark.parametrize("values", list(VALUES))
def test_helm_lint_strict_passes(helm: Helm, values: str) -> None:
    helm.lint(VALUES[values])


def test_built_in_kinds_are_valid_kubernetes(rendered: list[dict[str, Any]]) -> None:
    assert {doc["kind"] for doc in rendered} - KEDA_KINDS == BUILT_IN_KINDS
    assert builtin_errors(rendered) == []


def test_keda_kinds_match_the_keda_crds(
    rendered: list[dict[str, Any]], keda_validators: dict[tuple[str, str], jsonschema.protocols.Validator]
) -> None:
    assert {doc["kind"] for doc in rendered} >= KEDA_KINDS
    assert keda_errors(rendered, keda_validators) == []


# --- what the checks must refuse ----------------------------------------------------------------------

BROKEN_VALUES = {
    "pool without a name": {"pools": [{"maxReplicaCount": 2}]},
    "negative maxReplicaCount": {"pools": [{"name": "gpu", "maxReplicaCount": -1}]},
    "misspelt pool key": {"pools": [{"name": "gpu", "maxReplicas": 2}]},
    "pool name that is no Kubernetes name": {"pools": [{"name": "GPU_A100"}]},
    "monitoring endpoint with a scheme": {"nats": {"monitoringEndpoint": "http://nats:8222"}},
    "scheduler scaled to zero": {"scheduler": {"autoscaling": {"minReplicaCount": 0}}},
}


@pytest.mark.parametrize("values", list(BROKEN_VALUES))
def test_broken_values_fail_lint_and_template(helm: Helm, tmp_path: Path, values: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(BROKEN_VALUES[values]))
    with pytest.raises(HelmFailed, match="schema"):
        helm.lint([path])
    with pytest.raises(HelmFailed, match="schema"):
        helm.template([path])


def test_a_pool_listed_twice_fails_template(helm: Helm, tmp_path: Path) -> None:
    # `fail` in a template: helm lint only logs it, helm template (and install) stop.
    path = tmp_path / "twice.yaml"
    path.write_text(yaml.safe_dump({"pools": [{"name": "gpu"}, {"name": "gpu"}]}))
    with pytest.raises(HelmFailed, match='"gpu" is listed twice'):
        helm.template([path])


def test_the_validators_refuse_what_kubernetes_would(
    helm: Helm, keda_validators: dict[tuple[str, str], jsonschema.protocols.Validator]
) -> None:
    """Misspelt fields inside free-form values (a probe, a toleration) pass the values schema; the manifest
    validations catch them."""
    docs = helm.template()
    api = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "vtp-api")
    api["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGett"] = {"path": "/"}
    job = next(d for d in docs if d["kind"] == "ScaledJob")
    job["spec"]["jobTargetRef"]["template"]["spec"]["tolerations"] = [{"keyy": "nvidia.com/gpu"}]
    job["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 1  # KEDA's trigger metadata is all strings

    assert any("httpGett" in error for error in builtin_errors([api]))
    errors = keda_errors([job], keda_validators)
    assert any("keyy" in error for error in errors)
    assert any("lagThreshold" in error for error in errors)
