"""Decisions of the events service: turn verified callbacks into reports, answer heartbeats, hand out and
check artifact uploads, guard the local-storage endpoints. No FastAPI here: transport lives in `routes/`.

Attempts are fenced: a token of an attempt older than the job's current one (`events_job_status`, from
`job.retrying`) is refused for everything but a heartbeat, which tells it to stop. Its uploads cannot reach
the job's artifacts either: an upload URL is for the attempt's own place (`staging_key`), and only an
`artifacts/complete` that passes the fence moves the file to the job's artifact key, which the api serves
and a retry resumes from. A URL signed before the retry and used after it writes where nothing reads.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import nats.errors
from nats.js import JetStreamContext
from opentelemetry.context import Context
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import subjects
from contracts.callbacks import (
    ArtifactCompleteCallback,
    ArtifactUploadAnswer,
    ArtifactUploadRequest,
    DoneCallback,
    HeartbeatAnswer,
    LogCallback,
    ProgressCallback,
)
from contracts.dispatch import run_id
from contracts.jobs import JobState
from contracts.reports import (
    ArtifactReport,
    DoneReport,
    HeartbeatReport,
    LogReport,
    ProgressReport,
    Report,
)
from services.common import storage, tokens
from services.common.tokens import CallbackClaims
from services.events import errors, repository
from services.events.renewal import TokenRenewer
from services.events.repository import JobStatusRow
from telemetry import tracing

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 5.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def verify_token(verifier: tokens.TokenVerifier, authorization: str | None) -> CallbackClaims:
    if not authorization:
        raise errors.Unauthorized("missing Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.Unauthorized("expected Authorization: Bearer <callback token>")
    try:
        return verifier.verify(token.strip())
    except tokens.TokenRefused as exc:
        # The message never contains the token itself.
        raise errors.Unauthorized(str(exc)) from None


def staging_key(job_id: str, attempt: int, name: str) -> str:
    """Where an attempt's upload of artifact `name` lands until its `artifacts/complete`."""
    try:
        return storage.validate_key(f"jobs/{job_id}/attempts/{attempt}/{name}")
    except storage.InvalidKey as exc:
        raise errors.InvalidKey(str(exc)) from None


def superseded(status: JobStatusRow | None, attempt: int) -> bool:
    """Whether the job has moved on to a newer attempt. An unknown job, or a status still at an older
    attempt, is a status lagging behind the dispatch: the token's attempt is taken as current."""
    return status is not None and status.attempt > attempt


def should_stop(status: JobStatusRow | None, attempt: int) -> HeartbeatAnswer:
    """Stop when the job is terminal or has moved on to a newer attempt. An unknown job, or a read model
    still at an older attempt, is a read model lagging behind the dispatch: keep going."""
    if status is None:
        return HeartbeatAnswer(stop=False)
    if JobState(status.state).terminal:
        return HeartbeatAnswer(stop=True, reason=f"job is {status.state}")
    if superseded(status, attempt):
        return HeartbeatAnswer(
            stop=True, reason=f"attempt {attempt} is superseded by attempt {status.attempt}"
        )
    return HeartbeatAnswer(stop=False)


