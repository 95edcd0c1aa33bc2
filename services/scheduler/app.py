"""Wiring: NATS, database, the two durable consumers and the ticker. `main()` runs until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import uvloop
from nats.aio.client import Client as NATS
from nats.js.errors import APIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts import streams, subjects
from messaging.nats import connect, ensure_streams
from messaging.pull_loop import PullLoop
from services.common.startup import tune_garbage_collector
from services.common.storage import make_storage
from services.scheduler import logs
from services.scheduler.handlers import Handler, Parser, parse_command, parse_report
from services.scheduler.publisher import Publisher
from services.scheduler.service import SchedulerService
from services.scheduler.settings import SchedulerSettings
from services.scheduler.ticker import run_ticker

log = logging.getLogger(__name__)


def make_engine(database_url: str, pool_size: int) -> AsyncEngine:
    """A fixed pool, unlike services.common.db.make_engine: overflow connections are opened and closed per
    checkout under load (a new Postgres connection per input), and a pre-ping costs a round trip per input."""
    return create_async_engine(database_url, pool_size=pool_size, max_overflow=0, pool_pre_ping=False)


class SchedulerApp:
    """The running scheduler. `start()` connects and begins consuming; `stop()` stops fetching, lets the
    messages in hand finish, then closes NATS and the database pool."""

    def __init__(self, settings: SchedulerSettings) -> None:
        self.settings = settings
        self.nc: NATS | None = None
        self.engine: AsyncEngine | None = None
        self.service: SchedulerService | None = None
        self._loops: list[PullLoop] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        settings = self.settings
        private_key_pem = settings.callback_private_key_file.read_text()
        self.engine = make_engine(settings.database_url, settings.db_pool_size)
        self.nc = await connect(settings.nats_url, name="vtp-scheduler")
        js = self.nc.jetstream()
        await ensure_streams(js)
        storage = make_storage(settings)
        publisher = Publisher(js, storage, private_key_pem, settings.events_url, settings.callback_token_ttl)
        self.service = SchedulerService(self.engine, publisher, settings.policy)
        # What a crash left committed but unsent goes out before any new input is applied.
        await self.service.relay.relay_leftovers(older_than=0)

        consumers: tuple[tuple[str, str, str, Parser], ...] = (
            (
                subjects.COMMANDS_STREAM,
                subjects.SCHEDULER_COMMANDS_CONSUMER,
                subjects.COMMANDS_ALL,
                parse_command,
            ),
            (
                subjects.REPORTS_STREAM,
                subjects.SCHEDULER_REPORTS_CONSUMER,
                subjects.REPORTS_ALL,
                parse_report,
            ),
        )
        for stream, durable, filter_subject, parse in consumers:
            in_flight = settings.batch_size * settings.parallel_batches
            try:
                await js.add_consumer(stream, streams.scheduler_consumer(durable, filter_subject, in_flight))
            except APIError:
                # It exists with settings the server will not change in place: consume with those.
                log.warning("consumer %s kept with its existing configuration", durable, exc_info=True)
            loop = PullLoop(
                self.nc,
                stream,
                durable,
                Handler(self.service, parse),
                settings.batch_size,
                settings.parallel_batches,
            )
            self._loops.append(loop)
            self._tasks.append(asyncio.create_task(loop.run(), name=f"consume-{durable}"))
        self._tasks.append(
            asyncio.create_task(
                run_ticker(self.engine, self.service, settings.tick_interval, self._stopping), name="ticker"
            )
        )
        tune_garbage_collector()
        log.info("scheduler started")

    async def stop(self) -> None:
        self._stopping.set()
        for loop in self._loops:
            loop.stop()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.nc is not None and not self.nc.is_closed:
            # Every message in hand is settled and every publish awaited by now; drain() would wait on the
            # pull subscriptions' open fetch requests until its timeout, so flush and close instead.
            with contextlib.suppress(Exception):
                await self.nc.flush(timeout=2)
            await self.nc.close()
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
    logs.configure(settings.log_level)
    # uvloop (as the api and events services run under uvicorn): its socket I/O costs a fraction of
    # asyncio's, which the scheduler feels on every publish and ack.
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
