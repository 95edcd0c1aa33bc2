"""Deterministic replay: re-feed a job's recorded inputs through `decide` from the initial state and compare
the derived events with the ones stored in VTP_EVENTS.

    python -m services.scheduler.replay JOB_ID     # prints a diff; exit status 1 when they differ
"""

from __future__ import annotations

import asyncio
import difflib
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import ServiceUnavailableError

from contracts import subjects
from contracts.events import JobEvent
from messaging.nats import connect
from services.common.db import make_engine
from services.scheduler import repository
from services.scheduler.core import Job, Policy, decide
from services.scheduler.core.codec import decode
from services.scheduler.settings import SchedulerSettings


@dataclass(frozen=True)
class RecordedInput:
    kind: str
    body: dict[str, Any]
    policy: dict[str, Any]
    outcome: str
    reason: str | None


@dataclass
class Replay:
    events: list[JobEvent] = field(default_factory=list)
    state: Job | None = None
    # Inputs whose recorded outcome differs from the replayed one.
    mismatches: list[str] = field(default_factory=list)
    # Inputs refused before they were decided (unreadable, unstorable), with their reasons.
    refused: list[str] = field(default_factory=list)


def replay(records: Iterable[RecordedInput]) -> Replay:
    """Pure: the events and final state that `decide` derives from the recorded inputs. An input the shell
    refused (it could not be read or stored) never reached `decide`: it is listed, not replayed."""
    result = Replay()
    for index, record in enumerate(records, 1):
        if record.outcome == repository.REFUSED:
            result.refused.append(f"input {index} ({record.kind}): refused: {record.reason}")
            continue
        decision = decide(result.state, decode(record.kind, record.body), Policy(**record.policy))
        outcome = "applied" if decision.applied else "rejected"
        if (outcome, decision.rejected_reason) != (record.outcome, record.reason):
            result.mismatches.append(
                f"input {index} ({record.kind}): recorded {record.outcome} {record.reason or ''}".rstrip()
                + f", replayed {outcome} {decision.rejected_reason or ''}".rstrip()
            )
        result.state = decision.state
        result.events.extend(decision.events)
    return result


def _lines(events: Sequence[JobEvent]) -> list[str]:
    return [json.dumps(event.model_dump(mode="json"), sort_keys=True) for event in events]


def diff(derived: Sequence[JobEvent], stored: Sequence[JobEvent]) -> list[str]:
    """Unified diff, one event per line; empty when replay reproduces the stored history exactly."""
    return list(difflib.unified_diff(_lines(stored), _lines(derived), "stored", "replayed", lineterm=""))


async def stored_events(js: JetStreamContext, job_id: str) -> list[JobEvent]:
    """A job's events as VTP_EVENTS holds them, in stream order (ephemeral consumer, deleted afterwards)."""
    config = ConsumerConfig(
        filter_subject=subjects.job_events_filter(job_id),
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=30,
    )
    subscription = await js.pull_subscribe(
        subjects.job_events_filter(job_id), stream=subjects.EVENTS_STREAM, config=config
    )
    events: list[JobEvent] = []
    unavailable = 0
    try:
        while True:
            try:
                batch = await subscription.fetch(batch=256, timeout=0.5)
            except TimeoutError:
                break
            except ServiceUnavailableError:
                # A consumer created a moment ago may not answer its first pull yet.
                unavailable += 1
                if unavailable > 20:
                    raise
                await asyncio.sleep(0.05)
                continue
            events.extend(JobEvent.model_validate_json(msg.data) for msg in batch)
            if batch[-1].metadata.num_pending == 0:
                break
    finally:
        await subscription.unsubscribe()
    return events


async def load_inputs(settings: SchedulerSettings, job_id: str) -> list[RecordedInput]:
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = await repository.job_inputs(conn, job_id)
    finally:
        await engine.dispose()
    return [RecordedInput(r.kind, r.body, r.policy, r.outcome, r.reason) for r in rows]


async def replay_job(settings: SchedulerSettings, job_id: str) -> tuple[Replay, list[str]]:
    result = replay(await load_inputs(settings, job_id))
    nc = await connect(settings.nats_url, name="vtp-scheduler-replay")
    try:
        stored = await stored_events(nc.jetstream(), job_id)
    finally:
        await nc.close()
    return result, diff(result.events, stored)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m services.scheduler.replay JOB_ID", file=sys.stderr)
        return 2
    result, lines = asyncio.run(replay_job(SchedulerSettings(), args[0]))
    for refused in result.refused:
        print(refused)
    for mismatch in result.mismatches:
        print(f"outcome mismatch: {mismatch}")
    if lines:
        print("\n".join(lines))
    else:
        print(f"{len(result.events)} events: replay matches the stored history")
    return 1 if lines or result.mismatches else 0


if __name__ == "__main__":
    raise SystemExit(main())
