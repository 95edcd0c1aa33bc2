"""The trainer API contract, input side: what a trainer reads from its environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, TypeAdapter

from contracts.dispatch import DispatchJob
from contracts.jobs import JobSpec

# The spec a trainer reads `VTP_JOB_SPEC` as: its framework's own model from contracts (`TimmSpec`,
# `UltralyticsSpec`), or `JobSpec` (any framework) where it does not matter.
SpecT = TypeVar("SpecT", bound=BaseModel)


@dataclass(frozen=True)
class TrainerEnv(Generic[SpecT]):
    job_id: str
    attempt: int
    callback_url: str
    callback_token: str
    spec: SpecT
    dataset_url: str
    dataset_format: str
    heartbeat_interval: float
    resume_url: str | None = None
    weights_url: str | None = None
    traceparent: str | None = None

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, spec_model: Any = JobSpec
    ) -> TrainerEnv[SpecT]:
        """Raises `pydantic.ValidationError` when the spec is not one `spec_model` accepts."""
        env = os.environ if environ is None else environ
        return cls(
            job_id=env["VTP_JOB_ID"],
            attempt=int(env["VTP_ATTEMPT"]),
            callback_url=env["VTP_CALLBACK_URL"],
            callback_token=env["VTP_CALLBACK_TOKEN"],
            spec=TypeAdapter(spec_model).validate_json(env["VTP_JOB_SPEC"]),
            dataset_url=env["VTP_DATASET_URL"],
            dataset_format=env.get("VTP_DATASET_FORMAT", "imagefolder"),
            heartbeat_interval=float(env.get("VTP_HEARTBEAT_INTERVAL", "5")),
            resume_url=env.get("VTP_RESUME_URL") or None,
            weights_url=env.get("VTP_WEIGHTS_URL") or None,
            traceparent=env.get("TRACEPARENT") or None,
        )

    @classmethod
    def from_dispatch(
        cls, job: DispatchJob, heartbeat_interval: float, traceparent: str | None = None
    ) -> TrainerEnv[JobSpec]:
        """`traceparent`: the runner's span, which the trainer's continues."""
        return cls(
            job_id=job.job_id,
            attempt=job.attempt,
            callback_url=job.callback_url,
            callback_token=job.callback_token,
            spec=job.spec,
            dataset_url=job.dataset_url,
            dataset_format=job.dataset_format,
            heartbeat_interval=heartbeat_interval,
            resume_url=job.resume_url,
            weights_url=job.weights_url,
            traceparent=traceparent,
        )

    def to_environ(self) -> dict[str, str]:
        env = {
            "VTP_JOB_ID": self.job_id,
            "VTP_ATTEMPT": str(self.attempt),
            "VTP_CALLBACK_URL": self.callback_url,
            "VTP_CALLBACK_TOKEN": self.callback_token,
            "VTP_JOB_SPEC": self.spec.model_dump_json(),
            "VTP_DATASET_URL": self.dataset_url,
            "VTP_DATASET_FORMAT": self.dataset_format,
            "VTP_HEARTBEAT_INTERVAL": str(self.heartbeat_interval),
        }
        if self.resume_url:
            env["VTP_RESUME_URL"] = self.resume_url
        if self.weights_url:
            env["VTP_WEIGHTS_URL"] = self.weights_url
        if self.traceparent:
            env["TRACEPARENT"] = self.traceparent
        return env
