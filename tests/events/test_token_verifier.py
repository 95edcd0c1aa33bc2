"""The events service's token verifier remembers accepted tokens; what it remembers must never widen what
it accepts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from services.common import tokens


@pytest.fixture
def keys(tmp_path: Path) -> tuple[str, str]:
    private_path, public_path = tokens.generate_keypair(tmp_path)
    return private_path.read_text(), public_path.read_text()


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_a_remembered_token_is_refused_once_it_expires(keys: tuple[str, str]) -> None:
    private, public = keys
    clock = Clock()
    verifier = tokens.TokenVerifier(tokens.load_public_key(public), clock=clock)
    token = tokens.mint(private, "job-1", 2, ttl_seconds=60)
    assert verifier.verify(token) == verifier.verify(token)  # the second call is answered from memory
    assert verifier.verify(token).attempt == 2
    clock.now += 61
    with pytest.raises(tokens.TokenRefused, match="expired"):
        verifier.verify(token)


def test_a_tampered_copy_of_a_remembered_token_is_refused(keys: tuple[str, str]) -> None:
    private, public = keys
    verifier = tokens.TokenVerifier(tokens.load_public_key(public))
    token = tokens.mint(private, "job-1", 1, ttl_seconds=60)
    verifier.verify(token)
    header, _payload, signature = token.split(".")
    other_payload = tokens.mint(private, "job-2", 1, ttl_seconds=60).split(".")[1]
    with pytest.raises(tokens.TokenRefused):
        verifier.verify(f"{header}.{other_payload}.{signature}")


def test_refusals_are_not_remembered_and_memory_stays_bounded(keys: tuple[str, str]) -> None:
    private, public = keys
    verifier = tokens.TokenVerifier(tokens.load_public_key(public), max_entries=3)
    expired = tokens.mint(private, "job-1", 1, ttl_seconds=60, now=time.time() - 120)
    for _ in range(2):
        with pytest.raises(tokens.TokenRefused, match="expired"):
            verifier.verify(expired)
    for attempt in range(1, 8):
        assert verifier.verify(tokens.mint(private, "job-1", attempt, ttl_seconds=60)).attempt == attempt
    assert len(verifier._accepted) <= 3
