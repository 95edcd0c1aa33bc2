"""Validating rendered KEDA objects against the CRDs of KEDA itself (`../shared/keda-crds/`, copied from
kedacore/keda): each CRD's `openAPIV3Schema` as a JSON Schema, refusing unknown fields as the API server's
strict field validation does (`kubectl apply` refuses them by default)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.deploy.chart import REPO

# Beside the repository: /work/shared here; in CI, the copy of shared/ next to the fresh clone.
CRDS_DIR = Path(os.environ.get("VTP_KEDA_CRDS") or REPO.parent / "shared" / "keda-crds")


def strict(schema: Any) -> Any:
    """A copy in which every object that lists its properties refuses others."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            if not schema.get("x-kubernetes-preserve-unknown-fields"):
                schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


def load_validators(folder: Path = CRDS_DIR) -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> validator, for every served version of every CRD in `folder`."""
    validators = {}
    for path in sorted(folder.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = strict(version["schema"]["openAPIV3Schema"])
                validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return validators
