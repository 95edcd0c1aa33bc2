"""FastAPI dependencies as `Annotated` aliases: what a route needs, resolved from the app's state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.types import Scope

from services.api import service
from services.api.datasets import Intake
from services.api.errors import Unauthorized
from services.api.feed import EventFeed
from services.api.messaging import CommandPublisher
from services.api.pools import PoolDirectory
from services.api.read_model import ReadModelConsumer
from services.api.service import ProjectRef, Submitting
from services.api.settings import ApiSettings
from services.common.http_guard import Headers, bearer_token
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


async def authenticate(scope: Scope, headers: Headers) -> ProjectRef:
    """The request guard's authentication of every `/v1` request, from its headers alone (before its body
    is read); the route finds the project in `scope["auth"]`."""
    state = scope["app"].state
    return await service.authenticate(state.sessions, state.lookups, bearer_token(headers))


async def current_project(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> ProjectRef:
    # `credentials` only documents the scheme in OpenAPI: the request guard has authenticated already.
    project = request.scope.get("auth")
    if not isinstance(project, ProjectRef):
        raise Unauthorized("missing API key: send `Authorization: Bearer <key>`")
    return project


async def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_storage(request: Request) -> Storage:
    return request.app.state.storage  # type: ignore[no-any-return]


async def get_publisher(request: Request) -> CommandPublisher:
    return request.app.state.publisher  # type: ignore[no-any-return]


async def get_submitting(request: Request) -> Submitting:
    return request.app.state.submitting  # type: ignore[no-any-return]


async def get_pools(request: Request) -> PoolDirectory:
    return request.app.state.pools  # type: ignore[no-any-return]


async def get_engine(request: Request) -> AsyncEngine:
    """For what opens a connection of its own now and then (an SSE stream, which holds none between)."""
    return request.app.state.engine  # type: ignore[no-any-return]


async def get_intake(request: Request) -> Intake:
    return request.app.state.intake  # type: ignore[no-any-return]


async def get_feed(request: Request) -> EventFeed:
    return request.app.state.feed  # type: ignore[no-any-return]


async def get_read_model(request: Request) -> ReadModelConsumer:
    return request.app.state.read_model  # type: ignore[no-any-return]


CurrentProject = Annotated[ProjectRef, Depends(current_project, scope="function")]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
StorageDep = Annotated[Storage, Depends(get_storage)]
PublisherDep = Annotated[CommandPublisher, Depends(get_publisher)]
SubmittingDep = Annotated[Submitting, Depends(get_submitting)]
PoolsDep = Annotated[PoolDirectory, Depends(get_pools)]
EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
IntakeDep = Annotated[Intake, Depends(get_intake)]
FeedDep = Annotated[EventFeed, Depends(get_feed)]
ReadModelDep = Annotated[ReadModelConsumer, Depends(get_read_model)]
