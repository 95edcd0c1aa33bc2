"""FastAPI dependencies as `Annotated` aliases: what a route needs, resolved from the app's state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.api import service
from services.api.feed import EventFeed
from services.api.read_model import ReadModelConsumer
from services.api.service import CommandPublisher, Lookups, ProjectRef
from services.api.settings import ApiSettings
from services.common.storage import Storage

bearer = HTTPBearer(
    auto_error=False, description="An API key of your project: `Authorization: Bearer <key>`."
)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


# scope="function": the session (and its pooled connection) is released when the route returns, before a
# streamed response (SSE, downloads) starts, so long-lived streams never hold database connections.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_lookups(request: Request) -> Lookups:
    return request.app.state.lookups  # type: ignore[no-any-return]


LookupsDep = Annotated[Lookups, Depends(get_lookups)]


async def current_project(
    request: Request,
    lookups: LookupsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ProjectRef:
    api_key = credentials.credentials if credentials else None
    return await service.authenticate(request.app.state.sessions, lookups, api_key)


async def get_engine(request: Request) -> AsyncEngine:
    return request.app.state.engine  # type: ignore[no-any-return]


async def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_storage(request: Request) -> Storage:
    return request.app.state.storage  # type: ignore[no-any-return]


async def get_publisher(request: Request) -> CommandPublisher:
    return request.app.state.publisher  # type: ignore[no-any-return]


async def get_feed(request: Request) -> EventFeed:
    return request.app.state.feed  # type: ignore[no-any-return]


async def get_read_model(request: Request) -> ReadModelConsumer:
    return request.app.state.read_model  # type: ignore[no-any-return]


CurrentProject = Annotated[ProjectRef, Depends(current_project, scope="function")]
# The submit path's transaction runs on a plain connection of this engine (see service.submit_job).
EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
StorageDep = Annotated[Storage, Depends(get_storage)]
PublisherDep = Annotated[CommandPublisher, Depends(get_publisher)]
FeedDep = Annotated[EventFeed, Depends(get_feed)]
ReadModelDep = Annotated[ReadModelConsumer, Depends(get_read_model)]