class CallbackService:
    def __init__(
        self,
        js: JetStreamContext,
        status_reader: AsyncEngine,
        object_storage: storage.Storage,
        artifact_url_ttl: int,
        clock: Callable[[], datetime] = utcnow,
        renewer: TokenRenewer | None = None,
    ) -> None:
        """`renewer`: renews tokens past half their life in heartbeat answers (none: they live as minted)."""
        self._js = js
        self._renewer = renewer
        self._status_reader = status_reader
        self._storage = object_storage
        self._artifact_url_ttl = artifact_url_ttl
        self._clock = clock

    async def heartbeat(self, claims: CallbackClaims, trace: Context) -> HeartbeatAnswer:
        now = self._clock()
        await self._publish(HeartbeatReport(**self._base(claims, now, trace)), trace)
        answer = await self._stop_answer(claims)
        if answer.stop or self._renewer is None or not claims.past_half_life(now.timestamp()):
            return answer
        return await self._renewer.renewed(claims, answer)

    async def _stop_answer(self, claims: CallbackClaims) -> HeartbeatAnswer:
        try:
            async with self._status_reader.connect() as conn:
                status = await repository.get_job_status(conn, claims.job_id)
        except (SQLAlchemyError, OSError) as exc:
            # Liveness is recorded either way; a stop is only delayed to a later heartbeat.
            log.warning("job status unavailable, answering without it: %s", exc)
            return HeartbeatAnswer(stop=False)
        return should_stop(status, claims.attempt)

    async def _fence(self, claims: CallbackClaims, *, strict: bool) -> None:
        """Refuse a superseded attempt. Without its status (no database), a report goes on (`strict`
        False: the scheduler refuses reports of an attempt that is not current, too); an upload does not,
        as nothing after this service stops it from replacing the current attempt's artifacts."""
        try:
            async with self._status_reader.connect() as conn:
                status = await repository.get_job_status(conn, claims.job_id)
        except (SQLAlchemyError, OSError) as exc:
            if strict:
                raise errors.Unavailable("the job's status is unavailable; retry") from exc
            log.warning("job status unavailable, passing a report on unfenced: %s", exc)
            return
        if superseded(status, claims.attempt):
            assert status is not None
            raise errors.AttemptSuperseded(
                f"attempt {claims.attempt} of job {claims.job_id} is superseded by attempt {status.attempt}",
                {"job_id": claims.job_id, "attempt": claims.attempt, "current_attempt": status.attempt},
            )

    async def progress(self, claims: CallbackClaims, body: ProgressCallback, trace: Context) -> None:
        await self._fence(claims, strict=False)
        report = ProgressReport(
            **self._base(claims, self._clock(), trace),
            epoch=body.epoch,
            epochs=body.epochs,
            metrics=body.metrics,
            resumed_from_epoch=body.resumed_from_epoch,
            epoch_seconds=body.epoch_seconds,
        )
        await self._publish(report, trace)

    async def log(self, claims: CallbackClaims, body: LogCallback, trace: Context) -> None:
        await self._fence(claims, strict=False)
        report = LogReport(
            **self._base(claims, self._clock(), trace),
            level=body.level,
            message=body.message,
            lines=body.lines,
        )
        # A batch of output is recorded once, however often its callback is retried.
        msg_id = f"{claims.job_id}:{claims.attempt}:log:{body.batch_id}" if body.batch_id else None
        await self._publish(report, trace, msg_id=msg_id)

    async def request_upload(
        self, claims: CallbackClaims, body: ArtifactUploadRequest
    ) -> ArtifactUploadAnswer:
        key = staging_key(claims.job_id, claims.attempt, body.name)
        await self._fence(claims, strict=True)
        expires_at = self._clock() + timedelta(seconds=self._artifact_url_ttl)
        url = self._storage.presign(key, "PUT", self._artifact_url_ttl)
        return ArtifactUploadAnswer(upload_url=url, expires_at=expires_at.isoformat())

    async def complete_artifact(
        self, claims: CallbackClaims, body: ArtifactCompleteCallback, trace: Context
    ) -> None:
        time = self._clock()
        staged = staging_key(claims.job_id, claims.attempt, body.name)
        key = self._artifact_key(claims, body.name)
        await self._fence(claims, strict=True)
        try:
            self._check_size(await self._storage.stat(staged), body)
            await self._storage.move(staged, key)
        except storage.ObjectNotFound:
            await self._check_moved_before(key, body)
        report = ArtifactReport(
            **self._base(claims, time, trace),
            name=body.name,
            size=body.size,
            sha256=body.sha256,
            storage_key=key,
        )
        await self._publish(report, trace)

    async def _check_moved_before(self, key: str, body: ArtifactCompleteCallback) -> None:
        """Nothing staged: a retried `complete` whose first try moved the upload but could not report it
        finds the artifact in place, of its size; anything else never uploaded it."""
        try:
            info = await self._storage.stat(key)
        except storage.ObjectNotFound:
            info = None
        if info is None or info.size != body.size:
            raise errors.ArtifactMismatch(f"artifact {body.name!r} was not uploaded")

    @staticmethod
    def _check_size(info: storage.ObjectInfo, body: ArtifactCompleteCallback) -> None:
        if info.size != body.size:
            raise errors.ArtifactMismatch(
                f"artifact {body.name!r} has {info.size} bytes in storage, the callback says {body.size}"
            )

    async def done(self, claims: CallbackClaims, body: DoneCallback, trace: Context) -> None:
        await self._fence(claims, strict=False)
        report = DoneReport(
            **self._base(claims, self._clock(), trace),
            status=body.status,
            reason=body.reason,
            metrics=body.metrics,
            retryable=body.retryable,
        )
        # One done per attempt: a retried callback, or the runner reporting after its trainer did, is dropped
        # by JetStream's duplicate window.
        await self._publish(report, trace, msg_id=f"{run_id(claims.job_id, claims.attempt, claims.run)}:done")

    @staticmethod
    def _base(claims: CallbackClaims, time: datetime, trace: Context) -> dict[str, object]:
        return {
            "job_id": claims.job_id,
            "attempt": claims.attempt,
            "time": time,
            "trace_id": tracing.trace_id_of(trace),
            "run": claims.run or None,
        }

    @staticmethod
    def _artifact_key(claims: CallbackClaims, name: str) -> str:
        try:
            return storage.artifact_key(claims.job_id, name)
        except storage.InvalidKey as exc:
            raise errors.InvalidKey(str(exc)) from None

    async def _publish(self, report: Report, trace: Context, msg_id: str | None = None) -> None:
        headers: dict[str, str] = {}
        if msg_id:
            headers["Nats-Msg-Id"] = msg_id
        if tracing.enabled():  # the report joins the trace of the callback it records
            tracing.inject(headers, trace)
        subject = subjects.report_subject(report.job_id, report.kind)  # type: ignore[attr-defined]
        try:
            await self._js.publish(
                subject,
                report.model_dump_json().encode(),
                timeout=PUBLISH_TIMEOUT,
                stream=subjects.REPORTS_STREAM,
                headers=headers or None,
            )
        except nats.errors.MaxPayloadError as exc:
            raise errors.TooLarge("the report is larger than the message bus takes") from exc
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("publishing %s failed: %s", subject, exc)
            raise errors.Unavailable("could not record the report, retry") from exc


