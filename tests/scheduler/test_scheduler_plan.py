"""Batch planning (pure): order per job, redeliveries, inputs that overtake their job's submit."""

from __future__ import annotations

from scheduler_factories import POLICY, cancel, heartbeat, progress, submit

from services.scheduler.core import decide
from services.scheduler.service import ALREADY_APPLIED, Delivery, plan_batch


def test_inputs_for_one_job_see_each_others_state() -> None:
    command = submit("j1")
    plan = plan_batch(
        [Delivery(command), Delivery(heartbeat("j1")), Delivery(cancel("j1", time=2))], {}, set(), POLICY
    )
    assert [o.retry_in for o in plan.outcomes] == [None, None, None]
    assert [[e.version for e in d.events] for _, d in plan.applied] == [[1, 2], [3], [4]]
    assert plan.states["j1"] is not None
    assert plan.states["j1"].state.value == "CANCELLED"


def test_input_for_an_unknown_job_is_deferred_with_everything_after_it_for_that_job() -> None:
    batch = [
        Delivery(heartbeat("j2"), deliveries=1),
        Delivery(submit("j3")),
        Delivery(progress("j2"), deliveries=1),
    ]
    plan = plan_batch(batch, {}, set(), POLICY)
    assert [o.retry_in for o in plan.outcomes] == [0.5, None, 0.5]
    assert [d.command.job_id for d, _ in plan.applied] == ["j3"]


def test_unknown_job_is_believed_after_a_few_deliveries() -> None:
    plan = plan_batch([Delivery(heartbeat("j2"), deliveries=3)], {}, set(), POLICY)
    [outcome] = plan.outcomes
    assert outcome.decision is not None
    assert outcome.decision.rejected_reason == "unknown job"
    assert len(plan.applied) == 1  # recorded as a rejected input


def test_redelivery_of_a_recorded_input_is_skipped_and_not_recorded() -> None:
    job = decide(None, submit("j1"), POLICY).state
    assert job is not None
    plan = plan_batch([Delivery(heartbeat("j1"), source="R:7")], {"j1": job}, {("j1", "R:7")}, POLICY)
    [outcome] = plan.outcomes
    assert outcome.decision is not None
    assert outcome.decision.rejected_reason == ALREADY_APPLIED
    assert plan.applied == []
    assert plan.states == {"j1": job}
