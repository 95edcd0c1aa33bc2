"""`vtp up` owns what it starts, without a running platform: the data dir's lock, the pid files a crashed
`vtp up` leaves behind, a Postgres daemonized by `pg_ctl` (as an older `vtp up` left it), children that die
with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from trainers.lifetime import dies_with_parent
from vtp import up
from vtp.embedded import ownership
from vtp.embedded.postgres import Cluster
from vtp.embedded.supervision import stop_children

SLEEPER = "import subprocess, sys, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
TREE = """
import subprocess, sys, time
from trainers.lifetime import dies_with_parent
depth, tree = int(sys.argv[1]), sys.argv[2]
if depth:
    subprocess.Popen([sys.executable, "-c", tree, str(depth - 1), tree], preexec_fn=dies_with_parent())
time.sleep(60)
"""


def gone(pid: int, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while ownership.alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_one_vtp_up_per_data_dir(tmp_path: Path) -> None:
    lock = ownership.lock_data_dir(tmp_path)
    try:
        with pytest.raises(ownership.DataDirBusy, match=f"pid {os.getpid()}") as refused:
            ownership.lock_data_dir(tmp_path)
        assert f"is running on {tmp_path}" in str(refused.value)
    finally:
        lock.release()
    ownership.lock_data_dir(tmp_path).release()  # released: free again


def test_stale_processes_of_the_data_dir_are_stopped_and_nothing_else(tmp_path: Path) -> None:
    def sleeper(*args: str) -> subprocess.Popen[bytes]:
        # No parent-death signal: what a `vtp up` killed before it could set one would leave behind.
        return subprocess.Popen([sys.executable, "-c", SLEEPER, *args], start_new_session=True)

    ours, stranger = sleeper(str(tmp_path)), sleeper("elsewhere")
    try:
        time.sleep(0.3)  # the grandchild `sleep` has started
        grandchild = psutil.Process(ours.pid).children()[0].pid
        ownership.write_pid_file(ownership.pid_file(tmp_path, "pool"), ours.pid)
        ownership.write_pid_file(ownership.pid_file(tmp_path, "api"), stranger.pid)
        # Our own pid, with another start time: a pid reused since the file was written.
        ownership.pid_file(tmp_path, "events").write_text(f"{os.getpid()} 1\n")

        assert ownership.stop_stale(tmp_path) == [f"pool (pid {ours.pid})"]
        assert ours.wait(10) == -signal.SIGKILL
        assert gone(grandchild)
        assert stranger.poll() is None
        assert list((tmp_path / ownership.RUN_DIR).iterdir()) == []
    finally:
        for process in (ours, stranger):
            process.kill()
            process.wait()


def test_children_die_with_a_sigkilled_parent() -> None:
    """parent -> child -> grandchild, each started with `dies_with_parent`, as `vtp up`, the pool and the
    runner start theirs: SIGKILL the parent, and the whole tree goes."""
    parent = subprocess.Popen([sys.executable, "-c", TREE, "2", TREE], cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 20
        while len(tree := psutil.Process(parent.pid).children(recursive=True)) < 2:
            assert time.monotonic() < deadline, "the tree did not start"
            time.sleep(0.05)
        parent.kill()
        parent.wait()
        assert all(gone(process.pid) for process in tree)
    finally:
        parent.kill()
        parent.wait()


def test_a_postgres_daemonized_by_pg_ctl_is_stopped_and_ours_started(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "postgres")
    cluster.prepare()
    pg_ctl = Path(cluster.command()[0]).with_name("pg_ctl")
    options = f"-h '' -k {cluster.socket_dir}"
    subprocess.run(
        [pg_ctl, "-D", cluster.pgdata, "-o", options, "-l", cluster.pgdata / "log", "-w", "start"],
        user=cluster.user,
        check=True,
        capture_output=True,
    )
    running = cluster.postmaster()
    assert running is not None
    (tmp_path / "logs").mkdir()
    child, url = up.start_embedded_postgres(tmp_path, os.environ)
    try:
        assert gone(running[0])
        assert child.process is not None
        assert cluster.postmaster() == (child.process.pid, "ready")
        assert url.endswith("/vtp?host=" + str(cluster.socket_dir).replace("/", "%2F"))
    finally:
        stop_children([child])
    assert child.process.returncode == 0  # a fast shutdown, not a kill
    assert cluster.postmaster() is None


def test_dies_with_parent_sets_nothing_off_the_main_thread() -> None:
    import threading

    found: list[object] = []
    worker = threading.Thread(target=lambda: found.append(dies_with_parent()))
    worker.start()
    worker.join()
    assert found == [None]
    assert dies_with_parent() is not None


def test_a_postmaster_killed_with_its_parent_does_not_block_the_next_start(tmp_path: Path) -> None:
    """Orphaned by a SIGKILLed `vtp up`, a killed postmaster stays a zombie until PID 1 reaps it, and
    Postgres would take that for a live server. Here it stays one: this test, its parent, does not reap it."""
    cluster = Cluster(tmp_path / "postgres")
    cluster.prepare()
    old = subprocess.Popen(
        cluster.command(),
        user=cluster.user,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    cluster.wait_ready(old)
    os.kill(old.pid, signal.SIGKILL)
    (tmp_path / "logs").mkdir()
    child, _ = up.start_embedded_postgres(tmp_path, os.environ)
    try:
        assert child.process is not None
        assert cluster.postmaster() == (child.process.pid, "ready")
    finally:
        stop_children([child])
        old.wait()
