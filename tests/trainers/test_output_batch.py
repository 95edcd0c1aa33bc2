"""Batches, the rate limit and the caps of an attempt's output (trainers/output_batch.py): pure, time
given."""

from __future__ import annotations

from trainers.output_batch import Batcher, OutputLimits


def texts(batch) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(line.stream, line.text) for line in batch]


def test_a_line_after_quiet_goes_within_the_linger_then_batches_wait_their_interval() -> None:
    batcher = Batcher(OutputLimits(linger=0.05, flush_every=1.0, batch_lines=2))
    assert batcher.due(0.0) is None
    batcher.add("stdout", "a", 10.0)
    batcher.add("stderr", "b", 10.01)
    batcher.add("stdout", "c", 10.02)
    assert abs(batcher.due(10.02) - 0.03) < 1e-9  # type: ignore[operator]
    assert texts(batcher.take(10.05)) == [("stdout", "a"), ("stderr", "b")]
    assert abs(batcher.due(10.05) - 1.0) < 1e-9  # type: ignore[operator]
    assert texts(batcher.take(11.05)) == [("stdout", "c")]
    assert batcher.due(11.05) is None


def test_a_batch_stays_within_its_bytes() -> None:
    batcher = Batcher(OutputLimits(batch_bytes=10))
    for text in ("12345", "67890", "x"):
        batcher.add("stdout", text, 0.0)
    assert [len(batcher.take(t)) for t in (1.0, 2.0)] == [2, 1]


def test_the_caps_count_lines_and_bytes_and_the_drop_is_said_at_the_end() -> None:
    batcher = Batcher(OutputLimits(max_lines=100, max_bytes=10))
    for text in ("aaaa", "bbbb", "cccc", "d"):
        batcher.add("stdout", text, 0.0)
    batcher.close(0.0)
    assert texts(batcher.take(0.0)) == [
        ("stdout", "aaaa"),
        ("stdout", "bbbb"),
        ("runner", "output cap reached (100 lines or 10 bytes an attempt): later output is dropped"),
        ("runner", "2 lines of output dropped after the cap"),
    ]
    assert batcher.dropped == 2


def test_lines_the_events_service_did_not_take_are_said_with_the_next_batch() -> None:
    batcher = Batcher()
    batcher.add("stdout", "lost", 0.0)
    batcher.lost(batcher.take(0.1))
    batcher.add("stdout", "kept", 5.0)
    assert texts(batcher.take(5.1)) == [
        ("runner", "1 line of output could not be delivered"),
        ("stdout", "kept"),
    ]
    assert batcher.dropped == 1
