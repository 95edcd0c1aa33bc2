"""Starting weights: what a job may name to start training from instead of a random initialisation."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from contracts.base import absent

# An uploaded model's id (`POST /v1/models`), or an artifact of an earlier job: `job:<job_id>/best.pt`.
WEIGHTS_PATTERN = r"^(?:[0-9a-f]{32}|job:[0-9a-f]{32}/[A-Za-z0-9_.\-]{1,200})$"

WeightsReference = Annotated[
    str,
    Field(
        pattern=WEIGHTS_PATTERN,
        description="Starting weights: an uploaded model's id, or `job:<job_id>/<artifact>` (best.pt, "
        "model.pt, ...) of a job of the same project. A retry that resumes from its checkpoint ignores them.",
    ),
]


# What a spec carries: left out when absent, so a spec without weights serializes exactly as before there
# were any (a v1 consumer meets no new key).
OptionalWeights = Annotated[WeightsReference | None, Field(exclude_if=absent)]


def job_artifact(reference: str) -> tuple[str, str] | None:
    """`(job_id, artifact name)` of a `job:<job_id>/<name>` reference; `None` for an uploaded model's id."""
    if not reference.startswith("job:"):
        return None
    job_id, _, name = reference.removeprefix("job:").partition("/")
    return job_id, name
