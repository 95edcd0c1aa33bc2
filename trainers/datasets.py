"""Fetching and unpacking a dataset archive from its signed URL. Extraction is `trainers.validation`'s: it
refuses members that would land outside the target folder (absolute paths, `..`, links, devices) and archives
beyond the size, file-count and compression-ratio limits, whatever the archive's headers say."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from telemetry import tracing
from trainers.validation.archive import extract_archive
from trainers.validation.errors import UnsafeArchive, UnsupportedArchive
from trainers.validation.layout import dataset_root
from trainers.validation.limits import DEFAULT_LIMITS, Limits

__all__ = ["UnsafeArchive", "UnsupportedArchive", "download", "safe_extract"]

CHUNK = 1024 * 1024


def download(url: str, dest: Path, tries: int = 4, what: str = "dataset") -> Path:
    """Stream `url` to `dest` (via a partial file), retrying transient failures briefly. A 4xx answer raises
    `httpx.HTTPStatusError` at once."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    for attempt in range(tries):
        try:
            headers = tracing.inject({})  # the storage request's span (local storage) joins the trace
            with httpx.stream("GET", url, headers=headers, timeout=60.0, follow_redirects=True) as response:
                if response.status_code < 500:
                    response.raise_for_status()
                    with partial.open("wb") as out:
                        for chunk in response.iter_bytes(CHUNK):
                            out.write(chunk)
                    partial.replace(dest)
                    return dest
                problem: str = f"status {response.status_code}"
        except httpx.TransportError as exc:
            problem = str(exc)
        if attempt == tries - 1:
            raise RuntimeError(f"{what} download failed: {problem}")
        time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def safe_extract(archive: Path, dest: Path, limits: Limits = DEFAULT_LIMITS) -> Path:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into `dest` within `limits`; return the dataset root (a lone
    top folder is descended into, so `shapes/train/...` and `train/...` both work). Raises `UnsafeArchive` or
    `UnsupportedArchive` (see `trainers.validation.archive`)."""
    return dataset_root(extract_archive(archive, dest, limits))
