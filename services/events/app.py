"""Wiring of the events service: settings -> NATS, database, storage -> routes. `main()` runs it from the
environment; `create_app(settings)` is what tests use."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from services.common import nats as common_nats
from services.common import storage, tokens
from services.common.db import make_engine, make_sessionmaker
from services.common.startup import freeze_startup_heap
from services.events import errors
from services.events.handlers import run_job_status_consumer
from services.events.routes import callbacks
from services.events.routes import storage as storage_routes
from services.events.service import CallbackService, StorageService
from services.events.settings import EventsSettings

log = logging.getLogger(__name__)


def create_app(settings: EventsSettings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nc = await common_nats.connect(settings.nats_url, name="vtp-events")
        js = nc.jetstream()
        await common_nats.ensure_streams(js)
        engine = make_engine(settings.database_url)
        sessions = make_sessionmaker(engine)
        signer = storage.UrlSigner(settings.storage_signing_key, settings.events_url)
        local = storage.LocalStorage(settings.storage_dir, signer)
        app.state.public_key = tokens.load_public_key(settings.public_key_pem())
        app.state.callbacks = CallbackService(js, sessions, local, settings.artifact_url_ttl)
        app.state.storage = StorageService(local, signer, settings.max_upload_bytes)
        consumer = asyncio.create_task(run_job_status_consumer(js, sessions), name="events-job-status")
        freeze_startup_heap()
        try:
            yield
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            await nc.drain()
            await engine.dispose()

    app = FastAPI(title="vtp events", version="1", lifespan=lifespan)

    @app.exception_handler(errors.EventsError)
    async def render_error(request: Request, exc: errors.EventsError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, errors.Unauthorized) else None
        return JSONResponse(
            {"error": exc.error, "detail": exc.detail}, status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def render_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = jsonable_encoder(exc.errors(), exclude={"input", "ctx"})
        return JSONResponse({"error": "invalid_request", "detail": detail}, status_code=422)

    @app.middleware("http")
    async def access_log(request: Request, call_next):  # type: ignore[no-untyped-def]
        # Our own access log: path only. The query string holds storage signatures, which are never logged.
        response = await call_next(request)
        log.info("%s %s %s", request.method, request.url.path, response.status_code)
        return response

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(callbacks.router)
    app.include_router(storage_routes.router)
    return app


def main() -> None:
    settings = EventsSettings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,  # it would log signed-URL query strings
        log_level=settings.log_level.lower(),
    )


if __name__ == "__main__":
    main()
