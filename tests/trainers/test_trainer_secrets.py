"""A trainer holds only its job's token and URLs (issue 10, point 9).

A real pool with every secret `vtp up` used to hand it (NATS password, DATABASE_URL, the storage signing key,
the callback private key) starts a real runner, which trains a real timm job. While it trains, a probe runs
exactly where the trainer is (its uid and gid, no supplementary groups, its mount namespace) and reads what
the trainer could: every `/proc/<pid>/environ` and `cmdline` on the machine, its runner's stdin, the secret
files of the data dir, the platform's keys and storage. It must find the trainer's own token (it reads what
the trainer reads) and none of the secrets.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from contracts.reports import DoneReport, ProgressReport
from services.events.testing import stored_reports
from tests.trainers.test_runner_timm import dispatch, of_kind, publish
from trainers import isolation
from trainers.pool import TRAINER_UID_BASE, pool_environ
from trainers.runner import trainer_environ

as_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="a trainer gets a uid of its own only under a root runner"
)

PROBE = r"""
import ctypes, glob, json, os, sys

# Become the process probed (started as root, so that an error here says what failed): its mount
# namespace, then its uid and gid with no groups. Here rather than in a preexec_fn, which runs in a fork of
# the threaded test process.
namespace, uid, gid = (int(value) for value in sys.argv[2:5])
if ctypes.CDLL(None, use_errno=True).setns(namespace, 0x00020000) != 0:
    raise OSError(ctypes.get_errno(), "setns")
os.setgroups([])
os.setresgid(gid, gid, gid)
os.setresuid(uid, uid, uid)

secrets, files, folders = json.loads(sys.argv[1])
opened, found = [], []

def read(path):
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except OSError:
        return
    opened.append(path)
    found.extend([path, s[:8]] for s in secrets if s.encode() in data)

mine = f"/proc/{os.getpid()}/"  # its own command line holds the secrets it looks for
for path in glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/cmdline") + files:
    if not path.startswith(mine):
        read(path)
walked = (os.path.join(top, name) for folder in folders
          for top, _, names in os.walk(folder) for name in names)
for _, path in zip(range(20000), walked):
    read(path)
