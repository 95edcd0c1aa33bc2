"""FastStream subscribers for the durable consumers whose inputs are applied in batches.

The handler behind them is a batch handler (`BatchHandler`: it parses, applies many inputs in one
transaction and settles every message itself), so the ack policy is MANUAL: nothing is acked before its
effect commits. FastStream hands each message to `BatchSubscription`, which puts it into a group commit and
returns at once; FastStream's own concurrency (`max_workers`, a task per message) costs about eight times
as much per message (bench/subscribers.py, docs/design.md).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from faststream import AckPolicy
from faststream.message import StreamMessage
from faststream.nats import JStream, NatsBroker
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from nats.js.errors import NotFoundError

from messaging.group_commit import GroupCommit, Key

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[Msg]], Awaitable[None]]


async def raw_message(message: StreamMessage[Msg]) -> Msg:
    """A decoder handing over the message itself: the handler parses the bytes (and terminates what does
    not parse)."""
    return message.raw_message


class BatchSubscription:
    """A durable push consumer's messages, applied by `handle` in batches (messaging.group_commit).

    Every replica of the service joins the consumer's deliver group (named as the durable), so they share
    its messages. A consumer of that name must be a push consumer: `ensure_push_consumer` first.
    """

    def __init__(
        self,
        broker: NatsBroker,
        stream: str,
        config: ConsumerConfig,
        handle: BatchHandler,
        batch_size: int,
        parallel: int,
        subject: str | None = None,
        key: Key[Msg] | None = None,
    ) -> None:
        """`subject`: what the subscription listens to; by default the consumer's filter subject (a
        consumer with several filter subjects delivers what they choose). `key`: messages of one key are
        applied in order, never in two batches at once (messaging.group_commit)."""
        assert config.durable_name is not None
        self._group = GroupCommit(handle, batch_size, parallel, key)

        async def take(message: Any) -> None:
            self._group.put(message)

        self._subscriber = broker.subscriber(
            subject if subject is not None else config.filter_subject or "",
            queue=config.durable_name,
            stream=JStream(stream, declare=False),
            config=config,
            ack_policy=AckPolicy.MANUAL,
            decoder=raw_message,
            no_reply=True,
        )
        self._subscriber(take)

    async def stop(self) -> None:
        """Take no more messages and settle those in hand (before the broker's connection closes)."""
        await self._subscriber.stop()
        await self._group.drain()


async def ensure_push_consumer(js: JetStreamContext, stream: str, durable: str) -> None:
    """A consumer of this name made as a pull consumer (by an older release) is deleted, so that the
    subscriber makes it again as a push consumer. On a work-queue stream its messages stay until acked and
    the new consumer delivers them all; on the events stream it starts again from the first event, which
    every consumer of it applies idempotently; one in hand elsewhere meanwhile comes again, a redelivery."""
    try:
        info = await js.consumer_info(stream, durable)
    except NotFoundError:
        return
    if info.config.deliver_subject is None:
        log.warning("consumer %s is a pull consumer: making it again as a push consumer", durable)
        await js.delete_consumer(stream, durable)
