from __future__ import annotations

import hashlib
import time
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from contracts import subjects
from contracts.events import JobEvent
from contracts.jobs import EventType, JobState
from services.api.models import Dataset, DatasetStatus
from services.api.read_model import VERDICT_DELIVERIES, ReadModelConsumer
from services.common.db import make_engine, make_sessionmaker
from services.common.storage import BadSignature, LocalStorage, UrlSigner, artifact_key

from .conftest import ApiServer, Project, eventually, job_reaches


async def test_read_model_follows_a_job_to_success(project: Project, submit, scheduler) -> None:
    job = await submit()
    events = scheduler(job)
    await events.start()
    running = await job_reaches(project.client, job["id"], state="RUNNING", attempt=1, version=3)
    assert running["updated_at"] >= job["created_at"]

    await events.emit(EventType.PROGRESS, JobState.RUNNING, epoch=1, epochs=2, metrics={"train_loss": 0.9})
    progressed = await job_reaches(project.client, job["id"], version=4)
    assert progressed["metrics"] == {"epoch": 1, "epochs": 2, "train_loss": 0.9}

    await events.emit(
        EventType.RETRYING, JobState.QUEUED, reason="trainer exited with code 1", next_attempt=2
    )
    retrying = await job_reaches(project.client, job["id"], version=5)
    assert retrying["state"] == "QUEUED"
    assert retrying["reason"] == "trainer exited with code 1"

    events.attempt = 2
    await events.emit(EventType.RUNNING, JobState.RUNNING)
    await events.emit(EventType.SUCCEEDED, JobState.SUCCEEDED, metrics={"val_accuracy": 0.75})
    done = await job_reaches(project.client, job["id"], state="SUCCEEDED")
    assert done["attempt"] == 2
    assert done["final_metrics"] == {"val_accuracy": 0.75}
    assert done["reason"] is None
    assert done["metrics"] == progressed["metrics"]


async def test_read_model_ignores_replayed_and_stale_events(project: Project, submit, scheduler) -> None:
    job = await submit()
    events = scheduler(job)
    await events.start()
    await events.emit(EventType.FAILED, JobState.FAILED, reason="no heartbeat for 60 s")
    await job_reaches(project.client, job["id"], state="FAILED", reason="no heartbeat for 60 s")
    # A replayed event (an older version, under a message id the stream has not seen) changes nothing.
    stale = scheduler(job)
    stale.version = 2
    await stale.emit(EventType.RUNNING, JobState.RUNNING, msg_id="replayed-by-hand")
    marker = await submit()
    marker_events = scheduler(marker)
    await marker_events.emit(EventType.SUBMITTED, JobState.PENDING)
    await job_reaches(project.client, marker["id"], version=1)  # the stale event was processed before this
    assert (await project.client.get(f"/v1/jobs/{job['id']}")).json()["state"] == "FAILED"


async def test_artifacts_are_listed_and_downloaded(
    project: Project, submit, scheduler, api_server: ApiServer
) -> None:
    job = await submit()
    content = b"checkpoint bytes " * 1000
    key = artifact_key(job["id"], "best.pt")
    storage = LocalStorage(api_server.settings.storage_dir, UrlSigner("unused", "http://unused"))

    async def chunks():  # type: ignore[no-untyped-def]
        yield content

    await storage.put_stream(key, chunks())
    digest = hashlib.sha256(content).hexdigest()
    events = scheduler(job)
    await events.start()
    await events.emit(
        EventType.ARTIFACT,
        JobState.RUNNING,
        name="best.pt",
        size=len(content),
        sha256=digest,
        storage_key=key,
    )
    await events.emit(
        EventType.ARTIFACT, JobState.RUNNING, name="results.csv", size=3, sha256="0" * 64,
        storage_key=artifact_key(job["id"], "results.csv"),
    )  # fmt: skip

    async def listed() -> list[dict[str, object]]:
        return list((await project.client.get(f"/v1/jobs/{job['id']}/artifacts")).json())

    await job_reaches(project.client, job["id"], version=5)
    items = await listed()
    assert [item["name"] for item in items] == ["best.pt", "results.csv"]
    assert items[0]["size"] == len(content)
    assert items[0]["sha256"] == digest

    response = await project.client.get(f"/v1/jobs/{job['id']}/artifacts/best.pt")
    assert response.status_code == 200
    assert response.content == content
    assert response.headers["content-type"] == "application/octet-stream"
    assert "best.pt" in response.headers["content-disposition"]
    missing_file = await project.client.get(f"/v1/jobs/{job['id']}/artifacts/results.csv")
    assert missing_file.status_code == 404
    unknown = await project.client.get(f"/v1/jobs/{job['id']}/artifacts/nope.pt")
    assert unknown.status_code == 404
    assert isinstance(response, httpx.Response)


