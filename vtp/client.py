"""The HTTP client the CLI uses: configuration (environment or `<data-dir>/client.env`), one error type for
every failed request, and server-sent events as an iterator."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx

CLIENT_ENV = "client.env"
DEFAULT_DATA_DIR = Path(".vtp")
TERMINAL_EVENTS = frozenset({"job.succeeded", "job.failed", "job.cancelled"})

Progress = Callable[[int], None]  # called with the number of bytes just transferred


class CliError(Exception):
    """An expected failure the CLI reports as one line and a non-zero exit."""


class ConfigError(CliError):
    pass


class ApiError(CliError):
    """The API answered with an error; our API's body is `{"error": ..., "detail": ...}`."""

    def __init__(self, status: int, error: str, detail: Any = None) -> None:
        self.status, self.error, self.detail = status, error, detail
        super().__init__(str(self))

    def __str__(self) -> str:
        detail = (
            self.detail if isinstance(self.detail, str) else json.dumps(self.detail, separators=(",", ":"))
        )
        return f"{self.error} (HTTP {self.status})" + (f": {detail}" if self.detail not in (None, "") else "")

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "error" in body:
            return cls(response.status_code, str(body["error"]), body.get("detail"))
        if isinstance(body, dict) and "detail" in body:  # a framework-level error (e.g. 404 route, 405)
            return cls(response.status_code, response.reason_phrase or "error", body["detail"])
        text = response.text.strip().splitlines()[0][:200] if response.text.strip() else None
        return cls(response.status_code, response.reason_phrase or "error", text)


@dataclass(frozen=True)
class ClientConfig:
    url: str
    key: str
    source: str


