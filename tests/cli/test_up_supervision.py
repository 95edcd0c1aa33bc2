"""`vtp up` owns what it starts, on a real embedded platform (its own nats-server and Postgres): a second
`vtp up` on the data dir is refused; nats-server and Postgres SIGKILLed come back and the platform works
again; SIGKILL of `vtp up` while a job trains leaves no process behind and a new `vtp up` starts on the same
dir; Ctrl-C leaves nothing either. One platform for the module, the tests in order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.helpers import FAST_TIMERS, Platform, declare_pool, job_request, submit, upload_dataset
from vtp.embedded import ownership
from vtp.embedded.ports import free_port, wait_for_port
from vtp.launch import launch

RECOVERY = 60.0
LONG_TRAINING = {"epochs": 500, "batch_size": 8, "image_size": 32, "learning_rate": 0.001}


class Session:
    """The platform under test; replaced when a test starts a new `vtp up` on the same data dir."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir, self.log, self.port = data_dir, log, free_port()
        self.dataset = ""  # uploaded once NATS came back
        self.env = {
            k: v for k, v in os.environ.items() if k not in ("NATS_URL", "NATS_MONITOR_URL", "DATABASE_URL")
        }
        self.env |= {**FAST_TIMERS, "VTP_POOL_STOP_TIMEOUT": "5"}
        self.platform = self.start()

    def start(self) -> Platform:
        self.platform = Platform(**vars(launch(self.data_dir, self.port, self.env, self.log, timeout=120)))
        return self.platform


@pytest.fixture(scope="module")
def session(session_dir: Path) -> Iterator[Session]:
    session = Session(session_dir / "owned", session_dir / "owned-vtp-up.log")
    yield session
    if session.platform.process.poll() is None:
        session.platform.stop()
    for process in processes_of(session.data_dir):
        process.kill()  # only if a test failed: never leave a platform running


def processes_of(data_dir: Path) -> list[psutil.Process]:
    """Live processes whose command line or `VTP_DATA_DIR` names the data dir."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            if process.pid == os.getpid() or process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if str(data_dir) in " ".join(process.info["cmdline"] or ()) or process.environ().get(
                "VTP_DATA_DIR"
            ) == str(data_dir):
                found.append(process)
        except psutil.Error:
            continue
    return found


def still_running(processes: list[psutil.Process], within: float = 10.0) -> list[psutil.Process]:
    """Those of `processes` (identified by pid and start time) still alive after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        left = []
        for process in processes:
            try:
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    left.append(process)
            except psutil.NoSuchProcess:
                continue
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def pid_of(data_dir: Path, part: str) -> int:
    return int(ownership.pid_file(data_dir, part).read_text().split()[0])


def restarted(data_dir: Path, part: str, old_pid: int) -> int:
    deadline = time.monotonic() + RECOVERY
    while (pid := pid_of(data_dir, part)) == old_pid or not ownership.alive(pid):
        assert time.monotonic() < deadline, f"{part} was not restarted within {RECOVERY:.0f} s"
        time.sleep(0.1)
    return pid


def answers(platform: Platform, path: str) -> httpx.Response:
    """The first 200 for GET `path`, retried while the platform recovers."""
    deadline = time.monotonic() + RECOVERY
    with platform.client() as client:
        while True:
            try:
                response = client.get(path, timeout=5)
                if response.status_code == 200:
                    return response
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"GET {path} did not answer 200 within {RECOVERY:.0f} s"
            time.sleep(0.2)


def wait_for_state(platform: Platform, job_id: str, state: str) -> None:
    deadline = time.monotonic() + RECOVERY
    while answers(platform, f"/v1/jobs/{job_id}").json()["state"] != state:
        assert time.monotonic() < deadline, f"job {job_id} never reached {state}"
        time.sleep(0.2)


def wait_for_trainer(root: int, within: float = RECOVERY) -> psutil.Process:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for process in psutil.Process(root).children(recursive=True):
            try:
                if "trainers.timm" in " ".join(process.cmdline()):
                    return process
            except psutil.Error:
                continue
        time.sleep(0.2)
    raise AssertionError("no trainer started")


def test_a_second_vtp_up_on_the_same_data_dir_is_refused(session: Session) -> None:
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "vtp.cli",
            "up",
            "--data-dir",
            str(session.data_dir),
            "--port",
            str(free_port()),
        ],
        env=session.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    pid = session.platform.process.pid
    assert f"another `vtp up` (pid {pid}) is running on {session.data_dir}" in second.stderr
    assert session.platform.process.poll() is None
    answers(session.platform, "/v1/jobs")


def test_nats_server_killed_comes_back_on_its_port_and_jobs_run(session: Session, tmp_path: Path) -> None:
    from vtp.synthetic import make_imagefolder_archive

    old = pid_of(session.data_dir, "nats-server")
    config = (session.data_dir / "nats" / "nats-server.conf").read_text()
    port = int(config.split("listen: 127.0.0.1:")[1].split()[0])
    os.kill(old, signal.SIGKILL)
    restarted(session.data_dir, "nats-server", old)
    wait_for_port("127.0.0.1", port, timeout=RECOVERY)
    # A dataset validation is a job through every part: api, scheduler, pool, runner, trainer, events.
    archive = make_imagefolder_archive(tmp_path / "shapes.zip", train_per_class=2, val_per_class=1, size=32)
    session.dataset = upload_dataset(session.platform, archive, "imagefolder")


def test_postgres_killed_comes_back_and_jobs_are_stored(session: Session) -> None:
    old = pid_of(session.data_dir, "postgres")
    os.kill(old, signal.SIGKILL)
    restarted(session.data_dir, "postgres", old)
    answers(session.platform, "/v1/jobs")
    declare_pool(session.data_dir, "nobody-serves-this")
    job = submit(session.platform, job_request(session.dataset, pool="nobody-serves-this"))
    wait_for_state(session.platform, job["id"], "QUEUED")


def test_sigkill_of_vtp_up_leaves_nothing_and_the_next_one_starts(session: Session) -> None:
    submit(session.platform, job_request(session.dataset, hyperparameters=LONG_TRAINING))
    root = session.platform.process.pid
    trainer = wait_for_trainer(root)
    tree = psutil.Process(root).children(recursive=True)
    assert trainer in tree
    assert len(tree) >= 8  # nats-server, postgres (and its backends), 4 services, runner, trainer

    session.platform.process.send_signal(signal.SIGKILL)
    session.platform.process.wait()
    assert still_running(tree) == []
    assert processes_of(session.data_dir) == []

    platform = session.start()
    answers(platform, "/v1/jobs")


def test_ctrl_c_leaves_no_process(session: Session) -> None:
    root = session.platform.process.pid
    wait_for_trainer(root)  # the job interrupted above, retried: Ctrl-C must stop a training tree too
    tree = psutil.Process(root).children(recursive=True)
    assert session.platform.stop() == 0
    assert still_running(tree, within=1) == []
    assert processes_of(session.data_dir) == []
    assert list((session.data_dir / ownership.RUN_DIR).iterdir()) == []
