"""Credentials on demand: core NATS request/reply with the scheduler, the one part that mints callback tokens
and signs a job's storage URLs.

A dispatch carries credentials minted when it was published. A job can wait longer than they live (behind
a pool scaled to zero), and a run can outlast them, so:
- a runner taking a job whose credentials expire soon asks for new ones (`TakeOver`, on
  `vtp.v1.credentials.take.<pool>`): a fresh token and fresh signed URLs;
- the events service renews a trainer's token past half its life when it answers a heartbeat (`Renewal`,
  on `vtp.v1.credentials.renew`): the answer carries the new token to the trainer.
Either is granted only for the job's current attempt while the job is not over, so a superseded attempt or a
finished job gets nothing; the answer then says why (`refused`).
"""

from __future__ import annotations

from datetime import datetime

from contracts.base import Message


class CredentialsRequest(Message):
    job_id: str
    attempt: int


class TakeOver(CredentialsRequest):
    """A runner of the subject's pool is about to start this attempt."""


class Renewal(CredentialsRequest):
    """A trainer of this attempt is running: renew its callback token."""


class Grant(Message):
    """The scheduler's answer: `refused` says why nothing was granted; otherwise a token, and for a take-over
    the signed URLs of the dispatch (the same ones it would carry, newly signed), all expiring at
    `expires_at`."""

    refused: str | None = None
    callback_token: str | None = None
    expires_at: datetime | None = None
    dataset_url: str | None = None
    resume_url: str | None = None
    weights_url: str | None = None
