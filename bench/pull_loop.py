"""A durable pull consumer loop that keeps messages flowing: pull requests for many messages at once,
delivered to an inbox into a local buffer, handed out in batches to up to `parallel` handlers at once.

The scheduler's consumer before FastStream (messaging.subscribers); kept for the benchmarks, as the baseline
of bench/subscribers.py and the load generator's consumer in bench/control_plane.py.

nats-py's `fetch()` awaits every message of a batch separately (about a millisecond each under load), which
caps a consumer far below what the scheduler needs; one open pull request per consumer does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)

PULL_EXPIRES_SECONDS = 1.0
STATUS_HEADER = "Status"
IDLE_HEARTBEAT = "100"
NO_RESPONDERS = "503"


class PullLoop:
    def __init__(
        self,
        nc: NATS,
        stream: str,
        durable: str,
        handle: Callable[[Sequence[Msg]], Awaitable[None]],
        batch_size: int,
        parallel: int,
    ) -> None:
        self._nc = nc
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._handle = handle
        self._batch_size = batch_size
        self._parallel = parallel
        self._capacity = batch_size * parallel
        self._buffer: deque[Msg] = deque()
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._inbox = ""
        self._subscription: Subscription | None = None
        # The open pull request: messages still owed on it, and when the server will have given up on it.
        self._owed = 0
        self._deadline = 0.0
        self._not_before = 0.0

    def stop(self) -> None:
        """Stop pulling; `run` returns once the batches in hand are handled (buffered ones are nak'ed)."""
        self._stopping.set()
        self._wakeup.set()

    async def run(self) -> None:
        self._inbox = self._nc.new_inbox()
        self._subscription = await self._nc.subscribe(self._inbox, cb=self._on_message)
        try:
            while not self._stopping.is_set():
                await self._pull_if_needed()
                self._dispatch()
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=PULL_EXPIRES_SECONDS / 2)
        finally:
            await self._subscription.unsubscribe()
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            # Taken from the server but never handled: give them back now rather than after the ack wait.
            for msg in self._buffer:
                with contextlib.suppress(Exception):
                    await msg.nak()
            self._buffer.clear()

    async def _on_message(self, msg: Msg) -> None:
        status = msg.headers.get(STATUS_HEADER) if msg.headers else None
        if status is None:
            self._owed = max(self._owed - 1, 0)
            self._buffer.append(msg)
        elif status != IDLE_HEARTBEAT:
            # 404 no messages, 408 request expired, 409 limits, 503 consumer not ready: this request is over.
            self._owed = 0
            if status == NO_RESPONDERS:
                self._not_before = time.monotonic() + 0.2
        self._wakeup.set()

    async def _pull_if_needed(self) -> None:
        now = time.monotonic()
        if (self._owed and now < self._deadline) or now < self._not_before:
            return
        room = self._capacity - len(self._buffer)
        if room < self._batch_size:
            return
        request = {"batch": room, "expires": int(PULL_EXPIRES_SECONDS * 1e9)}
        try:
            await self._nc.publish(self._next_subject, json.dumps(request).encode(), reply=self._inbox)
        except Exception:
            log.warning("pull request failed, retrying", exc_info=True)
            return
        self._owed = room
        # A request lost to a reconnect is never answered: give up on it a little after it expired.
        self._deadline = time.monotonic() + PULL_EXPIRES_SECONDS + 0.5

    def _dispatch(self) -> None:
        while self._buffer and len(self._in_flight) < self._parallel:
            count = min(len(self._buffer), self._batch_size)
            batch = [self._buffer.popleft() for _ in range(count)]
            task = asyncio.create_task(self._handle(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wakeup.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("batch handler crashed", exc_info=task.exception())
