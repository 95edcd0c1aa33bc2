"""Retry backoff: exponential in the attempt that failed, capped."""

from __future__ import annotations


def backoff_seconds(failed_attempt: int, base: float, maximum: float) -> float:
    """`min(base * 2**(attempt-1), max)`; attempt 1 waits `base`."""
    if failed_attempt < 1:
        raise ValueError("attempts count from 1")
    # Cap the exponent first: 2**(huge) is exact in Python but pointless work.
    exponent = min(failed_attempt - 1, 64)
    return min(base * 2**exponent, maximum)
