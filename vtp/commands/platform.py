"""Running the platform: `vtp up`, `vtp serve <part>`, `vtp migrate`, `vtp admin create-project`,
`vtp admin nats-config`."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
from pathlib import Path

from vtp.client import CliError

# Each part reads only environment variables (docs/design.md).
ENTRY_POINTS = {
    "api": "services.api.app:main",
    "scheduler": "services.scheduler.app:main",
    "events": "services.events.app:main",
    "pool": "trainers.pool:main",
}


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    up = subparsers.add_parser("up", parents=[common], help="start the whole platform on this machine")
    up.add_argument("--port", type=int, default=int(os.environ.get("VTP_API_PORT", "8000")), help="API port")
    up.set_defaults(handler=run_up)

    serve = subparsers.add_parser(
        "serve", help="run one part of the platform (configured by the environment)"
    )
    serve.add_argument("part", choices=list(ENTRY_POINTS))
    serve.set_defaults(handler=run_serve)

    migrate = subparsers.add_parser(
        "migrate",
        parents=[common],
        help="apply database migrations (DATABASE_URL, else the embedded Postgres)",
    )
    migrate.set_defaults(handler=run_migrate)

    admin = subparsers.add_parser("admin", help="administration")
    commands = admin.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")
    create = commands.add_parser(
        "create-project", parents=[common], help="create a project and print its API key"
    )
    create.add_argument("name")
    create.set_defaults(handler=run_create_project)

    nats_config = commands.add_parser(
        "nats-config",
        parents=[common],
        help="write a NATS user per role (<user>.env) and the nats-server authorization block",
    )
    nats_config.add_argument(
        "--out", type=Path, help="where to write them (default: <data-dir>/secrets/nats); kept passwords stay"
    )
    nats_config.add_argument(
        "--pool",
        action="append",
        dest="pools",
        metavar="POOL",
        help="a runner user per pool (default: local)",
    )
    nats_config.set_defaults(handler=run_nats_config)


def run_up(args: argparse.Namespace) -> int:
    from vtp.up import run

    return run(args.data_dir, args.port)


def run_serve(args: argparse.Namespace) -> int:
    module_name, _, function = ENTRY_POINTS[args.part].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise CliError(f"cannot start {args.part}: {exc}") from exc
    result = getattr(module, function)()
    return result if isinstance(result, int) else 0


def run_migrate(args: argparse.Namespace) -> int:
    from vtp.up import database_url, migrate

    url, _ = database_url(args.data_dir.resolve(), os.environ)
    migrate(url)
    print("migrations applied")
    return 0


def run_create_project(args: argparse.Namespace) -> int:
    from services.api.keys import create_project
    from vtp.up import database_url

    url, _ = database_url(args.data_dir.resolve(), os.environ)
    project_id, api_key = asyncio.run(create_project(url, args.name))
    print(f"project {project_id} ({args.name})")
    print(api_key)
    return 0


def run_nats_config(args: argparse.Namespace) -> int:
    from vtp.nats_auth import NatsUsers, env_file

    folder = args.out or args.data_dir / "secrets" / "nats"
    try:
        users = NatsUsers.ensure(folder, args.pools or ["local"])
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    config = users.write_server_config(folder)
    print(f"nats-server authorization block: {config} (include it in the server's configuration)")
    for role in users.roles:
        print(f"{role.user}: {env_file(folder, role.user)}")
    return 0