class StorageService:
    """The local backend's signed-URL endpoints: one key, one method, until the URL expires."""

    def __init__(self, local: storage.LocalStorage, signer: storage.UrlSigner, max_upload_bytes: int) -> None:
        self._storage = local
        self._signer = signer
        self.max_upload_bytes = max_upload_bytes

    def authorize(
        self,
        key: str,
        method: str,
        signed_method: str,
        expires: int,
        signature: str,
        max_bytes: int | None = None,
    ) -> None:
        try:
            storage.validate_key(key)
        except storage.InvalidKey as exc:
            raise errors.InvalidKey(str(exc)) from None
        if signed_method != method:
            raise errors.Forbidden(f"this URL is signed for {signed_method}, not {method}")
        try:
            self._signer.verify(key, method, expires, signature, max_bytes=max_bytes)
        except storage.BadSignature as exc:
            raise errors.Forbidden(str(exc)) from None

    async def open_read(self, key: str) -> tuple[int, AsyncIterator[bytes]]:
        try:
            info = await self._storage.stat(key)
        except storage.ObjectNotFound:
            raise errors.NotFound(f"no object at {key!r}") from None
        return info.size, self._storage.read_stream(key)

    async def write(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        declared_size: int | None,
        url_limit: int | None = None,
    ) -> storage.ObjectInfo:
        """Store the upload within the service's limit and the URL's own (`url_limit`), if it has one."""
        limit = self.max_upload_bytes if url_limit is None else min(url_limit, self.max_upload_bytes)
        if declared_size is not None and declared_size > limit:
            raise errors.TooLarge(f"this upload is limited to {limit} bytes")
        try:
            return await self._storage.put_stream(key, chunks, max_bytes=limit)
        except storage.ObjectTooLarge as exc:
            raise errors.TooLarge(str(exc)) from None
