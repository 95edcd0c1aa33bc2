"""The durable `api-read-model` consumer: keeps the jobs table current from VTP_EVENTS.

Ack after the event is applied and committed; nak with a delay when the database fails (transient);
term a message that is not a JobEvent or that violates a constraint (permanent: it can never apply).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import subjects
from contracts.events import JobEvent
from services.api import service

log = logging.getLogger(__name__)

IDLE_WAIT = 5.0
REMEMBERED_JOBS = 10_000
CATCH_UP_WAIT = 3.0
CATCH_UP_POLL = 0.1
RETRY_DELAY = 1.0


class ReadModelConsumer:
    def __init__(self, js: JetStreamContext, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._js = js
        self._sessions = sessions
        self._task: asyncio.Task[None] | None = None
        self._subscription: JetStreamContext.PushSubscription | None = None
        # The newest version applied per job (recent jobs only), and SSE streams waiting for one.
        self._applied: OrderedDict[str, int] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Event]] = {}

    async def start(self) -> None:
        # A push consumer delivers each event as soon as it is stored (a pull `fetch` with a batch waits for
        # the batch to fill at low rates). The deliver group lets several api processes share the durable.
        subscription = await self._js.subscribe(
            subjects.EVENTS_ALL,
            queue=subjects.API_READ_MODEL_CONSUMER,
            durable=subjects.API_READ_MODEL_CONSUMER,
            stream=subjects.EVENTS_STREAM,
            manual_ack=True,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=30,
                max_deliver=-1,
                max_ack_pending=1024,
            ),
        )
        self._subscription = subscription
        self._task = asyncio.create_task(self._run(subscription), name="api-read-model")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._subscription is not None:
            # Unsubscribe only: the durable consumer stays, and the next start resumes where this one stopped.
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()

    async def _run(self, subscription: JetStreamContext.PushSubscription) -> None:
        while True:
            try:
                message = await subscription.next_msg(timeout=IDLE_WAIT)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except nats.errors.Error as exc:
                log.warning("read model: receive failed (%s); retrying", exc)
                await asyncio.sleep(RETRY_DELAY)
                continue
            try:
                await self._handle(message)
            except Exception:
                # A bug or a lost connection must not stop the consumer; unacked, the message comes again.
                log.exception("read model: handling %s failed", message.subject)

    async def _handle(self, message: Msg) -> None:
        try:
            event = JobEvent.model_validate_json(message.data)
        except ValidationError:
            log.error("read model: not a JobEvent on %s; terminating it", message.subject)
            await message.term()
            return
        try:
            async with self._sessions() as session, session.begin():
                await service.apply_event(session, event)
        except IntegrityError as exc:
            # E.g. an event of a project this database does not know: retrying can never make it apply, and
            # redelivering it forever would hold back every event behind it.
            log.error(
                "read model: event %s v%s can never apply (%s); terminating it",
                event.job_id,
                event.version,
                exc.orig,
            )
            await message.term()
            return
        except (SQLAlchemyError, OSError) as exc:
            log.warning("read model: applying %s v%s failed (%s); retrying", event.job_id, event.version, exc)
            await message.nak(delay=RETRY_DELAY)
            return
        self._mark_applied(event.job_id, event.version)
        await message.ack()

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
                async with self._sessions() as session:
                    if await service.stored_version(session, job_id) >= version:
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
