"""`/v1/pools`: the declared pools (a job may name only these) and each one's load."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from services.api import repository
from services.api.deps import CurrentProject, PoolsDep, SessionDep
from services.api.schemas import ErrorOut, PoolList, PoolOut

router = APIRouter(prefix="/v1/pools", tags=["pools"])


@router.get("", response_model=PoolList, responses={401: {"model": ErrorOut}, 503: {"model": ErrorOut}})
async def list_pools(project: CurrentProject, session: SessionDep, pools: PoolsDep) -> PoolList:
    """Every declared pool: jobs waiting and running on it (of every project: a queue is shared), the runners
    waiting for work, and how long its oldest waiting job has waited."""
    declared = await pools.declared()
    loads = await repository.pool_loads(await session.connection())
    now = datetime.now(UTC)
    items = []
    for pool in declared:
        load = loads.get(pool.name, repository.PoolLoad())
        oldest = load.oldest_waiting_since
        items.append(
            PoolOut(
                name=pool.name,
                waiting=load.waiting,
                running=load.running,
                runners_waiting=pool.runners_waiting,
                dispatches_held=pool.dispatches_held,
                last_taken_at=pool.last_taken_at,
                oldest_waiting_seconds=round((now - oldest).total_seconds(), 3) if oldest else None,
            )
        )
    return PoolList(items=items)
