"""`GET /metrics`: this process's Prometheus metrics (telemetry/metrics.py), on the service's own HTTP port.
Unauthenticated, as Prometheus scrapes it; it tells counts, never a job's data."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
