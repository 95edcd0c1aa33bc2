"""Renewing a running trainer's callback token: past half its life, the heartbeat's answer carries a new one.

Only the scheduler mints tokens (this service holds the public key alone), so a renewal is a request to it
(contracts/credentials.py), made at most once per heartbeat and only for a token past half its life. A
scheduler that does not answer in time costs the trainer nothing: the old token is still good, and the next
heartbeat asks again.
"""

from __future__ import annotations

import logging

import nats.errors
from nats.aio.client import Client as NATS
from pydantic import ValidationError

from contracts import subjects
from contracts.callbacks import HeartbeatAnswer
from contracts.credentials import Grant, Renewal
from services.common.tokens import CallbackClaims

log = logging.getLogger(__name__)

RENEWAL_TIMEOUT = 2.0


class TokenRenewer:
    def __init__(self, nc: NATS, timeout: float = RENEWAL_TIMEOUT) -> None:
        self._nc = nc
        self._timeout = timeout

    async def renewed(self, claims: CallbackClaims, answer: HeartbeatAnswer) -> HeartbeatAnswer:
        """`answer` with a new token, or as it was when the scheduler refuses or does not answer."""
        request = Renewal(job_id=claims.job_id, attempt=claims.attempt)
        try:
            reply = await self._nc.request(
                subjects.CREDENTIALS_RENEW, request.model_dump_json().encode(), timeout=self._timeout
            )
            grant = Grant.model_validate_json(reply.data)
        except (TimeoutError, nats.errors.Error, ValidationError) as exc:
            log.warning(
                "token renewal unavailable, the next heartbeat asks again: %s",
                type(exc).__name__,
                extra={"job_id": claims.job_id},
            )
            return answer
        if grant.refused is not None or grant.callback_token is None:
            log.info("token renewal refused: %s", grant.refused, extra={"job_id": claims.job_id})
            return answer
        return answer.model_copy(
            update={"callback_token": grant.callback_token, "expires_at": grant.expires_at}
        )
