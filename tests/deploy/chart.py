"""Running helm on the chart, offline: lint, and render to a list of manifests."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "vtp"
GPU_POOLS = REPO / "deploy" / "helm" / "values-gpu-pools.yaml"
RELEASE = "vtp"
NAMESPACE = "vtp"
GET_HELM = REPO / "scripts" / "get-helm.sh"


class HelmFailed(Exception):
    pass


def obtain_helm() -> Helm:
    """The helm binary scripts/get-helm.sh provides; raises HelmFailed with its reason where it cannot."""
    try:
        result = subprocess.run(["bash", str(GET_HELM)], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HelmFailed(str(exc)) from exc
    if result.returncode != 0:
        raise HelmFailed(result.stderr.strip() or f"exit {result.returncode}")
    helm = Helm(result.stdout.strip())
    helm.run("version", "--short")
    return helm


@dataclass(frozen=True)
class Helm:
    binary: str

    def run(self, *args: str) -> str:
        try:
            result = subprocess.run([self.binary, *args], capture_output=True, text=True, timeout=120)
        except OSError as exc:
            raise HelmFailed(str(exc)) from exc
        if result.returncode != 0:
            raise HelmFailed(result.stdout + result.stderr)
        return result.stdout

    def lint(self, values: Sequence[Path] = ()) -> str:
        return self.run("lint", "--strict", str(CHART), *_values_args(values))

    def template(
        self, values: Sequence[Path] = (), set_values: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        args = _values_args(values)
        for name, value in (set_values or {}).items():
            args += ["--set-string", f"{name}={value}"]
        text = self.run("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)
        return [doc for doc in yaml.safe_load_all(text) if doc]


def _values_args(values: Sequence[Path]) -> list[str]:
    return [arg for path in values for arg in ("--values", str(path))]


def only(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]
