"""The durable `api-read-model` consumer: keeps the jobs table current from VTP_EVENTS.

Events that have arrived are applied in batches, one transaction per batch, each job's in order (in few
statements where they can be, see `service.apply_job_events`). Ack after the batch is
committed; nak with a delay when the database fails (transient) or when a validation verdict overtakes its
dataset's commit; term a message that is not a JobEvent or that violates a constraint (permanent: it can
never apply).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import streams, subjects
from contracts.events import JobEvent
from services.api import service
from services.api.datasets import DatasetNotCommitted

log = logging.getLogger(__name__)

# At most this many events per transaction: one commit for many events, yet short transactions.
BATCH = 200
REMEMBERED_JOBS = 10_000
CATCH_UP_WAIT = 3.0
CATCH_UP_POLL = 0.1
RETRY_DELAY = 1.0
# A dataset's row commits milliseconds after its validation job is submitted; a verdict arriving first waits
# up to this many deliveries (about a second apart) for it.
VERDICT_DELIVERIES = 30


class ReadModelConsumer:
    def __init__(self, js: JetStreamContext, engine: AsyncEngine) -> None:
        self._js = js
        # Plain connections, not ORM sessions: an event is one Core statement, and at a few events a second
        # each is a transaction of its own, so the session's per-statement overhead would be most of the cost.
        self._engine = engine
        self._task: asyncio.Task[None] | None = None
        self._subscription: JetStreamContext.PushSubscription | None = None
        self._received: asyncio.Queue[Msg] = asyncio.Queue()
        # The newest version applied per job (recent jobs only), and SSE streams waiting for one.
        self._applied: OrderedDict[str, int] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Event]] = {}

    async def start(self) -> None:
        # A push consumer delivers each event as soon as it is stored (a pull `fetch` with a batch waits for
        # the batch to fill at low rates). The deliver group lets several api processes share the durable.
        subscription = await self._js.subscribe(
            subjects.EVENTS_ALL,
            queue=subjects.API_READ_MODEL_CONSUMER,
            cb=self._receive,
            durable=subjects.API_READ_MODEL_CONSUMER,
            stream=subjects.EVENTS_STREAM,
            manual_ack=True,
            config=streams.read_model_consumer(),
        )
        self._subscription = subscription
        self._task = asyncio.create_task(self._run(), name="api-read-model")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._subscription is not None:
            # Unsubscribe only: the durable consumer stays, and the next start resumes where this one stopped.
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()

    async def _receive(self, message: Msg) -> None:
        # Only queue it, so that what arrives while a batch is being applied makes up the next batch. The
        # queue stays bounded by the consumer's max_ack_pending.
        self._received.put_nowait(message)

    async def _run(self) -> None:
        while True:
            batch = [await self._received.get()]
            while len(batch) < BATCH and not self._received.empty():
                batch.append(self._received.get_nowait())
            try:
                await self._handle(batch)
            except Exception:
                # A bug or a lost connection must not stop the consumer; unacked, the messages come again.
                log.exception("read model: handling a batch of %d events failed", len(batch))

    async def _handle(self, batch: list[Msg]) -> None:
        events: list[tuple[Msg, JobEvent]] = []
        for message in batch:
            try:
                events.append((message, JobEvent.model_validate_json(message.data)))
            except ValidationError:
                log.error("read model: not a JobEvent on %s; terminating it", message.subject)
                await message.term()
        if events:
            await self._apply(events)

    async def _apply(self, events: list[tuple[Msg, JobEvent]]) -> None:
        try:
            async with self._engine.begin() as conn:
                await service.apply_job_events(conn, [event for _, event in events])
        except (IntegrityError, DatasetNotCommitted) as exc:
            if len(events) > 1:
                # Some event of the batch cannot apply (now or ever): apply them one at a time to hold back
                # only it.
                for one in events:
                    await self._apply([one])
                return
            if isinstance(exc, DatasetNotCommitted):
                await self._retry_verdict(*events[0])
                return
            # E.g. an event of a project this database does not know: retrying can never make it apply, and
            # redelivering it forever would hold back every event behind it.
            message, event = events[0]
            log.error(
                "read model: event %s v%s can never apply (%s); terminating it",
                event.job_id,
                event.version,
                exc.orig,
            )
            await message.term()
            return
        except (SQLAlchemyError, OSError) as exc:
            log.warning("read model: applying %d events failed (%s); retrying", len(events), exc)
            for message, _ in events:
                await message.nak(delay=RETRY_DELAY)
            return
        for message, event in events:
            self._mark_applied(event.job_id, event.version)
            await message.ack()

    async def _retry_verdict(self, message: Msg, event: JobEvent) -> None:
        """A validation verdict whose dataset row is not committed yet comes again shortly; after
        `VERDICT_DELIVERIES` the dataset's registration is taken to have failed (nothing waits for it)."""
        deliveries = message.metadata.num_delivered
        if deliveries < VERDICT_DELIVERIES:
            await message.nak(delay=RETRY_DELAY)
            return
        log.error(
            "read model: no dataset has validation job %s after %d deliveries; dropping its verdict",
            event.job_id,
            deliveries,
        )
        await message.term()

    def _mark_applied(self, job_id: str, version: int) -> None:
        if self._applied.get(job_id, 0) < version:
            self._applied[job_id] = version
        self._applied.move_to_end(job_id)
        while len(self._applied) > REMEMBERED_JOBS:
            self._applied.popitem(last=False)
        for waiter in self._waiters.pop(job_id, ()):
            waiter.set()

    async def caught_up(self, job_id: str, version: int, within: float = CATCH_UP_WAIT) -> bool:
        """Wait until the read model holds `version` of the job (applied here or by another api process).

        SSE holds a terminal event on this, so a client that reads the job right after it sees it finished.
        False when `within` seconds pass first.
        """
        deadline = asyncio.get_running_loop().time() + within
        while True:
            if self._applied.get(job_id, 0) >= version:
                return True
            try:
                async with self._engine.connect() as conn:
                    if await service.stored_version(conn, job_id) >= version:
                        return True
            except (SQLAlchemyError, OSError):
                return False  # no database: deliver the event rather than hold the stream
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            applied = asyncio.Event()
            waiters = self._waiters.setdefault(job_id, [])
            waiters.append(applied)
            try:
                await asyncio.wait_for(applied.wait(), min(remaining, CATCH_UP_POLL))
            except TimeoutError:
                pass
            finally:
                if applied in waiters:
                    waiters.remove(applied)
                if not waiters and self._waiters.get(job_id) is waiters:
                    del self._waiters[job_id]
