"""Wiring: NATS, database, the two durable consumers (FastStream subscribers) and the ticker. `main()` runs
until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

import uvloop
from faststream.nats import NatsBroker
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts import streams, subjects
from messaging.broker import make_broker
from messaging.group_commit import Key
from messaging.nats import ensure_streams
from messaging.subscribers import BatchSubscription, ensure_push_consumer, raw_message
from services.common.startup import tune_garbage_collector
from services.common.storage import make_storage
from services.scheduler import repository
from services.scheduler.credentials import Desk, Issuer
from services.scheduler.handlers import Handler, Parser, parse_command, parse_report, report_key
from services.scheduler.publisher import Publisher
from services.scheduler.service import SchedulerService
from services.scheduler.settings import SchedulerSettings
from services.scheduler.ticker import run_ticker
from telemetry import logs, metrics, tracing

log = logging.getLogger(__name__)

# How often readiness (NATS, Postgres) and the pools' queue depths are read.
WATCH_INTERVAL = 5.0
CREDENTIALS_QUEUE = "scheduler-credentials"


def make_engine(database_url: str, pool_size: int) -> AsyncEngine:
    """A fixed pool, unlike services.common.db.make_engine: overflow connections are opened and closed per
    checkout under load (a new Postgres connection per input), and a pre-ping costs a round trip per input."""
    return create_async_engine(database_url, pool_size=pool_size, max_overflow=0, pool_pre_ping=False)


class SchedulerApp:
    """The running scheduler. `start()` connects and begins consuming; `stop()` stops taking messages, lets
    the ones in hand finish, then closes NATS and the database pool."""

    def __init__(self, settings: SchedulerSettings) -> None:
        self.settings = settings
        self.broker: NatsBroker | None = None
        self.engine: AsyncEngine | None = None
        self.service: SchedulerService | None = None
        self._subscriptions: list[BatchSubscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.health = metrics.Health()
        for dependency in ("nats", "postgres"):  # until the first check sees them answer
            self.health.set_down(dependency, "not checked yet")
        self._metrics_server: metrics.ThreadingWSGIServer | None = None
        self._depths = metrics.PoolDepths()
        self._beating: asyncio.Task[None] | None = None

    @property
    def nc(self) -> NATS:
        assert self.broker is not None
        return self.broker.connection

    async def start(self) -> None:
        settings = self.settings
        # Beating from the start: a start-up slowed by NATS or Postgres is not a stalled process.
        self._beating = asyncio.create_task(self.health.beat_forever(), name="health")
        if settings.metrics_port is not None:
            self._metrics_server = metrics.serve(settings.metrics_port, self.health, settings.metrics_host)
        private_key_pem = settings.callback_private_key_file.read_text()
        self.engine = make_engine(settings.database_url, settings.db_pool_size)
        self.broker = make_broker(settings.nats_url, "vtp-scheduler", apply_types=False, logger=None)
        await self.broker.connect()
        js = self.nc.jetstream()
        await ensure_streams(js)
        issuer = Issuer(make_storage(settings), private_key_pem, settings.callback_token_ttl)
        self.service = SchedulerService(
            self.engine, Publisher(js, issuer, settings.events_url), settings.policy
        )
        self._answer_credentials(Desk(self.engine, issuer))
        # What a crash left committed but unsent goes out before any new input is applied.
        await self.service.relay.relay_leftovers(older_than=0)

        # A job's reports are applied in the order they came (its last log lines before its `done`); a
        # command waits for nothing (a cancel that overtakes its job's submit is deferred and comes again).
        consumers: tuple[tuple[str, str, str, Parser, Key[Msg] | None], ...] = (
            (
                subjects.COMMANDS_STREAM,
                subjects.SCHEDULER_COMMANDS_CONSUMER,
                subjects.COMMANDS_ALL,
                parse_command,
                None,
            ),
            (
                subjects.REPORTS_STREAM,
                subjects.SCHEDULER_REPORTS_CONSUMER,
                subjects.REPORTS_ALL,
                parse_report,
                report_key,
            ),
        )
        batch_size, parallel = settings.batch_size, settings.parallel_batches
        for stream, durable, filter_subject, parse, key in consumers:
            await ensure_push_consumer(js, stream, durable)
            config = streams.scheduler_consumer(durable, filter_subject, batch_size * (parallel + 1))
            handler = Handler(self.service, parse)
            subscription = BatchSubscription(
                self.broker, stream, config, handler, batch_size, parallel, key=key
            )
            self._subscriptions.append(subscription)
        await self.broker.start()
        self._tasks.append(
            asyncio.create_task(
                run_ticker(self.engine, self.service, settings.tick_interval, self._stopping), name="ticker"
            )
        )
        self._tasks.append(asyncio.create_task(self._watch(), name="watch"))
        tune_garbage_collector()
        log.info("scheduler started")

    def _answer_credentials(self, desk: Desk) -> None:
        """Credentials requests (core NATS, no ack: a request nobody answers is asked again). Every replica
        joins one queue group, so each request gets one answer."""
        assert self.broker is not None
        subscriber = self.broker.subscriber(
            subjects.CREDENTIALS_ALL, queue=CREDENTIALS_QUEUE, decoder=raw_message
        )

        async def answer(message: Msg) -> bytes:
            grant = await desk.answer(message.subject, message.data)
            return grant.model_dump_json(exclude_none=True).encode()

        subscriber(answer)

    async def _watch(self) -> None:
        """Every few seconds: whether NATS and Postgres answer (readiness), and each pool's queue depth."""
        assert self.engine is not None
        while not self._stopping.is_set():
            self.health.set_down("nats", None if self.nc.is_connected else "not connected")
            try:
                async with asyncio.timeout(WATCH_INTERVAL), self.engine.connect() as conn:
                    self._depths.update(await repository.queued_per_pool(conn))
                self.health.set_down("postgres", None)
            except Exception as exc:
                self.health.set_down("postgres", f"{type(exc).__name__}: {exc}"[:200])
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=WATCH_INTERVAL)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        self._stopping.set()
        for subscription in self._subscriptions:
            await subscription.stop()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._beating is not None:
            self._beating.cancel()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        if self.broker is not None:
            await self.broker.stop()
        if self.engine is not None:
            await self.engine.dispose()
        log.info("scheduler stopped")


async def run(settings: SchedulerSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app = SchedulerApp(settings)
    await app.start()
    try:
        await stop.wait()
    finally:
        await app.stop()


def main() -> None:
    settings = SchedulerSettings()
    logs.configure("vtp-scheduler", settings.log_level)
    tracing.configure("vtp-scheduler")
    # uvloop (as the api and events services run under uvicorn): its socket I/O costs a fraction of
    # asyncio's, which the scheduler feels on every publish and ack.
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