print(json.dumps({"uid": os.getuid(), "groups": os.getgroups(), "opened": opened, "found": found}))
"""


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def ids_of(pid: int) -> tuple[int, int]:
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(status["Uid"].split()[0]), int(status["Gid"].split()[0])


def probe_as(pid: int, payload: object) -> dict:
    """Run PROBE as the process `pid` is: its uid and gid, no groups, in its mount namespace."""
    uid, gid = ids_of(pid)
    namespace = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
    try:
        result = subprocess.run(
            [sys.executable, "-c", PROBE, json.dumps(payload), str(namespace), str(uid), str(gid)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd="/",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            pass_fds=(namespace,),
        )
    finally:
        os.close(namespace)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def data_dir_with_secrets(base: Path, nats_password: str, signing_key: str) -> Path:
    """As `vtp up` keeps them: `<data-dir>/secrets` (0700) with 0600 files."""
    folder = base / "data" / "secrets"
    (folder / "nats").mkdir(parents=True)
    folder.chmod(0o700)
    for path, text in {
        folder / "nats" / "runner-local.env": f"NATS_USER=runner-local\nNATS_PASSWORD={nats_password}\n",
        folder / "storage-signing.key": signing_key,
    }.items():
        path.touch(mode=0o600)
        path.write_text(text)
    return folder / "nats" / "runner-local.env"


@as_root
async def test_a_trainer_finds_none_of_its_runners_secrets(platform, js, pool, tmp_path, session_dir):
    nats_password, database_url = secrets.token_urlsafe(24), f"postgresql://u:{secrets.token_hex(12)}@db/x"
    signing_key = secrets.token_urlsafe(24)
    credentials_file = data_dir_with_secrets(tmp_path, nats_password, signing_key)
    private_key = platform.private_key_pem.strip().splitlines()[1]  # a line of the key itself
    # (The fixture's own signing key is no secret: it is written in tests/trainers/conftest.py.)
    hidden = [nats_password, database_url, signing_key, private_key]

    # As `vtp up` keeps its storage (embedded Postgres opened the session's folders to every user).
    platform.settings.storage_dir.chmod(0o700)
    job = dispatch(platform, pool, epochs=200, batch_size=6, image_size=32)
    await publish(js, job)
    env = {
        **os.environ,
        "NATS_URL": platform.nats_url,
        "NATS_MONITOR_URL": platform.monitor_url,
        "VTP_POOL": pool,
        "VTP_POOL_POLL_INTERVAL": "0.2",
        "VTP_HEARTBEAT_INTERVAL": "0.2",
        # What `vtp up` once handed its pool, all of it.
        isolation.CREDENTIALS: str(credentials_file),
        "DATABASE_URL": database_url,
        "VTP_STORAGE_SIGNING_KEY": signing_key,
        "VTP_CALLBACK_PRIVATE_KEY_FILE": str(session_dir / "trainer-tests" / "keys" / "callback-signing.pem"),
    }
    local_pool = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from trainers.pool import main; main()", env=env
    )
    try:
        deadline = time.monotonic() + 90
        while not of_kind(await stored_reports(js, job.job_id), ProgressReport):
            assert time.monotonic() < deadline, "no progress report"
            assert local_pool.returncode is None
            await asyncio.sleep(0.1)
        [runner] = children_of(local_pool.pid)
        [trainer] = children_of(runner)
        assert ids_of(trainer) == (TRAINER_UID_BASE, TRAINER_UID_BASE)

        files = [f"/proc/{runner}/fd/0", f"/proc/{runner}/mem", f"/proc/{local_pool.pid}/mem"]
        folders = [str(session_dir), str(tmp_path), tempfile.gettempdir()]
        seen = await asyncio.to_thread(probe_as, trainer, [hidden, files, folders])
    finally:
        local_pool.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(local_pool.wait(), 30) == 0

    assert seen["uid"] == TRAINER_UID_BASE
    assert seen["groups"] == []
    assert seen["found"] == []
    # It reads what the trainer reads (its own environment: the token is there), and nothing of its
    # runner's or its pool's but their command lines.
    assert f"/proc/{trainer}/environ" in seen["opened"]
    assert f"/proc/{runner}/cmdline" in seen["opened"]
    for pid in (runner, local_pool.pid, os.getpid()):
        assert f"/proc/{pid}/environ" not in seen["opened"]
    assert not set(files) & set(seen["opened"])
    private = (
        str(platform.settings.storage_dir),
        str(session_dir / "trainer-tests" / "keys" / "callback-signing.pem"),
    )
    assert not [path for path in seen["opened"] if path.startswith((*private, str(tmp_path)))]
    found = await stored_reports(js, job.job_id)
    [done] = of_kind(found, DoneReport)
    # The pool's SIGTERM preempts the trainer (tests/trainers/test_preemption.py).
    completed = len(of_kind(found, ProgressReport))
    assert (done.status, done.reason) == ("preempted", f"preempted by SIGTERM after epoch {completed}")


def test_the_trainer_environment_holds_its_job_and_no_secret_looking_variable(tmp_path):
    from tests.trainers.test_trainer_parts import trainer_env

    parent = {
        "PATH": "/bin",
        "HOME": "/root",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "2",
        "HF_TOKEN": "hf_secret",
        "CUDA_API_KEY": "k",
        "NATS_USER": "runner-local",
        "NATS_PASSWORD": "p",
        isolation.CREDENTIALS: "-",
    }
    user = isolation.TrainerUser(65000, 65000, "vtp-trainer-65000")
    child = trainer_environ(trainer_env(), parent, work_dir=tmp_path, user=user)
    assert {k for k in child if not k.startswith("VTP_") and k != "TRACEPARENT"} == {
        "PATH", "LANG", "OMP_NUM_THREADS", "HF_HUB_OFFLINE", "PYTHONUNBUFFERED", "TMPDIR", "HOME", "USER",
        "LOGNAME",
    }  # fmt: skip
    assert child["HOME"] == child["TMPDIR"] == str(tmp_path)
    assert isolation.CREDENTIALS not in child


def test_vtp_up_hands_its_pool_no_database_storage_or_signing_secret():
    environ = {
        "PATH": "/bin",
        "NATS_URL": "nats://127.0.0.1:4222",
        "NATS_MONITOR_URL": "http://127.0.0.1:8222",
        "VTP_POOL": "local",
        "VTP_POOL_CONCURRENCY": "2",
        "NATS_USER": "runner-local",
        "NATS_PASSWORD": "p",
        "DATABASE_URL": "postgresql://u:p@db/x",
        "VTP_STORAGE_SIGNING_KEY": "k",
        "VTP_CALLBACK_PRIVATE_KEY_FILE": "/secrets/private.pem",
        "VTP_CALLBACK_PUBLIC_KEY_FILE": "/secrets/public.pem",
        "STORAGE_S3_SECRET_ACCESS_KEY": "s",
        "STORAGE_LOCAL_DIR": "/data/storage",
        "VTP_DATA_DIR": "/data",
        "VTP_API_PORT": "8000",
    }
    assert set(pool_environ(environ)) == {
        "PATH", "NATS_URL", "NATS_MONITOR_URL", "VTP_POOL", "VTP_POOL_CONCURRENCY", "NATS_USER",
        "NATS_PASSWORD",
    }  # fmt: skip


@pytest.mark.parametrize("form", ["stdin", "file", "folder", "environment"])
def test_runner_credentials_come_from_stdin_a_file_a_mounted_secret_or_the_environment(tmp_path, form):
    values = {"NATS_USER": "runner-gpu", "NATS_PASSWORD": "s3cret"}
    env = {"PATH": os.environ.get("PATH", "")}
    text = "".join(f"{k}={v}\n" for k, v in values.items())
    if form == "stdin":
        env[isolation.CREDENTIALS] = isolation.STDIN
    elif form == "file":
        (tmp_path / "runner.env").write_text(text)
        env[isolation.CREDENTIALS] = str(tmp_path / "runner.env")
    elif form == "folder":
        for name, value in values.items():
            (tmp_path / name).write_text(value + "\n")
        env[isolation.CREDENTIALS] = str(tmp_path)
    else:
        env.update(values)
    code = (
        "from trainers.isolation import read_credentials, credentials_text; "
        "print(credentials_text(read_credentials()), end='')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], input=text, capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout == text


@as_root
def test_a_process_that_is_not_dumpable_keeps_its_environment_from_its_own_uid():
    """Where a trainer must share its runner's uid (a runner that is not root), the runner's environment
    is still closed to it."""
    user = isolation.TrainerUser(65432, 65432, "vtp-test")
    code = (
        "import sys, time\n"
        "from trainers.isolation import not_dumpable\n"
        "if sys.argv[1] == 'closed': not_dumpable()\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    for mode, readable in (("open", True), ("closed", False)):
        holder = subprocess.Popen(
            [sys.executable, "-c", code, mode],
            env={"PATH": os.environ.get("PATH", ""), "VTP_SECRET_MARK": "x"},
            cwd="/",
            stdout=subprocess.PIPE,
            text=True,
            **user.popen_options(),
        )
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == "ready\n"
            seen = probe_as(holder.pid, [["VTP_SECRET_MARK"], [], []])
        finally:
            holder.kill()
            holder.wait()
            holder.stdout.close()
        assert seen["uid"] == 65432
        assert (f"/proc/{holder.pid}/environ" in seen["opened"]) is readable, mode
