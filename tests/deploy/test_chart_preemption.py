"""The chart and preemption: every pool's runner pods get `VTP_PREEMPT_GRACE` (the trainer's time from SIGTERM
to save, report and exit) and a `terminationGracePeriodSeconds` that leaves the runner its margin beyond
it, from the pool defaults or a pool's own `preemptGrace`; a grace that is no whole number of seconds is
refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.chart import CHART, GPU_POOLS, Helm, HelmFailed, only
from trainers.preemption import DEFAULT_GRACE, GRACE_VARIABLE
from trainers.runner import passed_to_trainer

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def runner_pod(docs: list[dict[str, Any]], pool: str) -> dict[str, Any]:
    return only(docs, "ScaledJob", f"vtp-pool-{pool}")["spec"]["jobTargetRef"]["template"]["spec"]


def grace_of(pod: dict[str, Any]) -> str:
    [value] = [e["value"] for e in pod["containers"][0]["env"] if e["name"] == GRACE_VARIABLE]
    return value


def test_the_default_grace_is_the_trainers_and_the_pods_outlast_it(helm: Helm) -> None:
    margin = VALUES["runner"]["terminationMargin"]
    assert VALUES["poolDefaults"]["preemptGrace"] == DEFAULT_GRACE
    assert margin >= 10  # the runner's last output and its ack, after the trainer has exited
    assert passed_to_trainer(GRACE_VARIABLE)  # the runner hands it to the trainer
    docs = helm.template([GPU_POOLS])
    for pool in ("gpu-a100", "gpu-l4"):
        pod = runner_pod(docs, pool)
        assert grace_of(pod) == "30"
        assert pod["terminationGracePeriodSeconds"] == 30 + margin


def test_a_pool_sets_its_own_grace(helm: Helm, tmp_path: Path) -> None:
    values = tmp_path / "grace.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "runner": {"terminationMargin": 20},
                "pools": [{"name": "big", "preemptGrace": 120}, {"name": "small"}],
            }
        )
    )
    docs = helm.template([values])
    big, small = runner_pod(docs, "big"), runner_pod(docs, "small")
    assert (grace_of(big), big["terminationGracePeriodSeconds"]) == ("120", 140)
    assert (grace_of(small), small["terminationGracePeriodSeconds"]) == ("30", 50)


@pytest.mark.parametrize("grace", [0, 2.5, "30"])
def test_a_grace_that_is_no_whole_number_of_seconds_is_refused(helm: Helm, tmp_path: Path, grace) -> None:
    values = tmp_path / "broken.yaml"
    values.write_text(yaml.safe_dump({"pools": [{"name": "gpu", "preemptGrace": grace}]}))
    with pytest.raises(HelmFailed, match="schema"):
        helm.template([values])
