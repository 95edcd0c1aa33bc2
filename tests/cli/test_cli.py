"""CLI configuration, argument parsing, error rendering and event following, against a tiny real HTTP
server."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from vtp.cli import main, parse_args
from vtp.client import ApiClient, ApiError, ConfigError, load_config, parse_sse, read_env_file, write_env_file
from vtp.commands.jobs import job_request
from vtp.commands.train import train_request
from vtp.watch import watch_job

KEY = "vtp_test_key"


class FakeApi(BaseHTTPRequestHandler):
    """Answers from `routes`: (method, path) -> (status, content type, body). Records requests."""

    routes: dict[tuple[str, str], tuple[int, str, bytes]] = {}
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        type(self).seen.append((self.command, self.path, dict(self.headers), body))
        # Signed storage URLs (`/storage/...`) carry their own signature, never the API key.
        signed = self.path.startswith("/storage/")
        if not signed and self.headers.get("Authorization") != f"Bearer {KEY}":
            status, content_type, payload = 401, "application/json", b'{"error":"unauthorized","detail":null}'
        else:
            route = self.routes.get((self.command, self.path.split("?")[0]))
            status, content_type, payload = route or (404, "application/json", b'{"detail":"Not Found"}')
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeApi]]:
    handler = type("Api", (FakeApi,), {"routes": {}, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("VTP_API_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("VTP_API_KEY", KEY)
    yield handler
    server.shutdown()
    server.server_close()


def as_json(status: int, body: Any) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(body).encode()


def sse(*events: tuple[int, str, dict[str, Any]]) -> tuple[int, str, bytes]:
    text = ": keep-alive\n\n" + "".join(
        f"id: {position}\nevent: {kind}\ndata: {json.dumps(data)}\n\n" for position, kind, data in events
    )
    return 200, "text/event-stream", text.encode()


# --- configuration --------------------------------------------------------------------------------


def test_env_file_parsing(tmp_path: Path) -> None:
    path = tmp_path / "client.env"
    path.write_text(
        "# written by vtp up\n\nVTP_API_URL=http://127.0.0.1:8000\nexport VTP_API_KEY='k=1'\nnoise\n"
    )
    assert read_env_file(path) == {"VTP_API_URL": "http://127.0.0.1:8000", "VTP_API_KEY": "k=1"}


def test_env_file_is_written_private(tmp_path: Path) -> None:
    path = tmp_path / "d" / "client.env"
    write_env_file(path, {"VTP_API_URL": "http://x", "VTP_API_KEY": "secret"})
    assert read_env_file(path) == {"VTP_API_URL": "http://x", "VTP_API_KEY": "secret"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_config_from_environment_wins_over_client_env(tmp_path: Path) -> None:
    write_env_file(tmp_path / "client.env", {"VTP_API_URL": "http://file:1/", "VTP_API_KEY": "file-key"})
    assert load_config(tmp_path, {}).url == "http://file:1"
    assert load_config(tmp_path, {}).key == "file-key"
    both = load_config(tmp_path, {"VTP_API_URL": "http://env:2", "VTP_API_KEY": "env-key"})
    assert (both.url, both.key, both.source) == ("http://env:2", "env-key", "environment")
    # A variable the environment leaves out comes from the file.
    assert load_config(tmp_path, {"VTP_API_KEY": "env-key"}).url == "http://file:1"


def test_missing_config_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"set VTP_API_URL and VTP_API_KEY, or start the platform with `vtp up`"
    ):
        load_config(tmp_path, {})


# --- argument parsing -----------------------------------------------------------------------------


def test_data_dir_before_or_after_the_subcommand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VTP_DATA_DIR", raising=False)
    assert parse_args(["jobs", "list"]).data_dir == Path(".vtp")
    assert parse_args(["--data-dir", "/a", "jobs", "list"]).data_dir == Path("/a")
    assert parse_args(["jobs", "list", "--data-dir", "/b"]).data_dir == Path("/b")
    monkeypatch.setenv("VTP_DATA_DIR", "/c")
    assert parse_args(["jobs", "list"]).data_dir == Path("/c")


def test_submit_sends_only_the_hyperparameters_given() -> None:
    args = parse_args(
        ["jobs", "submit", "--model", "resnet18", "--dataset", "d1", "--epochs", "3", "--name", "n"]
    )
    assert job_request(args) == {
        "framework": "timm",
        "task": "classify",
        "model": "resnet18",
        "dataset": "d1",
        "pool": "local",
        "hyperparameters": {"epochs": 3},
        "name": "n",
    }


def test_submit_sends_the_weights_and_exports_asked_for() -> None:
    submit = ["jobs", "submit", "--model", "resnet18", "--dataset", "d1"]
    args = parse_args(
        [*submit, "--weights", "job:abc/model.pt", "--export", "onnx", "--export", "torchscript"]
    )
    body = job_request(args)
    assert (body["weights"], body["export"]) == ("job:abc/model.pt", ["onnx", "torchscript"])
    assert "export" not in job_request(parse_args(["jobs", "submit", "--model", "m", "--dataset", "d"]))


def test_an_unknown_export_format_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["jobs", "submit", "--model", "m", "--dataset", "d", "--export", "tflite"])
    assert "invalid choice: 'tflite'" in capsys.readouterr().err


def test_train_infers_the_task_from_the_model_yaml() -> None:
    arguments = ["--set", "lr0=0.01", "--set", "optimizer=AdamW", "--set", "cos_lr=true"]
    args = parse_args(
        [
            "train",
            "yolo11n-seg.yaml",
            "--data",
            "d1",
            "--epochs",
            "2",
            "--imgsz",
            "64",
            *arguments,
            "--pool",
            "gpu",
        ]
    )
    assert train_request(args) == {
        "framework": "ultralytics",
        "task": "segment",
        "model": "yolo11n-seg.yaml",
        "dataset": "d1",
        "pool": "gpu",
        "hyperparameters": {"lr0": 0.01, "optimizer": "AdamW", "cos_lr": True, "epochs": 2, "imgsz": 64},
    }
    assert train_request(parse_args(["train", "yolov8s-cls.yaml", "--data", "d1"]))["task"] == "classify"
    assert train_request(parse_args(["train", "yolo11n.yaml", "--data", "d1"]))["task"] == "detect"


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["train", "yolo11n.pt", "--data", "d1"], "error: 'yolo11n.pt' is not an Ultralytics model YAML"),
        (
            ["train", "yolo11n.yaml", "--data", "d1", "--set", "lr0"],
            "error: --set takes NAME=VALUE, not 'lr0'",
        ),
    ],
)
def test_train_refuses_what_it_cannot_send(
    argv: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 1
    assert capsys.readouterr().err.startswith(error)


def test_unknown_state_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["jobs", "list", "--state", "sleeping"])
    assert exited.value.code == 2
    assert parse_args(["jobs", "list", "--state", "running"]).state == "RUNNING"


# --- errors ---------------------------------------------------------------------------------------


def test_api_error_renders_as_one_line() -> None:
    ours = httpx.Response(409, json={"error": "job_terminal", "detail": "job j1 is already CANCELLED"})
    assert str(ApiError.from_response(ours)) == "job_terminal (HTTP 409): job j1 is already CANCELLED"
    structured = httpx.Response(
        422, json={"error": "validation_error", "detail": [{"loc": ["body", "model"]}]}
    )
    assert (
        str(ApiError.from_response(structured)) == 'validation_error (HTTP 422): [{"loc":["body","model"]}]'
    )
    framework = httpx.Response(404, json={"detail": "Not Found"})
    assert str(ApiError.from_response(framework)) == "Not Found (HTTP 404): Not Found"
    plain = httpx.Response(502, text="bad gateway\nmore")
    assert str(ApiError.from_response(plain)) == "Bad Gateway (HTTP 502): bad gateway"


def test_api_error_exits_non_zero_with_one_line(
    api: type[FakeApi], capsys: pytest.CaptureFixture[str]
) -> None:
    api.routes[("GET", "/v1/jobs/nope")] = as_json(404, {"error": "job_not_found", "detail": "no job nope"})
    assert main(["jobs", "show", "nope"]) == 1
    err = capsys.readouterr().err
    assert err == "error: job_not_found (HTTP 404): no job nope\n"


def test_unreachable_api_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vtp.embedded.ports import free_port

    monkeypatch.setenv("VTP_API_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("VTP_API_KEY", KEY)
    assert main(["jobs", "list"]) == 1
    assert capsys.readouterr().err.startswith("error: cannot reach the API at http://127.0.0.1:")


# --- commands against the fake API ----------------------------------------------------------------


def test_submit_posts_the_job_with_bearer_key(api: type[FakeApi], capsys: pytest.CaptureFixture[str]) -> None:
    api.routes[("POST", "/v1/jobs")] = as_json(202, {"id": "j1", "state": "PENDING"})
    assert main(["jobs", "submit", "--model", "resnet18", "--dataset", "d1", "--idempotency-key", "k1"]) == 0
    method, _, headers, body = api.seen[-1]
    assert method == "POST"
    assert headers["Idempotency-Key"] == "k1"
    assert json.loads(body)["model"] == "resnet18"
    assert "submitted job j1 (PENDING)" in capsys.readouterr().out


def test_train_watch_submits_a_yolo_job_and_follows_it(
    api: type[FakeApi], capsys: pytest.CaptureFixture[str]
) -> None:
    api.routes[("POST", "/v1/jobs")] = as_json(202, {"id": "j1", "state": "PENDING"})
    progress = {"epoch": 1, "epochs": 1, "metrics": {"mAP50-95": 0.25, "precision": 0.5}}
    api.routes[("GET", "/v1/jobs/j1/events")] = sse(
        (1, "job.progress", {"state": "RUNNING", "attempt": 1, "payload": progress}),
        (2, "job.succeeded", {"state": "SUCCEEDED", "attempt": 1, "payload": {"metrics": {"epochs": 1}}}),
    )
    assert main(["train", "yolo11n.yaml", "--data", "d1", "--epochs", "1", "--watch"]) == 0
    posted = json.loads(next(body for method, _, _, body in api.seen if method == "POST"))
    assert (posted["framework"], posted["task"], posted["hyperparameters"]) == (
        "ultralytics",
        "detect",
        {"epochs": 1},
    )
    out = capsys.readouterr().out
    assert "submitted job j1 (PENDING)" in out
    assert "mAP50-95 0.2500" in out


def dataset(status: str, **fields: Any) -> dict[str, Any]:
    shown = {"id": "d1", "name": "shapes", "version": 2, "status": status, "problems": [], "problem_count": 0}
    return shown | fields


def signed_upload(api: type[FakeApi], validated: dict[str, Any]) -> None:
    """The answers to an upload through a signed URL (on the fake itself), then the dataset validated."""
    storage_url = f"{os.environ['VTP_API_URL']}/storage/u1?signature=s"
    ticket = {"upload_id": "u1", "url": storage_url, "max_bytes": 10**6, "expires_at": "2030-01-01T00:00:00Z"}
    api.routes[("POST", "/v1/datasets/uploads")] = as_json(201, ticket)
    api.routes[("PUT", "/storage/u1")] = as_json(201, {"key": "uploads/p/u1", "size": 1})
    api.routes[("POST", "/v1/datasets")] = as_json(201, dataset("VALIDATING", created=True))
    api.routes[("GET", "/v1/datasets/d1")] = as_json(200, validated)


def test_upload_zips_a_folder_puts_it_to_its_upload_url_and_waits_until_ready(
    api: type[FakeApi], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = {
        "classes": ["circle"],
        "splits": {"train": {"images": 1, "images_per_class": {"circle": 1}}, "val": {"images": 0}},
    }
    signed_upload(api, dataset("READY", summary=summary))
    folder = tmp_path / "my shapes"
    (folder / "train" / "circle").mkdir(parents=True)
    (folder / "train" / "circle" / "0.png").write_bytes(b"not really a png")
    assert main(["datasets", "upload", str(folder)]) == 0
    requests = {(method, path.split("?")[0]): (headers, body) for method, path, headers, body in api.seen}
    headers, archive = requests[("PUT", "/storage/u1")]
    assert "Authorization" not in headers
    assert b"train/circle/0.png" in archive  # the zip's central directory names the file
    _, finalize = requests[("POST", "/v1/datasets")]
    assert json.loads(finalize) == {
        "name": "my-shapes",
        "format": "imagefolder",
        "upload_id": "u1",
        "filename": "my shapes.zip",
    }
    out = capsys.readouterr().out
    assert "uploaded dataset shapes:2 (d1)" in out
    assert "dataset shapes:2 (d1) is READY" in out
    assert "train: 1 images" in out


def test_a_rejected_upload_prints_its_first_problems_and_exits_1(
    api: type[FakeApi], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    problems = [{"file": "labels/train/0.txt", "line": 2, "message": "class id 7 is out of range"}]
    signed_upload(api, dataset("REJECTED", problems=problems, problem_count=1))
    archive = tmp_path / "shapes.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    assert main(["datasets", "upload", str(archive), "--format", "yolo-detect"]) == 1
    out = capsys.readouterr().out
    assert "is REJECTED" in out
    assert "labels/train/0.txt:2: class id 7 is out of range" in out


def test_events_print_until_the_terminal_event(
    api: type[FakeApi], capsys: pytest.CaptureFixture[str]
) -> None:
    api.routes[("GET", "/v1/jobs/j1/events")] = sse(
        (1, "job.submitted", {"job_id": "j1", "state": "PENDING", "attempt": 1, "payload": {}}),
        (5, "job.succeeded", {"job_id": "j1", "state": "SUCCEEDED", "attempt": 1, "payload": {}}),
    )
    assert main(["jobs", "events", "j1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[:2] for line in lines] == [["1", "job.submitted"], ["5", "job.succeeded"]]


def test_watch_folds_progress_and_returns_the_final_state(
    api: type[FakeApi], capsys: pytest.CaptureFixture[str]
) -> None:
    progress = {"epoch": 2, "epochs": 3, "metrics": {"train_loss": 0.5, "val_accuracy": 0.75}}
    api.routes[("GET", "/v1/jobs/j1/events")] = sse(
        (1, "job.queued", {"state": "QUEUED", "attempt": 1, "payload": {}}),
        (2, "job.progress", {"state": "RUNNING", "attempt": 1, "payload": progress}),
        (
            3,
            "job.failed",
            {"state": "FAILED", "attempt": 1, "payload": {"reason": "trainer exited with code 1"}},
        ),
    )
    with ApiClient(load_config(Path("unused"))) as client:
        view = watch_job(client, "j1")
    assert (view.state, view.epoch, view.epochs, view.reason) == (
        "FAILED",
        2,
        3,
        "trainer exited with code 1",
    )
    assert "epoch 2/3" in capsys.readouterr().out
    assert main(["jobs", "watch", "j1"]) == 1  # a job that did not succeed is a failed watch


def test_sse_parser_joins_data_lines_and_skips_comments() -> None:
    lines = iter([": ping", "", "id: 7", "event: job.log", 'data: {"a":', "data: 1}", "", "id: 8", ""])
    assert [(e.id, e.event, e.data) for e in parse_sse(lines)] == [("7", "job.log", {"a": 1})]


def test_a_dropped_event_stream_resumes_after_the_last_event(api: type[FakeApi]) -> None:
    first = sse((1, "job.queued", {"state": "QUEUED"}), (2, "job.running", {"state": "RUNNING"}))
    rest = sse((3, "job.succeeded", {"state": "SUCCEEDED"}))
    original = api._answer

    def answer(handler: FakeApi) -> None:
        resumed = handler.headers.get("Last-Event-ID") == "2"
        handler.routes[("GET", "/v1/jobs/j1/events")] = rest if resumed else first
        original(handler)

    api.do_GET = answer  # type: ignore[method-assign]
    with ApiClient(load_config(Path("unused"))) as client:
        events = list(client.events("j1"))
    assert [e.id for e in events] == ["1", "2", "3"]
    assert [seen[2].get("Last-Event-ID") for seen in api.seen] == [None, "2"]
