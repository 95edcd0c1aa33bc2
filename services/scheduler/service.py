"""Applies inputs in one transaction per batch: lock the jobs, decide, persist with the outbox, commit, send.

Exactly-once effect: the events and dispatches a batch derives are written to the outbox in the batch's
transaction and sent only after it committed (services/scheduler/outbox.py), and the caller acks the inputs
after that. A crash anywhere re-runs the same decisions on redelivery, or finds the input recorded and
skips it; a transaction that fails sends nothing. An input that can never be stored (the database refuses
its data) is isolated from its batch and recorded as refused, so it neither blocks the job's other inputs
nor comes again forever.

Inputs are applied in the order given; several inputs for one job in a batch see each other's state, exactly
as if they had come one transaction each. Batching is what keeps the per-input cost low, and so does the
transaction's shape: BEGIN, two statements (lock and read; write every row) and COMMIT, the rows an earlier
send delivered deleted by the next transaction's first statement (docs/design.md, "Exactly-once").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from opentelemetry.context import Context
from opentelemetry.trace import Span
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.commands import SubmitJob
from services.scheduler import observed, repository, traced
from services.scheduler.core import Decision, Input, Job, Policy, Tick, decide
from services.scheduler.core.codec import encode, input_kind
from services.scheduler.errors import RetryLater
from services.scheduler.outbox import Relay
from services.scheduler.publisher import Publisher
from services.scheduler.storable import storable

log = logging.getLogger(__name__)

# A report or cancel can overtake the commit of its job's submit (dispatch is published before the commit), so
# "unknown job" is only believed after a few deliveries.
UNKNOWN_JOB_DELIVERIES = 3
ALREADY_APPLIED = "input already recorded (redelivery)"
# Errors of the data itself, not of the database: data exceptions (SQLSTATE class 22: a NUL in text, a
# string too long, JSON that is not) and integrity violations (23). The same input fails the same way again.
UNSTORABLE_SQLSTATE_CLASSES = ("22", "23")


@dataclass(frozen=True)
class Delivery:
    """One input as it arrived: how often it was delivered, and the message it came in (none for ticks)."""

    command: Input
    deliveries: int = 1
    source: str | None = None
    # The trace context the message carried (read only when tracing is on: services/scheduler/traced.py).
    context: Context | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of one delivery: decided (applied, rejected or already applied), or to be retried later."""

    decision: Decision | None = None
    retry_in: float | None = None


@dataclass
class Plan:
    outcomes: list[Outcome] = field(default_factory=list)
    # Inputs decided (applied or rejected: both are recorded), in order.
    applied: list[tuple[Delivery, Decision]] = field(default_factory=list)
    states: dict[str, Job | None] = field(default_factory=dict)


def plan_batch(
    batch: Sequence[Delivery], existing: Mapping[str, Job], seen: set[tuple[str, str]], policy: Policy
) -> Plan:
    """Pure: decide a batch in order against the locked jobs. A redelivered input already recorded is
    skipped; an input for a job not known yet is deferred (and every later input for that job with it)."""
    plan = Plan(states=dict(existing))
    deferred: set[str] = set()
    for delivery in batch:
        job_id = delivery.command.job_id
        before = plan.states.get(job_id)
        if job_id in deferred:
            plan.outcomes.append(Outcome(retry_in=0.5))
            continue
        if delivery.source is not None and (job_id, delivery.source) in seen:
            plan.outcomes.append(Outcome(decision=Decision(state=before, rejected_reason=ALREADY_APPLIED)))
            continue
        overtaken = before is None and not isinstance(delivery.command, SubmitJob | Tick)
        if overtaken and delivery.deliveries < UNKNOWN_JOB_DELIVERIES:
            deferred.add(job_id)
            plan.outcomes.append(Outcome(retry_in=0.5 * delivery.deliveries))
            continue
        decision = decide(before, delivery.command, policy)
        plan.states[job_id] = decision.state
        plan.applied.append((delivery, decision))
        plan.outcomes.append(Outcome(decision=decision))
    return plan


def _trace_id(delivery: Delivery, job: Job | None) -> str | None:
    return job.trace_id if job is not None else getattr(delivery.command, "trace_id", None)


