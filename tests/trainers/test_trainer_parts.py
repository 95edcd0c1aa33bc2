"""The runner's, pool's and trainer's smaller parts: the child environment, archive safety, KEDA-style lag
against a real nats-server, and the pool's scaling."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import signal
import subprocess
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from contracts import subjects
from contracts.jobs import TimmSpec
from messaging import nats as common_nats
from trainers import jsz
from trainers.callbacks import CallbackClient, CallbackError
from trainers.datasets import UnsafeArchive, safe_extract
from trainers.env import TrainerEnv
from trainers.pool import Pool, PoolSettings, runners_to_start
from trainers.resume import Progress, checkpoint_due
from trainers.runner import exit_reason, trainer_environ
from vtp.embedded.ports import free_port
from vtp.synthetic import make_imagefolder_archive


def trainer_env() -> TrainerEnv:
    return TrainerEnv(
        job_id="j1",
        attempt=2,
        callback_url="http://events/v1/callbacks",
        callback_token="tok",
        spec=TimmSpec(framework="timm", task="classify", model="resnet18"),
        dataset_url="http://events/v1/storage/datasets/d/x.zip?sig",
        dataset_format="imagefolder",
        heartbeat_interval=5.0,
        resume_url="http://events/v1/storage/jobs/j1/artifacts/last.pt?sig",
        weights_url="http://events/v1/storage/models/m1/weights.pt?sig",
        traceparent="00-aa-bb-01",
    )


def test_trainer_environment_carries_no_credentials():
    parent = {
        "PATH": "/bin",
        "HOME": "/root",
        "NATS_URL": "nats://user:pass@nats:4222",
        "DATABASE_URL": "postgresql://u:p@db/x",
        "VTP_STORAGE_SIGNING_KEY": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "VTP_CALLBACK_PRIVATE_KEY_FILE": "/keys/private.pem",
        "CUDA_VISIBLE_DEVICES": "0",
    }
    child = trainer_environ(trainer_env(), parent)
    assert not {"NATS_URL", "DATABASE_URL", "VTP_STORAGE_SIGNING_KEY", "AWS_SECRET_ACCESS_KEY"} & set(child)
    assert "VTP_CALLBACK_PRIVATE_KEY_FILE" not in child
    assert child["CUDA_VISIBLE_DEVICES"] == "0"
    assert TrainerEnv.from_environ(child) == trainer_env()


def test_exit_reason_names_codes_and_signals():
    assert exit_reason(3) == "trainer exited with code 3"
    assert exit_reason(-signal.SIGKILL) == "trainer exited with signal SIGKILL"


def test_synthetic_archive_is_deterministic(tmp_path):
    first = make_imagefolder_archive(
        tmp_path / "a.zip", classes=2, train_per_class=3, val_per_class=1, seed=7
    )
    second = make_imagefolder_archive(
        tmp_path / "b.zip", classes=2, train_per_class=3, val_per_class=1, seed=7
    )
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    names = zipfile.ZipFile(first).namelist()
    assert len([n for n in names if n.startswith("train/")]) == 6
    assert len([n for n in names if n.startswith("val/")]) == 2
    root = safe_extract(first, tmp_path / "out")
    assert sorted(p.name for p in (root / "train").iterdir()) == sorted(
        p.name for p in (root / "val").iterdir()
    )


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt", "train/../../evil.txt", "C:/evil.txt"])
def test_zip_members_may_not_escape(tmp_path, member):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("train/a/ok.png", b"x")
        zf.writestr(member, b"evil")
    with pytest.raises(UnsafeArchive):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_tar_links_and_escapes_are_refused(tmp_path):
    for name, kind in (("../evil.txt", tarfile.REGTYPE), ("train/link", tarfile.SYMTYPE)):
        archive = tmp_path / "bad.tar.gz"
        with tarfile.open(archive, "w:gz") as tf:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            info.size = 0 if kind == tarfile.SYMTYPE else 4
            tf.addfile(info, io.BytesIO(b"evil") if kind == tarfile.REGTYPE else None)
        with pytest.raises(UnsafeArchive):
            safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_tar_gz_datasets_extract(tmp_path):
    archive = tmp_path / "ok.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("shapes/train/a/1.png")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    root = safe_extract(archive, tmp_path / "out")
    assert (root / "train" / "a" / "1.png").read_bytes() == b"x"


def test_consumer_lag_is_pending_plus_ack_pending():
    answer = {
        "account_details": [
            {
                "name": "$G",
                "stream_detail": [
                    {"name": "OTHER", "consumer_detail": [{"name": "pool-a", "num_pending": 50}]},
                    {
                        "name": "VTP_DISPATCH",
                        "consumer_detail": [
                            {"name": "pool-b", "num_pending": 9, "num_ack_pending": 9},
                            {"name": "pool-a", "num_pending": 2, "num_ack_pending": 3},
                        ],
                    },
                ],
            }
        ]
    }
    assert jsz.consumer_lag(answer, "VTP_DISPATCH", "pool-a") == 5
    with pytest.raises(jsz.ConsumerNotFound):
        jsz.consumer_lag(answer, "VTP_DISPATCH", "pool-c")


@pytest.mark.parametrize(
    ("lag", "running", "concurrency", "start"),
    [(0, 0, 2, 0), (3, 0, 2, 2), (3, 2, 2, 0), (1, 0, 4, 1), (5, 1, 4, 3)],
)
def test_runners_to_start(lag, running, concurrency, start):
    assert runners_to_start(lag, running, concurrency) == start


def read_lag(nats_server, pool: str) -> int:
    with httpx.Client() as client:
        return jsz.read_lag(
            client, nats_server.monitor_url, subjects.DISPATCH_STREAM, subjects.pool_consumer(pool)
        )


async def test_jsz_lag_counts_pending_and_ack_pending(nats_server, js, pool):
    await common_nats.ensure_pool_consumer(js, pool)
    for n in range(3):
        await js.publish(
            subjects.dispatch_subject(pool), b"{}", stream=subjects.DISPATCH_STREAM, headers={"n": str(n)}
        )
    assert read_lag(nats_server, pool) == 3
    sub = await js.pull_subscribe_bind(durable=subjects.pool_consumer(pool), stream=subjects.DISPATCH_STREAM)
    [msg] = await sub.fetch(1, timeout=2)
    assert read_lag(nats_server, pool) == 3  # 2 pending + 1 fetched, not acked
    await msg.ack_sync()
    assert read_lag(nats_server, pool) == 2
    [msg] = await sub.fetch(1, timeout=2)
    await msg.ack_sync()
    await sub.unsubscribe()
    assert read_lag(nats_server, pool) == 1


async def test_pool_starts_runners_up_to_the_lag_and_the_concurrency(nats_server, js, pool):
    await common_nats.ensure_pool_consumer(js, pool)
    for _ in range(3):  # unparseable: each runner terminates its message and exits
        await js.publish(subjects.dispatch_subject(pool), b"not a job", stream=subjects.DISPATCH_STREAM)
    local = Pool(
        PoolSettings(
            nats_url=nats_server.url,
            monitor_url=nats_server.monitor_url,
            pool=pool,
            concurrency=2,
            poll_interval=0.1,
        )
    )
    with httpx.Client() as client:
        assert await asyncio.to_thread(local.poll_once, client) == 2
        assert await asyncio.to_thread(local.poll_once, client) == 0  # at the concurrency limit
        deadline = time.monotonic() + 30
        while read_lag(nats_server, pool) > 0:
            assert time.monotonic() < deadline
            local.reap()
            await asyncio.to_thread(local.poll_once, client)
            await asyncio.sleep(0.1)
        await asyncio.to_thread(local.stop_runners)
        assert local.runners == []


def test_pool_stop_terminates_then_kills(tmp_path):
    local = Pool(PoolSettings("nats://x", "http://x", "p", concurrency=2, poll_interval=1, stop_timeout=1))
    polite = subprocess.Popen(["sleep", "30"])
    stubborn = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 30"])
    time.sleep(0.1)
    local.runners = [polite, stubborn]
    started = time.monotonic()
    local.stop_runners()
    assert time.monotonic() - started < 5
    assert polite.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL


def test_callback_client_retries_transient_failures_then_gives_up():
    client = CallbackClient(
        f"http://127.0.0.1:{free_port()}/v1/callbacks", "token", retry_delays=(0.01, 0.01)
    )
    with pytest.raises(CallbackError, match="after 3 tries"):
        client.heartbeat()
    client.close()


def test_an_upload_reports_the_sha256_of_the_bytes_it_sent_after_a_retry_too(tmp_path):
    """The file is hashed as it streams out; a retried PUT hashes it afresh, not on top of the first try."""
    path = tmp_path / "last.pt"
    path.write_bytes(bytes(range(256)) * 12_000)  # a few 1 MiB chunks
    puts: list[bytes] = []
    completed: list[dict] = []

    def storage(request: httpx.Request) -> httpx.Response:
        puts.append(request.read())
        return httpx.Response(503 if len(puts) == 1 else 200)

    def callbacks(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/artifacts"):
            return httpx.Response(200, json={"upload_url": "http://storage/put", "expires_at": "later"})
        completed.append(json.loads(request.content))
        return httpx.Response(204)

    client = CallbackClient("http://events/v1/callbacks", "token", retry_delays=(0.01,))
    client._api = httpx.Client(
        base_url="http://events/v1/callbacks/", transport=httpx.MockTransport(callbacks)
    )
    client._storage = httpx.Client(transport=httpx.MockTransport(storage))
    client.upload_artifact(path, "last.pt")
    assert puts == [path.read_bytes()] * 2
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    assert completed == [{"name": "last.pt", "size": path.stat().st_size, "sha256": sha256}]


def test_callback_client_does_not_retry_a_refusal(platform):
    with CallbackClient(f"{platform.events_url}/v1/callbacks", "not-a-token") as client:
        with pytest.raises(CallbackError) as refused:
            client.progress(1, 2, {})
    assert refused.value.status_code == 401
    assert "not-a-token" not in str(refused.value)


class RecordingClient:
    """What a trainer's `Progress` sends, recorded; uploads fail when asked to."""

    def __init__(self, upload_fails: bool = False) -> None:
        self.sent: list[tuple] = []
        self.upload_fails = upload_fails

    def progress(self, epoch, epochs, metrics, resumed_from_epoch=None, epoch_seconds=None):
        self.sent.append(("progress", epoch, resumed_from_epoch))

    def log(self, message, level="info"):
        self.sent.append(("log", level, message))

    def upload_artifact(self, path, name):
        if self.upload_fails:
            raise CallbackError("upload of last.pt failed after 6 tries: status 503")
        self.sent.append(("artifact", name))