async def test_an_artifact_has_a_short_lived_signed_download_url(
    project: Project, other_project: Project, submit, scheduler, api_server: ApiServer
) -> None:
    """What a browser follows (a link cannot carry the key): local storage's signed GET, for the artifact's
    key only, valid for `VTP_DOWNLOAD_URL_TTL` (the events service serves it, tested in tests/events)."""
    settings = api_server.settings
    job = await submit()
    key = artifact_key(job["id"], "best.pt")
    storage = LocalStorage(settings.storage_dir, UrlSigner("unused", "http://unused"))

    async def chunks():  # type: ignore[no-untyped-def]
        yield b"weights"

    await storage.put_stream(key, chunks())
    events = scheduler(job)
    await events.start()
    await events.emit(
        EventType.ARTIFACT, JobState.RUNNING, name="best.pt", size=7,
        sha256=hashlib.sha256(b"weights").hexdigest(), storage_key=key,
    )  # fmt: skip
    await events.emit(
        EventType.ARTIFACT, JobState.RUNNING, name="results.csv", size=3, sha256="0" * 64,
        storage_key=artifact_key(job["id"], "results.csv"),
    )  # fmt: skip
    await job_reaches(project.client, job["id"], version=5)

    before = datetime.now(UTC)
    response = await project.client.get(f"/v1/jobs/{job['id']}/artifacts/best.pt/url")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"url", "expires_at"}
    url = urlsplit(answer["url"])
    assert f"{url.scheme}://{url.netloc}" == settings.events_url
    assert url.path == f"/v1/storage/{key}"
    query = {name: values[0] for name, values in parse_qs(url.query).items()}
    assert query["method"] == "GET"
    expires = int(query["expires"])
    ttl = settings.download_url_ttl
    assert ttl == 300
    assert before.timestamp() + ttl - 2 <= expires <= time.time() + ttl
    expires_at = datetime.fromisoformat(answer["expires_at"])
    assert abs(expires_at.timestamp() - expires) < 2
    signer = UrlSigner(settings.storage_signing_key, settings.events_url)
    signer.verify(key, "GET", expires, query["signature"])  # valid now, for this key and GET
    with pytest.raises(BadSignature):
        signer.verify(key, "PUT", expires, query["signature"])
    with pytest.raises(BadSignature):
        signer.verify(key, "GET", expires, query["signature"], now=expires + 1)

    # Like the download: a recorded artifact whose file is missing, an unknown one, another project's job.
    missing_file = await project.client.get(f"/v1/jobs/{job['id']}/artifacts/results.csv/url")
    assert missing_file.status_code == 404
    assert missing_file.json()["error"] == "not_found"
    assert (await project.client.get(f"/v1/jobs/{job['id']}/artifacts/nope.pt/url")).status_code == 404
    assert (await other_project.client.get(f"/v1/jobs/{job['id']}/artifacts/best.pt/url")).status_code == 404
    async with httpx.AsyncClient(base_url=api_server.url) as anonymous:
        assert (await anonymous.get(f"/v1/jobs/{job['id']}/artifacts/best.pt/url")).status_code == 401


async def test_an_event_that_can_never_apply_does_not_hold_back_the_ones_behind_it(
    project: Project, submit, scheduler, js
) -> None:
    job = await submit()
    # An event of a job of a project this database does not know (as after a database was restored or
    # replaced): it is terminated, never retried forever.
    orphan = scheduler({"id": "0" * 32, "name": None, "trace_id": "1" * 32})
    orphan.project_id = "no-such-project"
    await orphan.emit(EventType.SUBMITTED, JobState.PENDING, name=None)
    events = scheduler(job)
    await events.start()
    await job_reaches(project.client, job["id"], state="RUNNING", version=3)

    async def nothing_left_to_redeliver() -> bool:
        info = await js.consumer_info(subjects.EVENTS_STREAM, subjects.API_READ_MODEL_CONSUMER)
        return info.num_ack_pending == 0 and info.num_pending == 0

    await eventually(nothing_left_to_redeliver)


class RecordedMessage:
    """A delivered message as the consumer sees it, recording how it was settled."""

    def __init__(self, event: JobEvent, deliveries: int = 1) -> None:
        self.subject = subjects.event_subject(event.job_id, event.type.value)
        self.data = event.model_dump_json().encode()
        self.metadata = SimpleNamespace(num_delivered=deliveries)
        self.settled: list[str] = []

    async def ack(self) -> None:
        self.settled.append("ack")

    async def term(self) -> None:
        self.settled.append("term")

    async def nak(self, delay: float | None = None) -> None:
        self.settled.append("nak")


