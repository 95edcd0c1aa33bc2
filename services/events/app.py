"""Wiring of the events service: settings -> NATS, database, storage -> routes. `main()` runs it from the
environment; `create_app(settings)` is what tests use."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI, Request
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from messaging import nats as common_nats
from messaging.broker import make_broker
from services.common import http_errors, http_health, metrics_route, storage, tokens
from services.common.db import make_engine
from services.common.http_guard import BodyLimit, Headers, Limits, RequestGuard
from services.common.http_health import READINESS_RESPONSES
from services.common.startup import tune_garbage_collector
from services.events.handlers import JobStatusConsumer, ensure_job_status_consumer
from services.events.renewal import TokenRenewer
from services.events.routes import callbacks
from services.events.routes import storage as storage_routes
from services.events.service import CallbackService, StorageService, verify_token
from services.events.settings import EventsSettings
from telemetry import logs, metrics, tracing

log = logging.getLogger(__name__)


# A report carries the callback's body and a small envelope: a body within the limit fits a message.
ENVELOPE_BYTES = 16 * 1024


STORAGE_PREFIX = "/v1/storage/"


def _protected(scope: Scope) -> bool:
    return bool(scope["path"].startswith("/v1/callbacks/"))


class StorageCors:
    """CORS for the signed storage URLs only, so that the dashboard (another origin) can PUT a dataset archive
    straight to storage: starlette's `CORSMiddleware` answers the preflight `OPTIONS` (which carries no
    signature) and marks the answers. Any origin may: a signed URL carries its authorization in its query
    and no cookie is involved. The callbacks (bearer tokens of trainers, never browsers) answer no origin."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=["*"],
            allow_methods=["GET", "PUT"],
            allow_headers=["content-type"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(STORAGE_PREFIX):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def _authenticate(scope: Scope, headers: Headers) -> tokens.CallbackClaims:
    """The callback token, verified before the body is read; the route finds the claims in `scope["auth"]`."""
    authorization = headers.get(b"authorization")
    header = authorization.decode("latin-1") if authorization is not None else None
    return verify_token(scope["app"].state.token_verifier, header)


def _body_limit(limits: Limits) -> BodyLimit:
    def body_limit(scope: Scope, headers: Headers) -> int | None:
        # A signed PUT streams the object to storage within the URL's own limit.
        if scope["method"] == "PUT" and scope["path"].startswith(STORAGE_PREFIX):
            return None
        return limits.json_body

    return body_limit


def create_app(settings: EventsSettings) -> FastAPI:
    limits = Limits(json_body=settings.max_body_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One broker, one NATS connection: the job-status subscriber, and the reports published through
        # the nats-py client underneath it.
        # No pre-ping: a dropped connection costs one heartbeat its stop answer, not every callback a round
        # trip (see make_engine).
        engine = make_engine(settings.database_url, pre_ping=False)
        broker = make_broker(settings.nats_url, "vtp-events")
        job_statuses = JobStatusConsumer(engine)
        job_statuses.subscribe(broker)
        nc = await broker.connect()
        js = broker.config.connection_state.stream
        await common_nats.ensure_streams(js)
        await ensure_job_status_consumer(js)
        limits.json_body = min(limits.json_body, nc.max_payload - ENVELOPE_BYTES)
        signer = storage.UrlSigner(settings.storage_signing_key, settings.events_url)
        local = storage.LocalStorage(settings.storage_dir, signer)
        app.state.nats = nc
        app.state.engine = engine
        app.state.token_verifier = tokens.TokenVerifier(tokens.load_public_key(settings.public_key_pem()))
        # A heartbeat's status read is one statement: in autocommit, without BEGIN and ROLLBACK round trips.
        status_reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        # Artifacts go to the configured backend; `/v1/storage` serves only the local one (S3's presigned URLs
        # point at S3 itself).
        objects = storage.make_storage(settings)
        app.state.callbacks = CallbackService(
            js, status_reader, objects, settings.artifact_url_ttl, renewer=TokenRenewer(nc)
        )
        app.state.storage = StorageService(local, signer, settings.max_upload_bytes)
        await broker.start()
        tune_garbage_collector()
        try:
            yield
        finally:
            await job_statuses.stop()
            await broker.stop()  # drains the connection
            await engine.dispose()
            await objects.aclose()

    app = FastAPI(title="vtp events", version="1", lifespan=lifespan)
    # The token and the body limit come before anything reads the body; a storage preflight is answered
    # before them, and the guard's refusals of a storage request carry CORS headers the browser can read;
    # the access log sees every answer.
    app.add_middleware(
        RequestGuard, protected=_protected, authenticate=_authenticate, body_limit=_body_limit(limits)
    )
    app.add_middleware(StorageCors)
    app.add_middleware(NotedAnswers, access_log=settings.access_log)
    http_errors.install(app)
    tracing.instrument_fastapi(app)  # only when tracing is on

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers; asks no dependency."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses=READINESS_RESPONSES)
    async def readyz(request: Request) -> Response:
        """200 when Postgres and NATS both answer; 503 (`Retry-After`) naming each that does not."""
        state = request.app.state
        return await http_health.readiness(
            {"database": http_health.database(state.engine), "nats": http_health.message_bus(state.nats)}
        )

    app.include_router(callbacks.router)
    app.include_router(storage_routes.router)
    app.include_router(metrics_route.router)
    return app


# The callback kinds counted by name in `vtp_callbacks_total`; any other path under /v1/callbacks/ is
# "other" (a label per path an attacker makes up would grow the metric without end).
CALLBACK_PREFIX = "/v1/callbacks/"
CALLBACK_KINDS = frozenset(route.path.removeprefix(CALLBACK_PREFIX) for route in callbacks.router.routes)


def callback_kind(path: str) -> str | None:
    """The callback kind of a request path (`heartbeat`, `artifacts/complete`, …), None for other paths."""
    if not path.startswith(CALLBACK_PREFIX):
        return None
    kind = path.removeprefix(CALLBACK_PREFIX)
    return kind if kind in CALLBACK_KINDS else "other"


class NotedAnswers:
    """Every answer's status, noted once: counted per callback kind (`vtp_callbacks_total`, refusals of the
    guard included) and, with `access_log`, one log line with the path only: the query string holds
    storage signatures, which are never logged. Plain ASGI (not `@app.middleware`), which would cost every
    callback a task and a stream."""

    def __init__(self, app: ASGIApp, access_log: bool) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            kind = callback_kind(scope["path"])
            if kind is not None:
                metrics.CALLBACKS.labels(kind=kind, code=str(status)).inc()
            if self.access_log:
                log.info("%s %s %s", scope["method"], scope["path"], status)


def main() -> None:
    settings = EventsSettings()
    logs.configure("vtp-events", settings.log_level)
    tracing.configure("vtp-events")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,  # it would log signed-URL query strings
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's records go through telemetry.logs like every other
    )


if __name__ == "__main__":
    main()