def test_a_resumed_attempt_says_where_it_resumed_once(tmp_path):
    client = RecordingClient()
    progress = Progress(client)  # type: ignore[arg-type]
    progress.resumed(2, 4)
    for epoch in (3, 4):
        (tmp_path / "last.pt").write_bytes(b"checkpoint")
        progress.checkpoint(epoch, lambda: tmp_path / "last.pt")
        progress(epoch, 4, {})
    progress.flush()
    assert client.sent == [
        ("log", "info", "resumed from epoch 2 of 4 (last.pt of an earlier attempt)"),
        ("artifact", "last.pt"),
        ("progress", 3, 2),
        ("artifact", "last.pt"),
        ("progress", 4, None),
    ]


def test_a_checkpoint_that_does_not_get_through_does_not_stop_training(tmp_path):
    client = RecordingClient(upload_fails=True)
    progress = Progress(client)  # type: ignore[arg-type]
    (tmp_path / "last.pt").write_bytes(b"checkpoint")
    progress.checkpoint(1, lambda: tmp_path / "last.pt")
    progress(1, 2, {})
    progress.flush()
    assert client.sent == [("progress", 1, None)]


def test_a_checkpoint_uploads_while_training_goes_on_and_its_epoch_is_reported_after_it(tmp_path):
    """The file is handed over: the trainer may write the next checkpoint at its path at once, the upload
    still sends the one it was handed; and the epoch's report waits for it: a job that reported epoch N
    resumes after N."""
    uploading, release = threading.Event(), threading.Event()
    uploaded: list[bytes] = []

    class SlowUploads(RecordingClient):
        def upload_artifact(self, path, name):
            uploading.set()
            release.wait(5)
            uploaded.append(path.read_bytes())
            super().upload_artifact(path, name)

    client = SlowUploads()
    progress = Progress(client)  # type: ignore[arg-type]
    last = tmp_path / "last.pt"
    last.write_bytes(b"epoch 1")
    progress.checkpoint(1, lambda: last)
    progress(1, 2, {})
    assert uploading.wait(5)
    last.write_bytes(b"epoch 2")  # the next epoch's, while epoch 1's uploads
    assert client.sent == []  # epoch 1 is not reported before its checkpoint is stored
    release.set()
    progress.flush()
    assert uploaded == [b"epoch 1"]
    assert client.sent == [("artifact", "last.pt"), ("progress", 1, None)]
    assert [f.name for f in tmp_path.iterdir()] == ["last.pt"]  # the one handed over is gone once sent


