"""A job's metrics history equals its progress events: every epoch once (as the last attempt to report it had
it), every metric as a series, each attempt marked where it began."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from contracts.jobs import EventType, JobState
from tests.api.conftest import IDLE_POOL, Project, Scheduler, eventually


async def test_the_history_is_the_progress_events_with_each_epoch_once(
    project: Project,
    scheduler: Callable[[dict[str, Any]], Scheduler],
    submit: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    job = await submit()
    events = scheduler(job)
    await events.start()  # submitted, queued, running

    async def epoch(number: int, loss: float, **extra: Any) -> None:
        metrics = {"train_loss": loss, "val_accuracy": 1 - loss}
        await events.emit(
            EventType.PROGRESS, JobState.RUNNING, epoch=number, epochs=3, metrics=metrics, **extra
        )

    await epoch(1, 0.9)
    await epoch(2, 0.8)
    # Attempt 1 dies; attempt 2 resumes from epoch 1's checkpoint and trains epoch 2 again.
    await events.emit(EventType.RETRYING, JobState.QUEUED, reason="lost heartbeat", next_attempt=2)
    events.attempt = 2
    await events.emit(EventType.QUEUED, JobState.QUEUED, pool=IDLE_POOL)
    await events.emit(EventType.RUNNING, JobState.RUNNING)
    await epoch(2, 0.7, resumed_from_epoch=1)
    await epoch(3, 0.6)

    history: dict[str, Any] = {}

    async def has_every_epoch() -> bool:
        nonlocal history
        response = await project.client.get(f"/v1/jobs/{job['id']}/metrics")
        assert response.status_code == 200, response.text
        history = response.json()
        return len(history["series"].get("train_loss", [])) == 3

    await eventually(has_every_epoch)
    losses = [(p["epoch"], p["value"], p["attempt"]) for p in history["series"]["train_loss"]]
    assert losses == [(1, 0.9, 1), (2, 0.7, 2), (3, 0.6, 2)]
    assert [p["value"] for p in history["series"]["val_accuracy"]] == [1 - 0.9, 1 - 0.7, 1 - 0.6]
    assert history["epochs"] == 3
    assert history["attempts"] == [
        {"attempt": 1, "first_epoch": 1, "resumed_from_epoch": None},
        {"attempt": 2, "first_epoch": 2, "resumed_from_epoch": 1},
    ]


async def test_a_job_of_another_project_has_no_history_here(
    other_project: Project, submit: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    job = await submit()
    response = await other_project.client.get(f"/v1/jobs/{job['id']}/metrics")
    assert response.status_code == 404
