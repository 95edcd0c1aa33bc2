"""Run `vtp up` as a child process and wait until it serves: for tests and benchmarks that drive the whole
platform from outside, as a user would."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from trainers.lifetime import dies_with_parent
from vtp.client import read_env_file


@dataclass
class LaunchedPlatform:
    process: subprocess.Popen[bytes]
    url: str
    key: str
    data_dir: Path

    def stop(self, timeout: float = 60) -> int:
        """SIGINT, as Ctrl-C would; returns the exit code (killed if it does not stop in time)."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def launch(
    data_dir: Path, port: int, env: Mapping[str, str], log_path: Path, timeout: float = 90
) -> LaunchedPlatform:
    """Start `vtp up --data-dir DATA_DIR --port PORT` and return once its API answers /healthz. It dies with
    the calling process."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "vtp.cli", "up", "--data-dir", str(data_dir), "--port", str(port)],
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=dies_with_parent(),  # a killed test run or benchmark takes its platform with it
        )
    url, client_env = f"http://127.0.0.1:{port}", data_dir / "client.env"
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"vtp up exited with {process.returncode}; see {log_path}")
        try:
            if client_env.exists() and httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                key = read_env_file(client_env)["VTP_API_KEY"]
                return LaunchedPlatform(process=process, url=url, key=key, data_dir=data_dir)
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise TimeoutError(f"vtp up did not answer within {timeout:.0f} s; see {log_path}")
        time.sleep(0.2)