def job_event(job: dict, event_type: EventType, state: JobState, version: int, **payload: object) -> JobEvent:
    return JobEvent(
        job_id=job["id"],
        project_id=job["project_id"],
        type=event_type,
        state=state,
        attempt=1,
        version=version,
        time=datetime.now(UTC),
        trace_id=job["trace_id"],
        payload=payload,
    )


async def test_one_event_that_can_never_apply_does_not_fail_its_batch(
    project: Project, submit, js, postgres_url: str
) -> None:
    job = {**(await submit()), "project_id": project.id}
    lost_id = uuid.uuid4().hex
    orphan = {**job, "id": "0" * 32, "project_id": "no-such-project"}
    lost = {**job, "id": lost_id}

    batch = [
        RecordedMessage(job_event(job, EventType.SUBMITTED, JobState.PENDING, 1)),
        RecordedMessage(job_event(orphan, EventType.SUBMITTED, JobState.PENDING, 1)),
        RecordedMessage(job_event(job, EventType.QUEUED, JobState.QUEUED, 2)),
        RecordedMessage(job_event(job, EventType.QUEUED, JobState.QUEUED, 2)),  # a redelivery
        # A job whose submit commit was lost: its job.submitted event makes the row.
        RecordedMessage(job_event(lost, EventType.SUBMITTED, JobState.PENDING, 1)),
    ]
    engine = make_engine(postgres_url, pool_size=1)
    try:
        consumer = ReadModelConsumer(engine)
        await consumer.handle(batch)  # type: ignore[arg-type]
    finally:
        await engine.dispose()
    assert [message.settled for message in batch] == [["ack"], ["term"], ["ack"], ["ack"], ["ack"]]
    stored = (await project.client.get(f"/v1/jobs/{job['id']}")).json()
    assert (stored["state"], stored["version"]) == ("QUEUED", 2)
    recovered = (await project.client.get(f"/v1/jobs/{lost_id}")).json()
    assert (recovered["state"], recovered["version"]) == ("PENDING", 1)
    assert await consumer.caught_up(job["id"], 2, within=0)


async def test_events_of_one_job_in_a_batch_apply_as_one_sequence(
    project: Project, submit, js, postgres_url: str
) -> None:
    job = {**(await submit()), "project_id": project.id}
    engine = make_engine(postgres_url, pool_size=1)
    consumer = ReadModelConsumer(engine)
    try:
        # Out of order, as after a redelivery: applied in version order.
        first = [
            RecordedMessage(job_event(job, EventType.SUBMITTED, JobState.PENDING, 1)),
            RecordedMessage(job_event(job, EventType.RUNNING, JobState.RUNNING, 3)),
            RecordedMessage(job_event(job, EventType.QUEUED, JobState.QUEUED, 2)),
        ]
        await consumer.handle(first)  # type: ignore[arg-type]
        running = (await project.client.get(f"/v1/jobs/{job['id']}")).json()
        assert (running["state"], running["version"]) == ("RUNNING", 3)

        # Partly applied already (version 3 is stored): the rest still applies, and nothing goes back.
        metrics = {"train_loss": 0.5}
        second = [
            RecordedMessage(job_event(job, EventType.RUNNING, JobState.RUNNING, 3)),
            RecordedMessage(
                job_event(job, EventType.PROGRESS, JobState.RUNNING, 4, epoch=1, epochs=2, metrics=metrics)
            ),
            RecordedMessage(job_event(job, EventType.RETRYING, JobState.QUEUED, 5, reason="lost the node")),
        ]
        await consumer.handle(second)  # type: ignore[arg-type]
    finally:
        await engine.dispose()
    assert all(message.settled == ["ack"] for message in first + second)
    retrying = (await project.client.get(f"/v1/jobs/{job['id']}")).json()
    assert (retrying["state"], retrying["version"], retrying["reason"]) == ("QUEUED", 5, "lost the node")
    assert retrying["metrics"] == {"epoch": 1, "epochs": 2, "train_loss": 0.5}


