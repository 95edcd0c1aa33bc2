"""`vtp pools prepare [POOL ...]`: create the JetStream streams and each pool's durable dispatch consumer.

Run before KEDA watches a pool (the Helm chart's pre-install/pre-upgrade Job does): the nats-jetstream scaler
reads the lag of `pool-<pool>`, and while that consumer does not exist it takes the stream's last sequence
for the lag and starts the pool's maximum of runners for nothing. Idempotent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re

from contracts.jobs import POOL_PATTERN
from vtp.client import CliError


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    pools = subparsers.add_parser("pools", help="trainer pools")
    commands = pools.add_subparsers(dest="pools_command", required=True, metavar="COMMAND")
    prepare = commands.add_parser(
        "prepare", help="create the JetStream streams and the pools' dispatch consumers (NATS_URL)"
    )
    prepare.add_argument("pools", nargs="*", metavar="POOL")
    prepare.set_defaults(handler=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    from messaging import nats as common_nats
    from messaging.credentials import NatsCredentials

    bad = [pool for pool in args.pools if not re.fullmatch(POOL_PATTERN, pool)]
    if bad:
        raise CliError(f"not a pool name: {', '.join(bad)} (expected {POOL_PATTERN})")
    url = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
    # Under NATS permissions only the admin user may do this (NATS_USER/NATS_PASSWORD of `admin`).
    asyncio.run(common_nats.prepare(url, args.pools, NatsCredentials()))
    print(f"streams ready; dispatch consumers ready for: {', '.join(args.pools) or 'no pool'}")
    return 0
