"""Path and query parameters the routes share, validated where they enter: text Postgres cannot store
(NUL, lone surrogates) or of absurd length is a 422 naming the parameter, never a database error."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from contracts.base import StorableStr
from contracts.jobs import POOL_PATTERN

# A JetStream stream sequence (the SSE `id:`) is an unsigned 64-bit number; Postgres' bigint holds 2**63-1.
MAX_SEQUENCE = 2**63 - 1

JobId = Annotated[StorableStr, Path(min_length=1, max_length=200, description="The job's id.")]
ModelId = Annotated[StorableStr, Path(min_length=1, max_length=200, description="The model's id.")]
ArtifactName = Annotated[StorableStr, Path(min_length=1, max_length=200, description="e.g. best.pt")]
DatasetReference = Annotated[
    StorableStr, Path(min_length=1, max_length=200, description="An id, `name:version`, or `name`.")
]
LastEventIdQuery = Annotated[
    int | None, Query(ge=0, le=MAX_SEQUENCE, description="Same as the Last-Event-ID header.")
]
Cursor = Annotated[StorableStr | None, Query(max_length=500)]
Framework = Annotated[StorableStr | None, Query(max_length=32)]
Pool = Annotated[str | None, Query(pattern=POOL_PATTERN, description="Only jobs on this pool.")]
DatasetName = Annotated[StorableStr | None, Query(max_length=100, description="Only this name's versions.")]
