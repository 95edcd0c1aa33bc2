"""A runner's side of contracts/credentials.py: a job's credentials as its dispatch brought them, or new ones
from the scheduler when they would expire before the trainer is under way.

A dispatch's token and signed URLs live as long as the scheduler's token lifetime (a day by default), counted
from the dispatch; a job can wait longer than that for a runner. Credentials that expire within
`TAKE_OVER_MARGIN` are asked for again: enough time to fetch the dataset and reach the first heartbeat,
whose answer renews the trainer's token from then on. The runner's own callbacks (the trainer's output, a
crashed trainer's failure) go on its own token, which `keep_fresh` renews past half its life.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import nats.errors
from faststream.nats import NatsBroker
from pydantic import ValidationError

from contracts import subjects
from contracts.credentials import Grant, TakeOver
from contracts.dispatch import DispatchJob

log = logging.getLogger(__name__)

TAKE_OVER_MARGIN = 600.0
REQUEST_TIMEOUT = 5.0


class CredentialsRefused(Exception):
    """The scheduler gives this attempt nothing: it is not current, or the job is over. Permanent."""


class CredentialsUnavailable(Exception):
    """No answer from the scheduler (down, or slow). Transient: the job goes back for a later runner."""


def expiring(job: DispatchJob, now: datetime, margin: float = TAKE_OVER_MARGIN) -> bool:
    """Whether the job's credentials expire within `margin` seconds (a dispatch without `expires_at`, from
    an older scheduler, is taken as it is)."""
    return job.expires_at is not None and (job.expires_at - now).total_seconds() < margin


async def fresh_credentials(broker: NatsBroker, job: DispatchJob, now: datetime | None = None) -> DispatchJob:
    """`job` with credentials good for at least `TAKE_OVER_MARGIN`: its own, or new ones."""
    if not expiring(job, now or datetime.now(UTC)):
        return job
    return await take_over(broker, job)


async def keep_fresh(broker: NatsBroker, job: DispatchJob, use_token: Callable[[str], None]) -> None:
    """Until cancelled (the run's end): new credentials each time the current ones are past half their
    remaining life, handed to `use_token`. A scheduler that does not answer is asked again sooner; one that
    refuses (the job is over, the attempt superseded) ends the renewals."""
    while job.expires_at is not None:
        remaining = (job.expires_at - datetime.now(UTC)).total_seconds()
        await asyncio.sleep(max(1.0, remaining / 2))
        try:
            job = await take_over(broker, job)
        except CredentialsUnavailable as exc:
            log.warning("%s; asking again", exc)
            continue
        except CredentialsRefused as exc:
            log.info("credentials no longer renewed: %s", exc)
            return
        assert job.callback_token is not None
        use_token(job.callback_token)


async def take_over(broker: NatsBroker, job: DispatchJob) -> DispatchJob:
    """`job` with new credentials from the scheduler."""
    request = TakeOver(job_id=job.job_id, attempt=job.attempt)
    try:
        reply = await broker.request(
            request.model_dump_json(), subjects.take_over_subject(job.pool), timeout=REQUEST_TIMEOUT
        )
        grant = Grant.model_validate_json(reply.body)
    except (TimeoutError, nats.errors.Error, ValidationError) as exc:
        raise CredentialsUnavailable(f"no credentials from the scheduler ({type(exc).__name__})") from exc
    if grant.refused is not None or grant.callback_token is None or grant.dataset_url is None:
        raise CredentialsRefused(grant.refused or "the scheduler granted no token")
    return job.model_copy(
        update={
            "callback_token": grant.callback_token,
            "dataset_url": grant.dataset_url,
            "resume_url": grant.resume_url,
            "weights_url": grant.weights_url,
            "expires_at": grant.expires_at,
        }
    )