class SchedulerService:
    def __init__(self, engine: AsyncEngine, publisher: Publisher, policy: Policy) -> None:
        self._engine = engine
        self._publisher = publisher
        self.relay = Relay(engine, publisher)
        self.policy = policy

    async def apply(self, command: Input, deliveries: int = 1, source: str | None = None) -> Decision:
        """Apply one input (raises `RetryLater` when it must come again)."""
        [outcome] = await self.apply_batch([Delivery(command, deliveries, source)])
        if outcome.decision is None:
            raise RetryLater("job not known yet", delay=outcome.retry_in or 1.0)
        return outcome.decision

    async def apply_batch(self, batch: Sequence[Delivery]) -> list[Outcome]:
        """Apply inputs in order, in one transaction, then send what they derived. Raises on a transient
        failure: nothing is committed or sent then, and the whole batch must come again. When the database
        refuses the batch's data, each input is applied on its own, and the one it refuses is recorded as
        refused."""
        try:
            return await self._apply_together(batch)
        except StatementError as exc:
            if not unstorable(exc):
                raise
            if len(batch) == 1:
                return [await self._refuse(batch[0], exc)]
        outcomes: list[Outcome] = []
        for delivery in batch:
            outcomes.extend(await self.apply_batch([delivery]))
        return outcomes

    async def _apply_together(self, batch: Sequence[Delivery]) -> list[Outcome]:
        job_ids = list(dict.fromkeys(d.command.job_id for d in batch))
        sources = [d.source for d in batch if d.source is not None]
        sent = self.relay.sent
        # Rows whose PubAcks came since: deleted by this transaction, in its first statement.
        deleting = sent.take()
        spans: list[Span | None] = []
        try:
            async with self._engine.begin() as conn:
                locked = await repository.lock_jobs(conn, job_ids, sources, deleting)
                owed = [outbox_id for outbox_id in locked.outbox_ids if outbox_id not in sent]
                messages = await repository.owed_messages(conn, owed)
                plan = plan_batch(batch, locked.jobs, locked.recorded, self.policy)
                spans = traced.start_input_spans(plan.applied)
                rendered = await self._publisher.render(
                    [decision for _, decision in plan.applied], traced.contexts_of(spans)
                )
                decided = [(d.command, d.source, decision) for d, decision in plan.applied]
                messages.extend(
                    await repository.write_batch(
                        conn, locked.jobs, plan.states, decided, rendered, self.policy
                    )
                )
        except BaseException as exc:
            sent.kept(deleting)
            traced.end_input_spans(spans, exc)
            raise
        sent.deleted(deleting)
        await self.relay.deliver(messages)
        traced.end_input_spans(spans)
        self._count(batch, plan, locked.jobs)
        for delivery, decision in plan.applied:
            self._log(delivery, decision)
        for delivery, outcome in zip(batch, plan.outcomes, strict=True):
            if outcome.decision is not None and outcome.decision.rejected_reason == ALREADY_APPLIED:
                trace_id = _trace_id(delivery, outcome.decision.state)
                log.info(
                    "redelivered input skipped",
                    extra={"job_id": delivery.command.job_id, "trace_id": trace_id},
                )
        return plan.outcomes

    @staticmethod
    def _count(batch: Sequence[Delivery], plan: Plan, before: Mapping[str, Job]) -> None:
        for delivery, outcome in zip(batch, plan.outcomes, strict=True):
            decision = outcome.decision
            if decision is None:
                outcome_name = "deferred"
            elif decision.rejected_reason == ALREADY_APPLIED:
                outcome_name = "redelivered"
            else:
                outcome_name = "applied" if decision.applied else "rejected"
            observed.count_input(input_kind(delivery.command), outcome_name)
        observed.record_decisions([(d.command, decision) for d, decision in plan.applied], before)

    async def _refuse(self, delivery: Delivery, exc: StatementError) -> Outcome:
        """Record an input the database cannot store as refused (its body made storable), nothing else."""
        reason = f"input cannot be stored: {_first_line(exc)}"
        kind, body = encode(delivery.command)
        await self.refuse(delivery.command.job_id, delivery.source, kind, body, reason)
        return Outcome(decision=Decision(state=None, rejected_reason=reason))

    async def refuse(
        self, job_id: str, source: str | None, kind: str, body: dict[str, object], reason: str
    ) -> None:
        """Record a refused input: one that cannot be read or stored. It changes no state, derives no
        event, and shows in the job's replay."""
        async with self._engine.begin() as conn:
            await repository.record_refused(
                conn, storable(job_id), source, kind, storable(body), storable(reason), self.policy
            )
        observed.count_input(kind, "refused")
        log.error("input refused: %s", storable(reason), extra={"job_id": storable(job_id), "input": kind})

    def _log(self, delivery: Delivery, decision: Decision) -> None:
        extra = {"job_id": delivery.command.job_id, "trace_id": _trace_id(delivery, decision.state)}
        if decision.applied:
            log.debug("input applied", extra={**extra, "events": [e.type.value for e in decision.events]})
        else:
            reason = decision.rejected_reason
            log.info("input rejected: %s", reason, extra={**extra, "input": type(delivery.command).__name__})


def unstorable(exc: StatementError) -> bool:
    """Whether the database refused the data itself (the same input would fail again), as opposed to
    failing (a lost connection, a timeout, a deadlock: worth a retry)."""
    if not isinstance(exc, DBAPIError):
        # Raised before the statement reached the server: a value the driver cannot encode.
        return isinstance(exc.orig, UnicodeError | ValueError | TypeError)
    cause: BaseException | None = exc.orig
    while cause is not None:
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str):
            return sqlstate[:2] in UNSTORABLE_SQLSTATE_CLASSES
        if isinstance(cause, UnicodeError):
            return True
        cause = cause.__cause__
    return False


def _first_line(exc: StatementError) -> str:
    text = str(exc.orig).strip()
    return text.splitlines()[0][:300] if text else type(exc.orig).__name__
