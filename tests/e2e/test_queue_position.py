"""End-to-end: a waiting job's `queue_position` and `pending_reason` move as real jobs ahead of it train and
finish on the local pool (two runners at a time here), and its SSE stream says why it waits."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from tests.e2e.helpers import Platform, SseEvent, job_request, sse_events, submit

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


def follow(platform: Platform, job_id: str, into: list[SseEvent]) -> threading.Thread:
    def read() -> None:
        with platform.client() as client:
            into.extend(sse_events(client, f"/v1/jobs/{job_id}/events?pending=true", timeout=240))

    thread = threading.Thread(target=read, name=f"sse-{job_id}", daemon=True)
    thread.start()
    return thread


def test_queue_positions_move_as_the_jobs_ahead_train_and_finish(platform: Platform, dataset_id: str) -> None:
    # Of different lengths, so the runners free up one at a time and the last job is next for a while.
    ahead = [submit(platform, job_request(dataset_id, epochs=n, name=f"ahead {n}")) for n in (2, 6)]
    waiting = [submit(platform, job_request(dataset_id, epochs=1, name=f"waiting {n}")) for n in (1, 2)]
    last = waiting[-1]["id"]
    streamed: list[SseEvent] = []
    reader = follow(platform, last, streamed)
    seen: dict[str, list[tuple[str, Any, Any]]] = {job["id"]: [] for job in waiting}
    deadline = time.monotonic() + 240
    with platform.client() as client:
        while time.monotonic() < deadline:
            for job_id, history in seen.items():
                shown = client.get(f"/v1/jobs/{job_id}").json()
                now = (shown["state"], shown["queue_position"], shown["pending_reason"])
                if not history or history[-1] != now:
                    history.append(now)
            if all(history[-1][0] in TERMINAL for history in seen.values()):
                break
            time.sleep(0.1)
        states = [client.get(f"/v1/jobs/{job['id']}").json()["state"] for job in ahead + waiting]
    assert states == ["SUCCEEDED"] * 4, seen

    for job_id, history in seen.items():
        queued = [(position, reason) for state, position, reason in history if state == "QUEUED"]
        assert queued, f"{job_id} was never seen waiting: {history}"
        assert all(isinstance(position, int) and position >= 1 and reason for position, reason in queued)
        assert all(
            (position, reason) == (None, None) for state, position, reason in history if state != "QUEUED"
        )
        positions = [position for position, _ in queued]
        assert positions == sorted(positions, reverse=True), f"a queue only moves forward: {history}"
    positions = [position for state, position, _ in seen[last] if state == "QUEUED"]
    assert max(positions) >= 2, seen[last]
    assert min(positions) == 1, seen[last]
    reasons = [reason for state, _, reason in seen[last] if state == "QUEUED"]
    assert any(re.fullmatch(r"\d+ jobs? ahead of it on pool local \(\d+ running\)", r) for r in reasons), (
        reasons
    )

    reader.join(30)
    assert not reader.is_alive()
    pending = [event for event in streamed if event.event == "job.pending"]
    assert pending, [event.event for event in streamed]
    assert all(event.id == "" and event.data["queue_position"] >= 1 for event in pending)
    stored = [int(event.id) for event in streamed if event.event != "job.pending"]
    assert stored == sorted(set(stored)), "stored events once each, in order"
    assert streamed[-1].event == "job.succeeded"
