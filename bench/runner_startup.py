"""Runner start-up benchmark (not a test): a runner starts once per job, before its trainer, so what it
takes to import, connect and hold its first message is every job's wait.

On a nats-server of its own it publishes one unparseable dispatch message per round and times
`python -m trainers.runner` as the local pool starts it, from exec to exit (import, connect, bind to the
pool's consumer, fetch, terminate the message, drain): the same path as a real job's up to the trainer's
start, less one heartbeat. Separately, the import alone: `python -c 'import trainers.runner'` (with the
modules the runner keeps out of its process kept out), and FastStream's share of it (`-X importtime`).

Run: `python bench/runner_startup.py [--rounds 15]`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts import subjects
from messaging import nats as common_nats
from vtp.embedded.nats_server import start_nats_server

POOL = "bench"
ROOT = Path(__file__).resolve().parent.parent
KEPT_OUT = "import sys\nfor m in ('aiohttp', 'rich', 'click'): sys.modules.setdefault(m, None)\n"


async def _prepare(url: str) -> None:
    nc = await common_nats.connect(url, "bench-prepare")
    js = nc.jetstream()
    await common_nats.ensure_streams(js)
    await common_nats.ensure_pool_consumer(js, POOL)
    await nc.drain()


async def _publish(url: str) -> None:
    nc = await common_nats.connect(url, "bench-publish")
    await nc.jetstream().publish(subjects.dispatch_subject(POOL), b"{}", stream=subjects.DISPATCH_STREAM)
    await nc.drain()


async def _ack_pending(url: str) -> tuple[int, int]:
    nc = await common_nats.connect(url, "bench-check")
    info = await nc.jetstream().consumer_info(subjects.DISPATCH_STREAM, subjects.pool_consumer(POOL))
    await nc.drain()
    return info.num_pending, info.num_ack_pending


def _time(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=ROOT, check=False, capture_output=True)
    return time.perf_counter() - start


def _faststream_import_ms(env: dict[str, str]) -> tuple[float, float]:
    """(all of trainers.runner, faststream's modules) in ms, by `-X importtime`'s cumulative column."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", KEPT_OUT + "import trainers.runner"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    total = faststream = 0.0
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)", line)
        if not match:
            continue
        cumulative, indent, name = int(match[1]), len(match[2]), match[3]
        if indent == 0 and name == "trainers.runner":
            total = cumulative / 1000
        if name == "faststream" or name.startswith("faststream."):
            # Nested: the outermost faststream import holds all of it.
            faststream = max(faststream, cumulative / 1000)
    return total, faststream


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--compare", help="an earlier runner's source file, timed the same way, interleaved")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = start_nats_server(Path(folder) / "nats")
        try:
            asyncio.run(_prepare(server.url))
            env = {
                **os.environ,
                "NATS_URL": server.url,
                "VTP_POOL": POOL,
                "VTP_LOG_LEVEL": "WARNING",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
            imports, runs, earlier = [], [], []
            for _ in range(args.rounds):
                imports.append(_time([sys.executable, "-c", KEPT_OUT + "import trainers.runner"], env))
                asyncio.run(_publish(server.url))
                runs.append(_time([sys.executable, "-m", "trainers.runner"], env))
                if args.compare:
                    asyncio.run(_publish(server.url))
                    earlier.append(_time([sys.executable, args.compare], env))
            total, faststream = _faststream_import_ms(env)
            pending = asyncio.run(_ack_pending(server.url))
        finally:
            server.stop()
    print(f"interpreter + import trainers.runner: median {statistics.median(imports) * 1000:.0f} ms")
    print(f"  -X importtime: trainers.runner {total:.0f} ms, of which faststream {faststream:.0f} ms")
    print(f"runner exec -> first message terminated -> exit: median {statistics.median(runs) * 1000:.0f} ms")
    if earlier:
        print(f"  the earlier runner ({args.compare}): median {statistics.median(earlier) * 1000:.0f} ms")
    print(f"  left on the consumer (pending, ack pending): {pending}; every message terminated: (0, 0)")
    print(f"  (min {min(runs) * 1000:.0f} ms, max {max(runs) * 1000:.0f} ms, {args.rounds} rounds)")


if __name__ == "__main__":
    main()
