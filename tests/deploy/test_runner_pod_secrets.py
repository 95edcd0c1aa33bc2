"""A runner pod holds no database, storage or signing secret, and its NATS credentials are files for root
alone, not environment variables its trainer (a child of another uid) could read (issue 10, point 9)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.chart import Helm, only


@pytest.fixture(scope="module")
def runner_pod(helm: Helm) -> dict[str, Any]:
    docs = helm.template(set_values={"nats.credentialsSecrets.runner": "vtp-nats-runner"})
    job = only(docs, "ScaledJob")
    return job["spec"]["jobTargetRef"]["template"]["spec"]


def test_nats_credentials_are_a_root_only_file_not_the_environment(runner_pod: dict[str, Any]) -> None:
    [runner] = runner_pod["containers"]
    assert all("secretRef" not in source for source in runner["envFrom"])
    [volume] = [v for v in runner_pod["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == "vtp-nats-runner"
    assert volume["secret"]["defaultMode"] == 0o400
    [mount] = [m for m in runner["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    env = {e["name"]: e["value"] for e in runner["env"]}
    assert env["VTP_NATS_CREDENTIALS"] == mount["mountPath"]
    assert not {"NATS_USER", "NATS_PASSWORD", "DATABASE_URL", "VTP_STORAGE_SIGNING_KEY"} & set(env)


def test_the_trainer_runs_as_its_own_user_and_the_runner_has_only_the_capabilities_for_that(
    runner_pod: dict[str, Any],
) -> None:
    [runner] = runner_pod["containers"]
    env = {e["name"]: e["value"] for e in runner["env"]}
    uid, _, gid = env["VTP_TRAINER_USER"].partition(":")
    assert int(uid) != 0
    assert int(gid) != runner_pod["securityContext"]["fsGroup"]  # the group that may read mounted Secrets
    context = runner["securityContext"]
    assert context["runAsUser"] == 0
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"], "add": ["SETUID", "SETGID", "CHOWN", "KILL"]}


def test_without_nats_credentials_a_runner_pod_mounts_no_secret(helm: Helm) -> None:
    pod = only(helm.template(), "ScaledJob")["spec"]["jobTargetRef"]["template"]["spec"]
    [runner] = pod["containers"]
    assert "VTP_NATS_CREDENTIALS" not in {e["name"] for e in runner["env"]}
    assert not any("secret" in volume for volume in pod["volumes"])
