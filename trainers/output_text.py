"""A trainer's output, from the bytes it writes to readable lines: one stream at a time, pure (no I/O; time
comes in with the bytes).

- Lines end at `\\n`. A carriage return (`\\r`) ends a *state* of the line being written, which is how
  tqdm-style progress bars (Ultralytics', timm's, pip's) redraw themselves: only the state the line ends
  with is kept, plus a snapshot of the current state every `progress_every` seconds while a bar runs, so a
  follower sees it move without a line per redraw.
- Terminal escapes (colours, "clear line") and other control characters are removed; bytes that are not
  UTF-8 become U+FFFD. What is left is text Postgres can store (no NUL).
- A JSON log record of the platform's own formatter (`telemetry.logs`, what a trainer logs when its stderr
  is no terminal) is shown as the text formatter would show it, its traceback as lines of their own.
- Known secrets (the job's callback token, its signed URLs) and anything shaped like one (a JWT, a bearer
  token, a URL's signature) are replaced with `[redacted]`, before a long line is cut: a secret is never
  kept in part.
- A line is cut at `max_chars`, saying how much was cut. At most `hold` characters of a line are held while
  it is written; the rest of a line longer than that is only counted.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_LINE_CHARS = 2000
HOLD_CHARS = 64 * 1024  # a log record with a long traceback is held whole, and shown as its lines
PROGRESS_EVERY = 5.0
REDACTED = "[redacted]"

# CSI (colours, erase), OSC (titles, links) and two-character escapes.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]?")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # all but tab
_SEPARATORS = re.compile(r"[\r\n]")
_SECRET_SHAPES = (
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}"), REDACTED),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1" + REDACTED),
    (
        re.compile(
            r"(?i)([?&](?:signature|sig|token|x-amz-signature|x-amz-credential|x-amz-security-token"
            r"|awsaccesskeyid)=)[^&\s\"'<>]+"
        ),
        r"\1" + REDACTED,
    ),
)
# Fields of a JSON log record that say nothing a reader of one job's output needs.
_RECORD_NOISE = frozenset(
    ("time", "level", "service", "logger", "message", "exception", "job_id", "trace_id", "span_id")
)


def clean(text: str) -> str:
    """`text` without terminal escapes and control characters (tabs stay)."""
    if "\x1b" in text:
        text = _ESCAPES.sub("", text)
    return _CONTROLS.sub("", text)


@dataclass(frozen=True)
class Redactor:
    """Replaces the job's own secrets, and anything shaped like a secret, with `[redacted]`."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def for_job(cls, token: str, urls: Iterable[str | None]) -> Redactor:
        """The callback token, and each signed URL's query string (its signature) and the URL whole."""
        found = [token]
        for url in urls:
            if url:
                found.append(url)
                if query := urlsplit(url).query:
                    found.append(query)
        # Longest first: a URL goes whole before its query string is looked for.
        return cls(tuple(sorted({s for s in found if len(s) >= 8}, key=len, reverse=True)))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern, replacement in _SECRET_SHAPES:
            text = pattern.sub(replacement, text)
        return text


def record_lines(text: str) -> list[str] | None:
    """A JSON log record of `telemetry.logs` as the lines its text formatter would write; None for any
    other line."""
    if not text.startswith('{"time": '):
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or not {"time", "level", "logger", "message"} <= record.keys():
        return None
    head = f"{str(record['time'])[11:23]} {str(record['level']).upper():7} {record['logger']}: "
    extras = " ".join(f"{k}={v}" for k, v in record.items() if k not in _RECORD_NOISE)
    lines = f"{head}{record['message']}{'  ' + extras if extras else ''}".splitlines() or [head]
    if isinstance(record.get("exception"), str):
        lines += record["exception"].splitlines()
    return lines


def cut(text: str, max_chars: int, more: int = 0) -> str:
    """`text` within `max_chars`, saying how many characters were cut (`more`: those never held)."""
    over = len(text) - max_chars + more
    if over <= 0:
        return text
    return f"{text[:max_chars]} … [{over} characters cut]"


@dataclass
class Lines:
    """One stream's bytes to finished lines (see the module): `feed` them as they come, `close` at the end.

    `render` turns a finished line into what is shown: redacted, a JSON log record expanded into its lines.
    """

    render: Callable[[str], list[str]]
    mark: str | None = None  # a line ending with it sets `marked`, and is shown without it
    max_chars: int = MAX_LINE_CHARS
    hold: int = HOLD_CHARS
    progress_every: float = PROGRESS_EVERY
    _decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )
    _text: list[str] = field(default_factory=list)  # the part of the line after its last \r
    _held: int = 0
    _more: int = 0  # characters of the line past `hold`, counted only
    _state: str = ""  # the line's last state before a \r (a progress bar's last redraw)
    _shown: str | None = None  # the last snapshot of a state that was shown
    _snapshot_at: float | None = None
    marked: bool = False

    def feed(self, data: bytes, now: float) -> list[str]:
        return self._split(self._decoder.decode(data), now)

    def close(self, now: float) -> list[str]:
        """The rest: the line still being written (or its last state), if any."""
        out = self._split(self._decoder.decode(b"", final=True), now)
        if self._text or self._more or self._state:
            out += self._end_line()
        return out

    def _split(self, text: str, now: float) -> list[str]:
        out: list[str] = []
        start = 0
        for match in _SEPARATORS.finditer(text):
            self._add(text[start : match.start()])
            start = match.end()
            if match.group() == "\n":
                out += self._end_line()
            else:
                out += self._end_state(now)
        self._add(text[start:])
        return out

    def _add(self, part: str) -> None:
        room = self.hold - self._held
        if len(part) > room:
            self._more += len(part) - max(room, 0)
            part = part[: max(room, 0)]
        if part:
            self._text.append(part)
            self._held += len(part)

    def _take(self) -> tuple[str, int]:
        text, more = clean("".join(self._text)), self._more
        self._text, self._held, self._more = [], 0, 0
        return text, more

    def _end_state(self, now: float) -> list[str]:
        text, _ = self._take()
        if not text.strip():
            return []  # a bare \r (or one that only clears the line): the state before it stays
        self._state = text
        if self._snapshot_at is None:
            self._snapshot_at = now  # a bar began: its first snapshot after `progress_every`
        elif now - self._snapshot_at >= self.progress_every:
            self._snapshot_at = now
            self._shown = self._state
            return self._finish(self._state, 0)
        return []

    def _end_line(self) -> list[str]:
        text, more = self._take()
        if self.mark and not more and text.endswith(self.mark):
            self.marked = True
            text = text.removesuffix(self.mark)
            if not text:
                return []  # the mark alone: no line, and the line being redrawn (if any) goes on
        if not text and not more:
            text = self._state  # "50%\r\n", or a bar that ended with a \r
        state_shown, self._state, self._shown, self._snapshot_at = self._shown, "", None, None
        if text and text == state_shown:
            return []  # its last snapshot showed it already
        return self._finish(text, more)

    def _finish(self, text: str, more: int) -> list[str]:
        rendered = self.render(text)
        if more and rendered:
            last = rendered.pop()
            return [cut(line, self.max_chars) for line in rendered] + [cut(last, self.max_chars, more)]
        return [cut(line, self.max_chars) for line in rendered]


def renderer(redact: Callable[[str], str]) -> Callable[[str], list[str]]:
    """What `Lines` shows of a finished line: the lines of a JSON log record, or the line; redacted."""

    def render(text: str) -> list[str]:
        text = redact(text)  # first: a record's JSON escapes nothing a secret holds (URLs, tokens)
        return [redact(line) for line in record_lines(text) or [text]]

    return render
