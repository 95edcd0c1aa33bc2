"""The durable `api-read-model` consumer: keeps the jobs table current from VTP_EVENTS.

A FastStream subscriber on the durable push consumer (`contracts.streams.read_model_consumer`; in its
deliver group, so several api processes share it) hands each event, as it is stored, to a group commit
(`messaging.group_commit`): one batch at a time, one transaction each, each job's events in order (in few
statements where they can be, see `service.apply_job_events`); what arrives while a batch is applied makes
up the next. Ack policy MANUAL: each message is settled by its batch, after the commit:

- applied (committed): ack;
- the database failed (transient): nak with a delay;
- a validation verdict that overtook its dataset's commit: nak with a delay, up to `VERDICT_DELIVERIES`
  deliveries, then term (no dataset will ever have it), logged;
- not a JobEvent, or an event that violates a constraint (e.g. of a project this database does not know):
  it can never apply, term, logged.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import streams, subjects
from contracts.events import JobEvent
from messaging.subscribers import BatchSubscription
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


class Outcome(enum.Enum):
    APPLIED = "applied"
    RETRY = "retry"
    DATASET_NOT_COMMITTED = "dataset not committed"
    NEVER = "can never apply"


@dataclass(slots=True)
class Delivery:
    """One event on its way through a batch; unless the batch says otherwise it comes again."""

    event: JobEvent
    outcome: Outcome = Outcome.RETRY


class ReadModelConsumer:
    def __init__(self, engine: AsyncEngine) -> None:
        # Plain connections, not ORM sessions: an event is one Core statement, and at a few events a second
        # each is a transaction of its own, so the session's per-statement overhead would be most of the cost.
        self._engine = engine
        self._subscription: BatchSubscription | None = None
        # The newest version applied per job (recent jobs only), and SSE streams waiting for one.
        self._applied: OrderedDict[str, int] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Event]] = {}

    def subscribe(self, broker: NatsBroker) -> None:
        """Take the durable's events through `broker` (before it starts). A push consumer delivers each
        event as soon as it is stored; the durable stays when the broker stops, and the next start resumes
        where this one stopped."""
        # One batch at a time, as the stream orders them: a job's events are never applied out of order.
        self._subscription = BatchSubscription(
            broker,
            subjects.EVENTS_STREAM,
            streams.read_model_consumer(),
            self.handle,
            BATCH,
            parallel=1,
            subject=subjects.EVENTS_ALL,
        )

    async def stop(self) -> None:
        """Before the broker stops (it drains the connection): take no more messages, and apply and settle
        those in hand."""
        if self._subscription is not None:
            await self._subscription.stop()

    async def handle(self, batch: Sequence[Msg]) -> None:
        """Apply a batch of delivered messages and settle each."""
        deliveries: list[tuple[Msg, Delivery]] = []
        for message in batch:
            try:
                deliveries.append((message, Delivery(JobEvent.model_validate_json(message.data))))
            except ValidationError:
                log.error("read model: not a JobEvent on %s; terminating it", message.subject)
                await message.term()
        await self.apply([delivery for _, delivery in deliveries])
        for message, delivery in deliveries:
            await self._settle(message, delivery)

    async def apply(self, batch: Sequence[Delivery]) -> None:
        """Apply the events in one transaction and record each one's outcome."""
        if not batch:
            return
        try:
            async with self._engine.begin() as conn:
                await service.apply_job_events(conn, [delivery.event for delivery in batch])
        except (IntegrityError, DatasetNotCommitted) as exc:
            if len(batch) > 1:
                # Some event of the batch cannot apply (now or ever): apply them one at a time to hold back
                # only it.
                for one in batch:
                    await self.apply([one])
                return
            [delivery] = batch
            if isinstance(exc, DatasetNotCommitted):
                delivery.outcome = Outcome.DATASET_NOT_COMMITTED
                return
            # E.g. an event of a project this database does not know: retrying can never make it apply, and
            # redelivering it forever would hold back every event behind it.
            log.error(
                "read model: event %s v%s can never apply (%s); terminating it",
                delivery.event.job_id,
                delivery.event.version,
                exc.orig,
            )
            delivery.outcome = Outcome.NEVER
            return
        except (SQLAlchemyError, OSError) as exc:
            log.warning("read model: applying %d events failed (%s); retrying", len(batch), exc)
            return
        for delivery in batch:
            self._mark_applied(delivery.event.job_id, delivery.event.version)
            delivery.outcome = Outcome.APPLIED

    async def _settle(self, message: Msg, delivery: Delivery) -> None:
        if delivery.outcome is Outcome.APPLIED:
            await message.ack()
        elif delivery.outcome is Outcome.RETRY:
            await message.nak(delay=RETRY_DELAY)
        elif delivery.outcome is Outcome.NEVER:
            await message.term()
        elif message.metadata.num_delivered < VERDICT_DELIVERIES:
            await message.nak(delay=RETRY_DELAY)
        else:
            # The dataset's registration is taken to have failed: nothing waits for this verdict.
            log.error(
                "read model: no dataset has validation job %s after %d deliveries; dropping its verdict",
                delivery.event.job_id,
                message.metadata.num_delivered,
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
