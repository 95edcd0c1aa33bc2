"""How much an uploaded archive may unpack to. Defaults fit real datasets (COCO is ~20 GB, 120k files);
tests shrink them to exercise the refusals with tiny archives."""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class Limits:
    max_total_bytes: int = 20 * GIB
    max_files: int = 1_000_000
    # Uncompressed / compressed size. Real images barely compress; a bomb is a few KB of zeros per GB.
    max_ratio: float = 200.0
    # Below this a member's ratio is not judged: a small text label file of repeated lines can compress
    # far beyond the ratio and is harmless.
    ratio_applies_above: int = 1 * MIB


DEFAULT_LIMITS = Limits()