async def test_a_batch_of_many_jobs_applies_each_jobs_changes_only_to_it(
    project: Project, submit, js, postgres_url: str
) -> None:
    queued, progressed, succeeded, failed = [{**(await submit()), "project_id": project.id} for _ in range(4)]
    engine = make_engine(postgres_url, pool_size=1)
    consumer = ReadModelConsumer(engine)
    try:
        # Different columns change per job (metrics, final metrics, reason), interleaved as on the stream.
        batch = [
            RecordedMessage(job_event(job, EventType.SUBMITTED, JobState.PENDING, 1))
            for job in (queued, progressed, succeeded, failed)
        ] + [
            RecordedMessage(job_event(queued, EventType.QUEUED, JobState.QUEUED, 2)),
            RecordedMessage(job_event(progressed, EventType.RUNNING, JobState.RUNNING, 2)),
            RecordedMessage(job_event(succeeded, EventType.RUNNING, JobState.RUNNING, 2)),
            RecordedMessage(
                job_event(
                    progressed,
                    EventType.PROGRESS,
                    JobState.RUNNING,
                    3,
                    epoch=1,
                    epochs=3,
                    metrics={"loss": 2},
                )
            ),
            RecordedMessage(
                job_event(
                    succeeded, EventType.SUCCEEDED, JobState.SUCCEEDED, 3, metrics={"val_accuracy": 0.5}
                )
            ),
            RecordedMessage(job_event(failed, EventType.FAILED, JobState.FAILED, 2, reason="out of memory")),
        ]
        await consumer.handle(batch)  # type: ignore[arg-type]
    finally:
        await engine.dispose()
    assert all(message.settled == ["ack"] for message in batch)

    async def stored(job: dict) -> tuple:
        row = (await project.client.get(f"/v1/jobs/{job['id']}")).json()
        return row["state"], row["version"], row["metrics"], row["final_metrics"], row["reason"]

    assert await stored(queued) == ("QUEUED", 2, None, None, None)
    assert await stored(progressed) == ("RUNNING", 3, {"epoch": 1, "epochs": 3, "loss": 2}, None, None)
    assert await stored(succeeded) == ("SUCCEEDED", 3, None, {"val_accuracy": 0.5}, None)
    assert await stored(failed) == ("FAILED", 2, None, None, "out of memory")
    for job, version in ((queued, 2), (progressed, 3), (succeeded, 3), (failed, 2)):
        assert await consumer.caught_up(job["id"], version, within=0)


async def test_a_validation_verdict_that_overtakes_its_datasets_commit_waits_for_it(
    project: Project, js, postgres_url: str
) -> None:
    validation = {"id": uuid.uuid4().hex, "project_id": project.id, "trace_id": "1" * 32}
    submitted = job_event(
        validation, EventType.SUBMITTED, JobState.PENDING, 1, spec={"framework": "validation"}
    )
    verdict = job_event(
        validation,
        EventType.SUCCEEDED,
        JobState.SUCCEEDED,
        2,
        metrics={"status": "READY", "problem_count": 0},
    )
    engine = make_engine(postgres_url, pool_size=1)
    consumer = ReadModelConsumer(engine)
    try:
        early = [RecordedMessage(submitted), RecordedMessage(verdict)]
        await consumer.handle(early)  # type: ignore[arg-type]
        assert [message.settled for message in early] == [["ack"], ["nak"]]  # the verdict comes again

        dataset_id = uuid.uuid4().hex
        async with make_sessionmaker(engine)() as session, session.begin():
            session.add(
                Dataset(
                    id=dataset_id,
                    project_id=project.id,
                    name=f"late-{dataset_id[:8]}",
                    version=1,
                    format="imagefolder",
                    filename="late.zip",
                    storage_key=f"datasets/{dataset_id}/late.zip",
                    size=1,
                    sha256="0" * 64,
                    status=DatasetStatus.VALIDATING.value,
                    problem_count=0,
                    validation_job_id=validation["id"],
                    created_at=datetime.now(UTC),
                )
            )
        again = RecordedMessage(verdict, deliveries=2)
        await consumer.handle([again])  # type: ignore[arg-type]
        assert again.settled == ["ack"]

        orphan = {**validation, "id": uuid.uuid4().hex}
        await consumer.handle(
            [
                RecordedMessage(
                    job_event(
                        orphan, EventType.SUBMITTED, JobState.PENDING, 1, spec={"framework": "validation"}
                    )
                )
            ]
        )  # type: ignore[arg-type]
        never = RecordedMessage(
            job_event(orphan, EventType.FAILED, JobState.FAILED, 2, reason="x"), deliveries=VERDICT_DELIVERIES
        )
        await consumer.handle([never])  # type: ignore[arg-type]
        assert never.settled == ["term"]  # no dataset ever registered it: dropped, not retried forever
    finally:
        await engine.dispose()
    ready = (await project.client.get(f"/v1/datasets/{dataset_id}")).json()
    assert ready["status"] == "READY"