def read_env_file(path: Path) -> dict[str, str]:
    """`NAME=value` lines; blank lines and `#` comments are skipped, surrounding quotes removed."""
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    """Written 0600: it holds an API key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.touch(mode=0o600)
    partial.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    os.replace(partial, path)


def load_config(data_dir: Path, environ: Mapping[str, str] | None = None) -> ClientConfig:
    """`VTP_API_URL` / `VTP_API_KEY` from the environment win; what is missing comes from
    `<data-dir>/client.env`."""
    environ = os.environ if environ is None else environ
    url, key = environ.get("VTP_API_URL"), environ.get("VTP_API_KEY")
    source = "environment"
    path = data_dir / CLIENT_ENV
    if not (url and key) and path.is_file():
        stored = read_env_file(path)
        url, key = url or stored.get("VTP_API_URL"), key or stored.get("VTP_API_KEY")
        source = str(path)
    if not url or not key:
        raise ConfigError(
            f"no API configured: set VTP_API_URL and VTP_API_KEY, or start the platform with `vtp up` "
            f"(which writes {path})"
        )
    return ClientConfig(url=url.rstrip("/"), key=key, source=source)


@dataclass(frozen=True)
class SseEvent:
    id: str
    event: str
    data: dict[str, Any]


def parse_sse(lines: Iterator[str]) -> Iterator[SseEvent]:
    """Server-sent events from a stream of lines (comments and keep-alives skipped)."""
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in fields:
                yield SseEvent(
                    fields.get("id", ""), fields.get("event", "message"), json.loads(fields["data"])
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[name] = f"{fields[name]}\n{value}" if name == "data" and name in fields else value


def _items(body: Any) -> list[dict[str, Any]]:
    """A page `{"items": [...]}` or a bare list."""
    return list(body.get("items", []) if isinstance(body, dict) else body)


def _read_chunks(file: IO[bytes], progress: Progress | None, size: int = 1024 * 1024) -> Iterator[bytes]:
    """The file in chunks, each reported to `progress` (an upload progress bar)."""
    while chunk := file.read(size):
        if progress:
            progress(len(chunk))
        yield chunk


def _put_file(
    url: str, path: Path, size: int, progress: Progress | None, connect_tries: int = 10
) -> httpx.Response:
    """PUT the file to a signed storage URL, with a client of its own: the API key never goes there. A refused
    connection (storage starting up; nothing was sent) is tried again for a few seconds."""
    with httpx.Client(timeout=httpx.Timeout(60, write=None)) as storage:
        for attempt in range(1, connect_tries + 1):
            try:
                with path.open("rb") as file:
                    return storage.put(
                        url,
                        content=_read_chunks(file, progress),
                        headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
                    )
            except httpx.ConnectError as exc:
                if attempt == connect_tries:
                    raise CliError(f"upload failed: {exc}") from exc
                time.sleep(1.0)
            except httpx.TransportError as exc:
                raise CliError(f"upload failed: {exc}") from exc
    raise AssertionError("unreachable")


class ApiClient:
    def __init__(self, config: ClientConfig, timeout: float = 60.0) -> None:
        self.config = config
        self._http = httpx.Client(
            base_url=config.url,
            headers={"Authorization": f"Bearer {config.key}", "User-Agent": "vtp-cli"},
            timeout=timeout,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise CliError(f"cannot reach the API at {self.config.url}: {exc}") from exc
        if response.is_error:
            raise ApiError.from_response(response)
        return response

    def healthy(self) -> bool:
        try:
            return self._http.get("/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    # datasets

    def upload_dataset(
        self, archive: Path, name: str, fmt: str, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Through a signed upload URL: the archive goes straight to storage, whatever its size, never through
        the API process. The new version (or the existing one of this very archive: `created` false)."""
        ticket = self._request("POST", "/v1/datasets/uploads").json()
        size = archive.stat().st_size
        if size > ticket["max_bytes"]:
            raise CliError(f"{archive} is {size} bytes; the platform takes datasets of {ticket['max_bytes']}")
        response = _put_file(ticket["url"], archive, size, progress)
        if response.is_error:
            raise ApiError.from_response(response)
        body = {"name": name, "format": fmt, "upload_id": ticket["upload_id"], "filename": archive.name}
        return dict(self._request("POST", "/v1/datasets", json=body).json())

    def get_dataset(self, reference: str) -> dict[str, Any]:
        """By id, `name:version`, or `name` (its newest version)."""
        return dict(self._request("GET", f"/v1/datasets/{quote(reference, safe=':')}").json())

    def list_datasets(self, name: str | None = None) -> list[dict[str, Any]]:
        params = {"name": name} if name else {}
        return _items(self._request("GET", "/v1/datasets", params=params).json())

    # pools

    def list_pools(self) -> list[dict[str, Any]]:
        return _items(self._request("GET", "/v1/pools").json())

    # jobs

    def submit_job(self, body: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return dict(self._request("POST", "/v1/jobs", json=body, headers=headers).json())

    def get_job(self, job_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/v1/jobs/{job_id}").json())

    def get_job_metrics(self, job_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/v1/jobs/{job_id}/metrics").json())

    def job_logs(
        self, job_id: str, tail: int | None = None, follow: bool = False, stream: str | None = None
    ) -> Iterator[str]:
        """A job's output, line by line; `follow`: until the job ends."""
        params: dict[str, Any] = {"follow": "true"} if follow else {}
        if tail is not None:
            params["tail"] = tail
        if stream:
            params["stream"] = stream
        timeout = httpx.Timeout(60, read=None if follow else 60)
        try:
            with self._http.stream(
                "GET", f"/v1/jobs/{job_id}/logs", params=params, timeout=timeout
            ) as response:
                if response.is_error:
                    response.read()
                    raise ApiError.from_response(response)
                yield from response.iter_lines()
        except httpx.TransportError as exc:
            raise CliError(f"lost the logs of job {job_id}: {exc}") from exc

    def list_jobs(
        self, state: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        if cursor:
            params["cursor"] = cursor
        return dict(self._request("GET", "/v1/jobs", params=params).json())

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        response = self._request("POST", f"/v1/jobs/{job_id}/cancel")
        return dict(response.json()) if response.content else {}

    def list_artifacts(self, job_id: str) -> list[dict[str, Any]]:
        return _items(self._request("GET", f"/v1/jobs/{job_id}/artifacts").json())

    def download_artifact(self, job_id: str, name: str, dest: Path, progress: Progress | None = None) -> Path:
        """Stream to `dest` through a temporary file, so a failed download leaves nothing half-written."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(f".{dest.name}.partial")
        try:
            with self._http.stream("GET", f"/v1/jobs/{job_id}/artifacts/{name}") as response:
                if response.is_error:
                    response.read()
                    raise ApiError.from_response(response)
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                        if progress:
                            progress(len(chunk))
            partial.replace(dest)
        except httpx.TransportError as exc:
            raise CliError(f"download failed: {exc}") from exc
        finally:
            partial.unlink(missing_ok=True)
        return dest

    def events(
        self, job_id: str, last_event_id: str | None = None, reconnects: int = 5, pending: bool = False
    ) -> Iterator[SseEvent]:
        """A job's events until its terminal event; a dropped connection resumes after the last event seen.
        `pending`: also `job.pending` (why it waits; no id) while it waits."""
        failures = 0
        path = f"/v1/jobs/{job_id}/events" + ("?pending=true" if pending else "")
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            try:
                with self._http.stream(
                    "GET", path, headers=headers, timeout=httpx.Timeout(60, read=None)
                ) as response:
                    if response.is_error:
                        response.read()
                        raise ApiError.from_response(response)
                    for event in parse_sse(response.iter_lines()):
                        failures = 0
                        last_event_id = event.id or last_event_id
                        yield event
                        if event.event in TERMINAL_EVENTS:
                            return
                problem = "the server closed the stream before the job ended"
            except httpx.TransportError as exc:
                problem = str(exc)
            failures += 1
            if failures > reconnects:
                raise CliError(f"lost the event stream of job {job_id}: {problem}")
            time.sleep(min(failures, 5))
