"""Wiring of the api service: settings, connections, background consumers, routes, error rendering.

`create_app(settings)` builds the app (tests); `main()` runs it from the environment (`vtp serve api`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.types import Scope

from contracts.validation import ValidationLimits
from messaging.broker import make_broker
from messaging.nats import ensure_streams
from services.api import web
from services.api.datasets import Intake
from services.api.deps import authenticate
from services.api.feed import EventFeed
from services.api.messaging import CommandPublisher, NatsCommandPublisher
from services.api.pools import PoolDirectory
from services.api.read_model import ReadModelConsumer
from services.api.routes import datasets, events, health, job_logs, jobs, models, pools
from services.api.service import Lookups, Submitting
from services.api.settings import ApiSettings
from services.api.submit_shortcut import SubmitShortcut
from services.api.submits import SubmitWriter
from services.api.upload_sweeper import UploadSweeper
from services.common import http_errors, metrics_route
from services.common.db import make_engine, make_sessionmaker
from services.common.http_guard import BodyLimit, Headers, Limits, RequestGuard
from services.common.startup import tune_garbage_collector
from services.common.storage import Storage, make_storage
from telemetry import logs, tracing

log = logging.getLogger(__name__)

UPLOAD_SWEEP_EVERY = timedelta(hours=1)


def _lifespan(settings: ApiSettings, limits: Limits) -> Any:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Sized for many concurrent submits (each holds a connection while it awaits the PubAck), with no
        # overflow: past 32, a request waits for a connection rather than open (and then close) one. No
        # pre-ping: a dropped connection costs one request a 503, not every request a round trip.
        engine = make_engine(settings.database_url, pool_size=32, max_overflow=0, pre_ping=False)
        sessions = make_sessionmaker(engine)
        # One broker, one NATS connection: the read model's subscriber, and under it the nats-py client
        # that publishes commands (PubAcks in flight together) and serves SSE from ordered consumers.
        broker = make_broker(settings.nats_url, "vtp-api")
        read_model = ReadModelConsumer(engine)
        read_model.subscribe(broker)
        nc = await broker.connect()
        js = broker.config.connection_state.stream
        await ensure_streams(js)
        limits.json_body = min(limits.json_body, nc.max_payload - ENVELOPE_BYTES)
        feed = EventFeed(js)
        app.state.settings = settings
        app.state.nats = nc
        app.state.engine = engine
        app.state.sessions = sessions
        app.state.storage = storage = make_storage(settings)
        app.state.publisher = publisher = NatsCommandPublisher(js)
        app.state.intake = intake(settings, storage, publisher)
        submit_writer = SubmitWriter(engine, publisher)
        app.state.lookups = lookups = Lookups()
        app.state.pools = pools = PoolDirectory(js)
        app.state.submitting = Submitting(engine, submit_writer, lookups, pools)
        app.state.feed = feed
        app.state.read_model = read_model
        await feed.start()
        await broker.start()
        submit_writer.start()
        upload_sweeper = UploadSweeper(
            storage, keep=timedelta(seconds=settings.upload_keep_seconds), every=UPLOAD_SWEEP_EVERY
        )
        upload_sweeper.start()
        tune_garbage_collector()
        try:
            yield
        finally:
            await upload_sweeper.stop()
            await submit_writer.stop()
            await read_model.stop()
            await feed.stop()
            await broker.stop()  # drains the connection
            await engine.dispose()
            await storage.aclose()

    return lifespan


def intake(settings: ApiSettings, storage: Storage, publisher: CommandPublisher) -> Intake:
    limits = ValidationLimits(
        max_total_bytes=settings.validation_max_bytes,
        max_files=settings.validation_max_files,
        max_ratio=settings.validation_max_ratio,
    )
    return Intake(
        storage=storage,
        publisher=publisher,
        max_bytes=settings.max_dataset_bytes,
        validation_pool=settings.validation_pool,
        validation_limits=limits,
        upload_url_ttl=settings.upload_url_ttl,
    )


# A command carries the body (a spec, a name) and a small envelope: a body within the limit fits a message.
ENVELOPE_BYTES = 16 * 1024
UPLOADS = frozenset({"/v1/datasets", "/v1/models"})


def _protected(scope: Scope) -> bool:
    return bool(scope["path"].startswith("/v1/"))


def _body_limit(limits: Limits) -> BodyLimit:
    def body_limit(scope: Scope, headers: Headers) -> int | None:
        # Multipart uploads read and limit their own bodies (the dataset and model size limits).
        if scope["method"] == "POST" and scope["path"] in UPLOADS:
            if headers.get(b"content-type", b"").startswith(b"multipart/form-data"):
                return None
        return limits.json_body

    return body_limit


def create_app(settings: ApiSettings) -> FastAPI:
    limits = Limits(json_body=settings.max_body_bytes)
    app = FastAPI(
        title="Vision Training Platform API",
        version="1.0.0",
        description="Submit vision training jobs, upload datasets, follow jobs live over Server-Sent Events.",
        lifespan=_lifespan(settings, limits),
    )
    app.add_middleware(SubmitShortcut)
    # Outermost of the app's own: authentication and the body limit come before anything reads the body.
    app.add_middleware(
        RequestGuard, protected=_protected, authenticate=authenticate, body_limit=_body_limit(limits)
    )
    http_errors.install(app)
    tracing.instrument_fastapi(app)  # only when tracing is on
    app.include_router(health.router)
    app.include_router(datasets.router)
    app.include_router(jobs.router)
    app.include_router(job_logs.router)
    app.include_router(models.router)
    app.include_router(pools.router)
    app.include_router(events.router)
    app.include_router(metrics_route.router)
    web.mount(app)  # last: the dashboard at `/` takes only what no route above did
    return app


SHUTDOWN_GRACE_SECONDS = 3


def main() -> None:
    """Run the api from the environment (`VTP_API_HOST`, `VTP_API_PORT`, `NATS_URL`, `DATABASE_URL`, ...)."""
    settings = ApiSettings()
    logs.configure("vtp-api", settings.log_level)
    tracing.configure("vtp-api")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level.lower(),
        access_log=settings.access_log,
        proxy_headers=True,
        log_config=None,  # uvicorn's records go through telemetry.logs like every other
        # SSE streams never end by themselves: on shutdown, give them a moment, then close them. Clients
        # reconnect with Last-Event-ID and miss nothing.
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )


if __name__ == "__main__":
    main()