def test_checkpoints_stay_within_their_share_of_training_time():
    # The first epoch always gets one; then one once its cost is at most the budget of the time since.
    assert checkpoint_due(now=5.0, last_at=None, last_cost=0.0, budget=0.1)
    assert not checkpoint_due(now=14.0, last_at=5.0, last_cost=1.0, budget=0.1)  # 1 s of 9 s: over 10%
    assert checkpoint_due(now=15.0, last_at=5.0, last_cost=1.0, budget=0.1)
    assert checkpoint_due(now=5.1, last_at=5.0, last_cost=30.0, budget=1.0)  # 1: every epoch
    assert not checkpoint_due(now=1e9, last_at=5.0, last_cost=1.0, budget=0.0)  # 0: only the first


def test_an_epoch_without_a_checkpoint_writes_none(tmp_path):
    client = RecordingClient()
    progress = Progress(client, checkpoint_budget=0.0)  # type: ignore[arg-type]
    written: list[int] = []

    def write(epoch: int) -> Path:
        written.append(epoch)
        (tmp_path / "last.pt").write_bytes(b"checkpoint")
        return tmp_path / "last.pt"

    for epoch in (1, 2, 3):
        progress.checkpoint(epoch, lambda epoch=epoch: write(epoch))
        progress(epoch, 3, {})
    progress.flush()
    assert written == [1]  # the trainer did not even save the skipped ones
    assert [entry[0] for entry in client.sent] == ["artifact", "progress", "progress", "progress"]
