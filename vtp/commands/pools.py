"""`vtp pools list`: the declared pools and their load. `vtp pools prepare [POOL ...]`: create the JetStream
streams and each pool's durable dispatch consumer, which declares the pool (jobs may name only declared
pools). Without `NATS_URL`, it declares them on the nats-server of `vtp up` on the data dir, as its admin.

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
from vtp.commands.common import open_client, print_table


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    pools = subparsers.add_parser("pools", help="trainer pools")
    commands = pools.add_subparsers(dest="pools_command", required=True, metavar="COMMAND")
    prepare = commands.add_parser(
        "prepare", help="create the JetStream streams and the pools' dispatch consumers (NATS_URL)"
    )
    prepare.add_argument("pools", nargs="*", metavar="POOL")
    prepare.set_defaults(handler=run_prepare)
    listing = commands.add_parser("list", parents=[common], help="the declared pools and their load")
    listing.set_defaults(handler=run_list)


def run_prepare(args: argparse.Namespace) -> int:
    from messaging import nats as common_nats
    from messaging.credentials import NatsCredentials

    bad = [pool for pool in args.pools if not re.fullmatch(POOL_PATTERN, pool)]
    if bad:
        raise CliError(f"not a pool name: {', '.join(bad)} (expected {POOL_PATTERN})")
    # Under NATS permissions only the admin user may do this (NATS_USER/NATS_PASSWORD of `admin`).
    url, credentials = os.environ.get("NATS_URL"), NatsCredentials()
    if url is None:
        from vtp.up import embedded_nats_admin

        url, credentials = embedded_nats_admin(args.data_dir) or ("nats://127.0.0.1:4222", credentials)
    asyncio.run(common_nats.prepare(url, args.pools, credentials))
    print(f"streams ready; dispatch consumers ready for: {', '.join(args.pools) or 'no pool'}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        pools = client.list_pools()
    columns = ("name", "waiting", "running", "runners_waiting", "oldest_waiting_seconds", "last_taken_at")
    print_table(
        [column.upper() for column in columns],
        ([_shown(pool.get(column)) for column in columns] for pool in pools),
    )
    return 0


def _shown(value: object) -> object:
    return "-" if value is None else value
