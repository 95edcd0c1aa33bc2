"""Callback tokens: EdDSA JWTs minted by the scheduler (private key) and verified by the events service
(public key only, so the ingress cannot mint). Claims bind the job and the attempt."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

AUDIENCE = "vtp-callbacks"
ISSUER = "vtp-scheduler"
ALGORITHM = "EdDSA"


class TokenRefused(Exception):
    """The callback token is missing, expired, tampered, for another job or attempt, or otherwise invalid."""


@dataclass(frozen=True)
class CallbackClaims:
    job_id: str
    attempt: int
    expires_at: int
    issued_at: int = 0
    # How often the attempt was preempted before this run of it (a preempted attempt runs again).
    run: int = 0

    def past_half_life(self, now: float) -> bool:
        """Whether the token has lived half its lifetime: time for a new one (services/events/renewal.py)."""
        return now >= self.issued_at + (self.expires_at - self.issued_at) / 2


def generate_keypair(directory: Path) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair (PEM) unless one is there already; return (private, public) paths."""
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / "callback-signing.pem", directory / "callback-verify.pem"
    if not private_path.exists():
        key = Ed25519PrivateKey.generate()
        private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        private_path.touch(mode=0o600)
        private_path.write_bytes(private_pem)
        public_path.write_bytes(public_pem)
    return private_path, public_path


# A PEM string, or a key loaded once with `load_*_key` (parsing a PEM costs more than a signature).
SigningKey = str | Ed25519PrivateKey
VerifyingKey = str | Ed25519PublicKey


def load_private_key(pem: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the callback signing key must be an Ed25519 private key")
    return key


def load_public_key(pem: str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the callback verifying key must be an Ed25519 public key")
    return key


def mint(
    private_key: SigningKey,
    job_id: str,
    attempt: int,
    ttl_seconds: int,
    now: float | None = None,
    run: int = 0,
) -> str:
    issued = int(now if now is not None else time.time())
    claims: dict[str, object] = {
        "sub": f"{job_id}/{attempt}",
        "job_id": job_id,
        "attempt": attempt,
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    if run:
        claims["run"] = run
    return jwt.encode(claims, private_key, algorithm=ALGORITHM)


class TokenVerifier:
    """Verifies callback tokens and remembers the ones it accepted.

    A trainer sends the same token with every callback of an attempt, and checking its Ed25519 signature
    costs more CPU than the rest of a callback. A remembered token is the same string that passed every
    check before; only its expiry is checked again. Refused tokens are never remembered.
    """

    def __init__(
        self, public_key: VerifyingKey, max_entries: int = 50_000, clock: Callable[[], float] = time.time
    ) -> None:
        self._public_key = public_key
        self._max_entries = max_entries
        self._clock = clock
        self._accepted: dict[str, CallbackClaims] = {}

    def verify(self, token: str) -> CallbackClaims:
        claims = self._accepted.get(token)
        if claims is None:
            claims = verify(self._public_key, token)
            if len(self._accepted) >= self._max_entries:
                self._accepted.clear()  # simpler than LRU; live trainers' tokens come back on their next call
            self._accepted[token] = claims
        elif claims.expires_at <= self._clock():
            del self._accepted[token]
            raise TokenRefused("callback token expired")
        return claims


def verify(public_key: VerifyingKey, token: str) -> CallbackClaims:
    """Verify signature, algorithm, audience, issuer and expiry. Only EdDSA is accepted (never `none`)."""
    try:
        claims = jwt.decode(
            token,
            public_key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "aud", "iss", "job_id", "attempt"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenRefused("callback token expired") from exc
    except jwt.InvalidTokenError as exc:
        raise TokenRefused(f"invalid callback token: {exc}") from exc
    run = claims.get("run", 0)
    if not isinstance(claims["job_id"], str) or not isinstance(claims["attempt"], int):
        raise TokenRefused("invalid callback token: malformed job_id/attempt claims")
    if not isinstance(run, int) or isinstance(run, bool) or run < 0:
        raise TokenRefused("invalid callback token: malformed run claim")
    return CallbackClaims(
        job_id=claims["job_id"],
        attempt=claims["attempt"],
        expires_at=claims["exp"],
        issued_at=claims["iat"],
        run=run,
    )
