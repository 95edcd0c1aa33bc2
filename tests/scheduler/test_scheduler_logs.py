"""A log report becomes a `job.log` event: a line of the trainer's own as before (level, message), a batch
of its captured output with its lines, each with its stream."""

from __future__ import annotations

from scheduler_factories import POLICY, at, heartbeat, submit

from contracts.output import OutputLine
from contracts.reports import LogReport
from services.scheduler.core import decide


def running_job():  # type: ignore[no-untyped-def]
    queued = decide(None, submit("j1"), POLICY).state
    return decide(queued, heartbeat("j1", time=1), POLICY).state


def test_a_batch_of_output_is_one_event_with_its_lines() -> None:
    lines = (
        OutputLine(stream="stdout", text="epoch 1/2"),
        OutputLine(stream="runner", text="3 lines dropped"),
    )
    report = LogReport(job_id="j1", attempt=1, time=at(2), message="trainer output: 2 lines", lines=lines)
    [event] = decide(running_job(), report, POLICY).events
    assert event.type.value == "job.log"
    assert event.payload == {
        "level": "info",
        "message": "trainer output: 2 lines",
        "lines": [{"stream": "stdout", "text": "epoch 1/2"}, {"stream": "runner", "text": "3 lines dropped"}],
    }


def test_a_line_of_the_trainers_own_has_the_payload_it_always_had() -> None:
    report = LogReport(job_id="j1", attempt=1, time=at(2), level="warning", message="hi")
    [event] = decide(running_job(), report, POLICY).events
    assert event.payload == {"level": "warning", "message": "hi"}
    assert "lines" not in report.model_dump(mode="json")  # nor in the report's own JSON
