"""Routing only, on FastStream's in-memory broker (delivery semantics are tested on a real nats-server in
test_job_status_delivery.py): which job events reach which consumer's subscriber."""

from __future__ import annotations

import pytest
from faststream.nats import TestNatsBroker

from contracts import subjects
from contracts.jobs import EventType
from messaging.broker import make_broker
from services.api.read_model import ReadModelConsumer
from services.events.handlers import JobStatusConsumer


async def test_the_job_status_consumer_takes_only_retries_and_ends_and_the_read_model_takes_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = make_broker("nats://127.0.0.1:1", "routing-test")
    read_model, job_statuses = ReadModelConsumer(None), JobStatusConsumer(None)  # type: ignore[arg-type]
    taken: dict[str, list[str]] = {"read model": [], "job status": []}
    read_model.subscribe(broker)
    job_statuses.subscribe(broker)
    for name, consumer in (("read model", read_model), ("job status", job_statuses)):
        group = consumer._subscription._group  # type: ignore[union-attr]
        monkeypatch.setattr(group, "put", lambda message, name=name: taken[name].append(message.subject))

    published = [subjects.event_subject("j", event.value) for event in EventType]
    async with TestNatsBroker(broker) as test_broker:
        for subject in published:
            await test_broker.publish(b"{}", subject, stream=subjects.EVENTS_STREAM)

    assert taken["read model"] == published
    ends = (EventType.RETRYING, EventType.SUCCEEDED, EventType.FAILED, EventType.CANCELLED)
    assert taken["job status"] == [
        subjects.event_subject("j", event.value) for event in EventType if event in ends
    ]
