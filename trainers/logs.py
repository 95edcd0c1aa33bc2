"""Logging for the trainer-side processes (pool, runner, trainers)."""

from __future__ import annotations

import logging
import os


def configure() -> None:
    logging.basicConfig(
        level=os.environ.get("VTP_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # httpx logs every request URL at INFO: signed storage URLs carry their signature in the query string.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
