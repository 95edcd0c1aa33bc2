"""A job's credentials: its attempt's callback token and the signed URLs its trainer reads, minted here
for a dispatch and again on demand (contracts/credentials.py) for a runner taking a job late or a trainer
whose token is past half its life.

The requests come over core NATS request/reply, not a stream: an answer is only worth something to the
one waiting for it, and a request lost with the scheduler is asked again (a runner hands its job back, a
trainer's next heartbeat renews). Nothing is written: granting reads the job's row, mints and signs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import subjects
from contracts.credentials import CredentialsRequest, Grant, Renewal, TakeOver
from contracts.dispatch import RESUME_CHECKPOINT
from contracts.jobs import TimmSpec
from contracts.ultralytics import UltralyticsSpec
from services.common import tokens
from services.common.storage import Storage, artifact_key, weights_key
from services.scheduler import repository
from services.scheduler.core import Job

log = logging.getLogger(__name__)

TAKE_OVER_PREFIX = subjects.take_over_subject("")


@dataclass(frozen=True)
class Urls:
    dataset_url: str
    resume_url: str | None
    weights_url: str | None


class Issuer:
    """Mints callback tokens (the private key never leaves the scheduler) and signs a job's storage URLs,
    all living `ttl` seconds."""

    def __init__(self, storage: Storage, private_key_pem: str, ttl: int) -> None:
        self._storage = storage
        # Parsed once: PyJWT accepts the key object, and parsing PEM on every mint costs more than signing.
        self._signing_key = tokens.load_private_key(private_key_pem)
        self.ttl = ttl

    def expiry(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.ttl)

    def token(self, job_id: str, attempt: int, now: datetime, run: int = 0) -> str:
        return tokens.mint(self._signing_key, job_id, attempt, self.ttl, now=now.timestamp(), run=run)

    def urls(self, job: Job, attempt: int, run: int = 0) -> Urls:
        return Urls(
            dataset_url=self._storage.presign(job.dataset.storage_key, "GET", self.ttl),
            resume_url=self._resume_url(job.job_id, attempt, run),
            weights_url=self._weights_url(job),
        )

    def _resume_url(self, job_id: str, attempt: int, run: int) -> str | None:
        """A retry, or a run after a preemption, resumes from the checkpoint the earlier runs left; whether
        one exists is the trainer's to find out (a 404), so a dispatch never waits on storage."""
        if attempt == 1 and run == 0:
            return None
        return self._storage.presign(artifact_key(job_id, RESUME_CHECKPOINT), "GET", self.ttl)

    def _weights_url(self, job: Job) -> str | None:
        """The api checked at submit that the weights are the job's project's and exist."""
        spec = job.spec
        if not isinstance(spec, TimmSpec | UltralyticsSpec) or spec.weights is None:
            return None
        return self._storage.presign(weights_key(spec.weights), "GET", self.ttl)


def refusal(job: Job | None, request: CredentialsRequest, pool: str | None) -> str | None:
    """Why `request` gets nothing (None: granted). Only the current attempt of a job that is not over, and
    a take-over only on the job's own pool and once the attempt is dispatched."""
    if job is None:
        return "unknown job"
    if job.state.terminal:
        return f"job is {job.state.value}"
    if request.attempt != job.attempt:
        return f"attempt {request.attempt} is not current (the job is at attempt {job.attempt})"
    if pool is not None and pool != job.pool:
        return f"job is on pool {job.pool}, not {pool}"
    if job.retry_at is not None:
        return f"attempt {job.attempt} is not dispatched yet"
    return None


def parse_request(subject: str, body: bytes) -> tuple[CredentialsRequest, str | None]:
    """The request and, for a take-over, the pool its subject names. Raises ValueError when unreadable."""
    if subject == subjects.CREDENTIALS_RENEW:
        return Renewal.model_validate_json(body), None
    if subject.startswith(TAKE_OVER_PREFIX) and subject != TAKE_OVER_PREFIX:
        return TakeOver.model_validate_json(body), subject.removeprefix(TAKE_OVER_PREFIX)
    raise ValueError(f"not a credentials subject: {subject}")


class Desk:
    """Answers credentials requests from the job's committed row."""

    def __init__(self, engine: AsyncEngine, issuer: Issuer) -> None:
        self._engine = engine
        self._issuer = issuer

    async def answer(self, subject: str, body: bytes) -> Grant:
        """Raises on a database failure: no answer then, and the requester asks again later."""
        try:
            request, pool = parse_request(subject, body)
        except (ValidationError, ValueError) as exc:
            return Grant(refused=f"unreadable credentials request: {str(exc).splitlines()[0][:200]}")
        async with self._engine.connect() as conn:
            job = await repository.get_job(conn, request.job_id)
        if (reason := refusal(job, request, pool)) is not None:
            log.info("credentials refused: %s", reason, extra={"job_id": request.job_id})
            return Grant(refused=reason)
        assert job is not None
        now = datetime.now(UTC)
        grant = Grant(
            callback_token=self._issuer.token(job.job_id, job.attempt, now, job.preemptions),
            expires_at=self._issuer.expiry(now),
        )
        log.info(
            "credentials granted (%s)",
            "take-over" if pool is not None else "renewal",
            extra={"job_id": job.job_id, "trace_id": job.trace_id},
        )
        if isinstance(request, TakeOver):
            urls = self._issuer.urls(job, job.attempt, job.preemptions)
            grant = grant.model_copy(
                update={
                    "dataset_url": urls.dataset_url,
                    "resume_url": urls.resume_url,
                    "weights_url": urls.weights_url,
                }
            )
        return grant
