"""The chart's `files/contracts.yaml` is what deploy/generate.py makes from the Python constants."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from tests.deploy.chart import REPO


def load_generate() -> ModuleType:
    # deploy/ is no package: load the script by its path.
    spec = importlib.util.spec_from_file_location("deploy_generate", REPO / "deploy" / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = load_generate()


def test_checked_in_contracts_file_is_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert generate.main(["--check"]) == 0, capsys.readouterr().err


def test_a_stale_contracts_file_fails_the_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "contracts.yaml"
    stale.write_text(generate.OUTPUT.read_text().replace("pool-%s", "pools-%s"))
    assert generate.main(["--check", "--output", str(stale)]) == 1
    assert "python deploy/generate.py" in capsys.readouterr().err
