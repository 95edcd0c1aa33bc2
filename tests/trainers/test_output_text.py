"""A trainer's bytes to readable lines (trainers/output_text.py): pure, so fed by hand, with time given."""

from __future__ import annotations

import json

from trainers.output_text import Lines, Redactor, record_lines, renderer

TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJqb2JfaWQiOiJqIn0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
URL = "http://events:8001/v1/storage/datasets/d/shapes.zip?method=GET&expires=1&signature=0123456789abcdef"


def lines(**options: object) -> Lines:
    return Lines(renderer(Redactor.for_job(TOKEN, [URL, None])), **options)  # type: ignore[arg-type]


def feed_all(split: Lines, chunks: list[tuple[bytes, float]], end: float = 100.0) -> list[str]:
    out: list[str] = []
    for data, now in chunks:
        out += split.feed(data, now)
    return out + split.close(end)


def test_a_progress_bar_is_its_last_state_with_a_snapshot_while_it_runs() -> None:
    bar = [(f"\r\x1b[K  1/3: {percent}% ━━".encode(), percent / 10) for percent in range(0, 101, 10)]
    shown = feed_all(lines(progress_every=4.0), [*bar, (b"\n", 10.0), (b"next\n", 10.0)])
    # A snapshot at 4 s and at 8 s after the bar began, then the state it ended with.
    assert shown == ["  1/3: 40% ━━", "  1/3: 80% ━━", "  1/3: 100% ━━", "next"]


def test_a_bar_ended_by_its_last_snapshot_is_not_shown_twice() -> None:
    shown = feed_all(lines(progress_every=1.0), [(b"\r0%", 0.0), (b"\r100%", 1.0), (b"\r\n", 1.0)])
    assert shown == ["100%"]


def test_crlf_blank_lines_and_a_line_left_open() -> None:
    assert feed_all(lines(), [(b"a\r\n\nb\r", 0.0), (b"\nc", 0.0)]) == ["a", "", "b", "c"]


def test_utf8_split_between_reads_and_bytes_that_are_not_utf8() -> None:
    bar = "━".encode()
    assert feed_all(lines(), [(b"x " + bar[:1], 0.0), (bar[1:] + b" \xff\x00\x07\n", 0.0)]) == ["x ━ \ufffd"]


def test_a_long_line_is_cut_and_one_past_what_is_held_is_counted() -> None:
    assert feed_all(lines(max_chars=10), [(b"y" * 25 + b"\n", 0.0)]) == ["y" * 10 + " … [15 characters cut]"]
    held = lines(max_chars=10, hold=100)
    assert feed_all(held, [(b"z" * 60, 0.0), (b"z" * 90 + b"\n", 0.0)]) == [
        "z" * 10 + " … [140 characters cut]"
    ]


def test_secrets_are_redacted_before_a_cut() -> None:
    shown = feed_all(
        lines(max_chars=60),
        [
            (f"GET {URL} failed\n".encode(), 0.0),
            (f"Authorization: Bearer {TOKEN}\n".encode(), 0.0),
            (b"s3 https://b.s3/x?X-Amz-Credential=AKIA/1&X-Amz-Signature=deadbeefcafe\n", 0.0),
            (b"another eyJabcdefgh.eyJabcdefgh.abcdefghij token\n", 0.0),
        ],
    )
    assert shown == [
        "GET [redacted] failed",
        "Authorization: Bearer [redacted]",
        "s3 https://b.s3/x?X-Amz-Credential=[redacted]&X-Amz-Signatur … [12 characters cut]",
        "another [redacted] token",
    ]


def test_a_json_log_record_reads_as_text_with_its_traceback() -> None:
    record = {
        "time": "2026-12-04T20:37:25.076+00:00",
        "level": "error",
        "service": "vtp-trainer",
        "logger": "trainers.outcome",
        "message": f"the attempt failed, token {TOKEN}",
        "job_id": "j",
        "trace_id": "t",
        "epoch": 3,
        "exception": 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom',
    }
    assert feed_all(lines(), [(json.dumps(record).encode() + b"\n", 0.0)]) == [
        "20:37:25.076 ERROR   trainers.outcome: the attempt failed, token [redacted]  epoch=3",
        "Traceback (most recent call last):",
        '  File "x.py", line 1',
        "ValueError: boom",
    ]
    assert record_lines('{"time": "not a record"}') is None
    assert record_lines("{not json") is None


def test_the_barriers_mark_is_taken_out() -> None:
    split = lines(mark="MARK")
    assert split.feed(b"before\nMARK\n", 0.0) == ["before"]
    assert split.marked
    split.marked = False
    assert split.feed(b"half a lineMARK\n", 0.0) == ["half a line"]
    assert split.marked
