"""A small synchronous client for the callback API (`VTP_CALLBACK_URL`), used by trainers and the runner.

Transient failures (connection errors, timeouts, 429, 5xx) are retried briefly; anything else raises
`CallbackError` at once. The token goes only to the callback URL, never to a signed storage URL. Every
request carries the trace context (`traceparent`): the current span's, else the one current when the client
was made (the trainer's span), so a callback from any thread joins the job's trace.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from opentelemetry import context as otel_context
from opentelemetry import trace

from contracts.callbacks import ArtifactUploadAnswer, HeartbeatAnswer
from contracts.output import OutputLine
from telemetry import tracing
from trainers.env import TrainerEnv

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)


class CallbackError(Exception):
    """A callback that failed for good (refused token, rejected body, or retries exhausted)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def _transient(response: httpx.Response) -> bool:
    return response.status_code == 429 or response.status_code >= 500


def _read_chunks(path: Path, seen: Callable[[bytes], object]) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            seen(chunk)
            yield chunk


class CallbackClient:
    def __init__(
        self,
        callback_url: str,
        token: str,
        timeout: float = 30.0,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        self._token = token
        self._api = httpx.Client(base_url=callback_url.rstrip("/") + "/", timeout=timeout)
        self._storage = httpx.Client(timeout=timeout)
        self._retry_delays = retry_delays
        self._context = otel_context.get_current()

    @classmethod
    def from_env(cls, env: TrainerEnv) -> CallbackClient:
        return cls(env.callback_url, env.callback_token)

    def trace_headers(self) -> dict[str, str]:
        """`traceparent` of the current span, else of the span current when this client was made."""
        current = trace.get_current_span().get_span_context().is_valid
        return tracing.inject({}, None if current else self._context)

    def close(self) -> None:
        self._api.close()
        self._storage.close()

    def __enter__(self) -> CallbackClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def heartbeat(self) -> HeartbeatAnswer:
        """Report liveness; the answer says whether to stop, and may carry a new token for every later
        callback (the events service renews one past half its life)."""
        answer = HeartbeatAnswer.model_validate(self._post("heartbeat", {}).json())
        if answer.callback_token is not None:
            self.use_token(answer.callback_token)
            log.info("callback token renewed (expires %s)", answer.expires_at)
        return answer

    def use_token(self, token: str) -> None:
        """Send `token` from now on. One assignment: a callback on another thread sends one or the other."""
        self._token = token

    def progress(
        self,
        epoch: int,
        epochs: int,
        metrics: dict[str, float],
        resumed_from_epoch: int | None = None,
        epoch_seconds: float | None = None,
    ) -> None:
        body: dict[str, Any] = {"epoch": epoch, "epochs": epochs, "metrics": metrics}
        if resumed_from_epoch is not None:
            body["resumed_from_epoch"] = resumed_from_epoch
        if epoch_seconds is not None:
            body["epoch_seconds"] = round(epoch_seconds, 3)
        self._post("progress", body)

    def log(self, message: str, level: str = "info") -> None:
        self._post("log", {"level": level, "message": message[:10_000]})

    def log_output(self, lines: Sequence[OutputLine], message: str, batch_id: str) -> None:
        """A batch of the trainer's captured output (the runner's: trainers/output.py)."""
        body = {"message": message, "lines": [line.model_dump() for line in lines], "batch_id": batch_id}
        self._post("log", body)

    def done(
        self,
        status: str,
        reason: str | None = None,
        metrics: dict[str, Any] | None = None,
        retryable: bool = True,
    ) -> None:
        """The attempt's last word; `retryable=False`: a failure another attempt would repeat."""
        body: dict[str, Any] = {"status": status, "metrics": metrics or {}}
        if reason is not None:
            body["reason"] = reason[:10_000]
        if not retryable:
            body["retryable"] = False
        self._post("done", body)

    def upload_artifact(self, path: Path, name: str) -> None:
        """Ask for a signed upload URL, PUT the file there (streamed), then report it with size and sha256."""
        with tracing.span(f"upload {name}", attributes={"vtp.artifact": name}):
            self._upload_artifact(path, name)

    def _upload_artifact(self, path: Path, name: str) -> None:
        size = path.stat().st_size
        answer = ArtifactUploadAnswer.model_validate(self._post("artifacts", {"name": name}).json())
        # Hashed as it is sent: one read of the file, not one to hash it and another to send it.
        sha256 = hashlib.sha256()

        def put() -> httpx.Response:
            nonlocal sha256
            sha256 = hashlib.sha256()  # afresh for every try: a retry sends the file again
            return self._storage.put(
                answer.upload_url,
                content=_read_chunks(path, sha256.update),
                headers={
                    "Content-Length": str(size),
                    "Content-Type": "application/octet-stream",
                    **self.trace_headers(),
                },
            )

        self._with_retries(f"upload of {name}", put)
        self._post("artifacts/complete", {"name": name, "size": size, "sha256": sha256.hexdigest()})

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        headers = {**self.trace_headers(), "Authorization": f"Bearer {self._token}"}
        return self._with_retries(
            f"callback {path}", lambda: self._api.post(path, json=body, headers=headers)
        )

    def _with_retries(self, what: str, send: Callable[[], httpx.Response]) -> httpx.Response:
        for attempt, delay in enumerate((*self._retry_delays, None)):
            try:
                response = send()
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return response
                if not _transient(response):
                    raise CallbackError(
                        f"{what} refused with {response.status_code}: {response.text[:500]}",
                        response.status_code,
                    )
                problem = f"status {response.status_code}"
            if delay is None:
                raise CallbackError(f"{what} failed after {attempt + 1} tries: {problem}")
            log.warning("%s failed (%s), retrying in %.1fs", what, problem, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")
