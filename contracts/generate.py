"""Generate the published contract files from the Pydantic models: one JSON Schema per message under
`contracts/schemas/v1/` and an AsyncAPI 3.0 document (`contracts/asyncapi.json`) describing the NATS subjects.

    python -m contracts.generate           # write the files
    python -m contracts.generate --check   # exit 1 if the checked-in files differ from the models

The checked-in files are what other systems rely on; `tests/contracts/test_compatibility.py` refuses a change
that would break them within a version.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from contracts import callbacks, commands, credentials, dispatch, events, reports, subjects
from contracts.jobs import EventType

CONTRACTS_DIR = Path(__file__).resolve().parent
SCHEMAS_DIR = CONTRACTS_DIR / "schemas" / subjects.VERSION
ASYNCAPI_PATH = CONTRACTS_DIR / "asyncapi.json"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Every published message. A new message model must be added here (a test checks that none is missed).
NATS_MESSAGES: tuple[type[BaseModel], ...] = (
    commands.SubmitJob,
    commands.CancelJob,
    dispatch.DispatchJob,
    reports.HeartbeatReport,
    reports.ProgressReport,
    reports.LogReport,
    reports.ArtifactReport,
    reports.DoneReport,
    events.JobEvent,
    credentials.TakeOver,
    credentials.Renewal,
    credentials.Grant,
)
HTTP_CALLBACK_BODIES: tuple[type[BaseModel], ...] = (
    callbacks.HeartbeatCallback,
    callbacks.HeartbeatAnswer,
    callbacks.ProgressCallback,
    callbacks.LogCallback,
    callbacks.ArtifactUploadRequest,
    callbacks.ArtifactUploadAnswer,
    callbacks.ArtifactCompleteCallback,
    callbacks.DoneCallback,
)
MESSAGES = NATS_MESSAGES + HTTP_CALLBACK_BODIES


def dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def message_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


# --- AsyncAPI -------------------------------------------------------------------------------------

JOB_ID_PARAMETER = {
    "description": "The job's id (uuid4 hex).",
    "examples": ["5f0c3c1d2e8b4d0f9a3b7c6d5e4f3a2b"],
}
POOL_PARAMETER = {"description": "The trainer pool the job runs on.", "examples": ["local", "gpu-a100"]}
MESSAGE_HEADERS = {
    "type": "object",
    "properties": {
        "Nats-Msg-Id": {
            "type": "string",
            "description": "Idempotency key: JetStream drops a duplicate within the duplicate window.",
        },
        "traceparent": {"type": "string", "description": "W3C trace context of the job's trace."},
    },
}


def _channel(address: str, message: type[BaseModel], description: str, **parameters: Any) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "address": address,
        "description": description,
        "messages": {message.__name__: {"$ref": f"#/components/messages/{message.__name__}"}},
    }
    if parameters:
        channel["parameters"] = parameters
    return channel


def _channels() -> dict[str, dict[str, Any]]:
    event_types = [t.value.removeprefix("job.") for t in EventType]
    channels = {
        "jobEvents": _channel(
            subjects.event_subject("{job_id}", "{event}"),
            events.JobEvent,
            f"Every job's history (stream {subjects.EVENTS_STREAM}, kept for a year, replayable). "
            "Subscribe to "
            f"`{subjects.EVENTS_ALL}` for all jobs or `{subjects.job_events_filter('<job_id>')}` for one.",
            job_id=JOB_ID_PARAMETER,
            event={"description": "The event type without its `job.` prefix.", "enum": event_types},
        ),
        "submitJob": _channel(
            subjects.SUBMIT_JOB,
            commands.SubmitJob,
            f"Command api -> scheduler (stream {subjects.COMMANDS_STREAM}, work queue).",
        ),
        "cancelJob": _channel(
            subjects.CANCEL_JOB,
            commands.CancelJob,
            f"Command api -> scheduler (stream {subjects.COMMANDS_STREAM}, work queue).",
        ),
        "dispatch": _channel(
            subjects.dispatch_subject("{pool}"),
            dispatch.DispatchJob,
            f"Work for a pool's runners (stream {subjects.DISPATCH_STREAM}); one durable pull consumer "
            f"`{subjects.pool_consumer('<pool>')}` per pool.",
            pool=POOL_PARAMETER,
        ),
        "takeOver": _channel(
            subjects.take_over_subject("{pool}"),
            credentials.TakeOver,
            "Request runner -> scheduler (core NATS), answered with a `Grant`: new credentials for a job "
            "whose dispatch's expire soon.",
            pool=POOL_PARAMETER,
        ),
        "renewal": _channel(
            subjects.CREDENTIALS_RENEW,
            credentials.Renewal,
            "Request events -> scheduler (core NATS), answered with a `Grant`: a running trainer's new "
            "token.",
        ),
    }
    for kind, model in reports.REPORT_KINDS.items():
        channels[f"{kind}Report"] = _channel(
            subjects.report_subject("{job_id}", kind),
            model,
            f"Trainer report events -> scheduler (stream {subjects.REPORTS_STREAM}).",
            job_id=JOB_ID_PARAMETER,
        )
    return channels


def _operations(channels: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Described from the point of view of an outside system: it receives job events. The internal channels
    are listed as the platform's own sends, for completeness."""
    operations = {}
    for name, channel in channels.items():
        (message_name,) = channel["messages"]
        action = "receive" if name == "jobEvents" else "send"
        operations[f"{action}{name[0].upper()}{name[1:]}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{name}"},
            "messages": [{"$ref": f"#/channels/{name}/messages/{message_name}"}],
        }
    return operations


def asyncapi_document() -> dict[str, Any]:
    _, top = models_json_schema(
        [(model, "validation") for model in NATS_MESSAGES], ref_template="#/components/schemas/{model}"
    )
    messages = {
        model.__name__: {
            "name": model.__name__,
            "title": model.__name__,
            "summary": (model.__doc__ or model.__name__).strip().splitlines()[0],
            "contentType": "application/json",
            "headers": MESSAGE_HEADERS,
            "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
        }
        for model in NATS_MESSAGES
    }
    channels = _channels()
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Vision Training Platform",
            "version": f"{subjects.VERSION}",
            "description": "NATS JetStream subjects of the platform. Other systems subscribe to job events "
            f"(`{subjects.EVENTS_ALL}`). Within {subjects.VERSION} messages only grow by optional fields; "
            "consumers must ignore unknown fields.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "embedded": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "description": "The embedded nats-server of `vtp up` (its port is chosen at start-up).",
            }
        },
        "channels": channels,
        "operations": _operations(channels),
        "components": {"messages": messages, "schemas": top["$defs"]},
    }


# --- files ----------------------------------------------------------------------------------------


def expected_files() -> dict[Path, str]:
    files = {SCHEMAS_DIR / f"{model.__name__}.json": dump(message_schema(model)) for model in MESSAGES}
    files[ASYNCAPI_PATH] = dump(asyncapi_document())
    return files


def stale_files() -> list[Path]:
    """Files that are missing or differ from the models, plus schema files no model produces any more."""
    expected = expected_files()
    stale = [path for path, text in expected.items() if not path.exists() or path.read_text() != text]
    stale += sorted(p for p in SCHEMAS_DIR.glob("*.json") if p not in expected)
    return stale


def write() -> list[Path]:
    """Write the files. A schema no model produces any more is left in place: removing a published schema
    is a breaking change the compatibility test reports, not something to do silently."""
    SCHEMAS_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for path, text in expected_files().items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the checked-in files are out of date")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"out of date: {path.relative_to(CONTRACTS_DIR.parent)}", file=sys.stderr)
        if stale:
            print("run `python -m contracts.generate` and commit the result", file=sys.stderr)
        return 1 if stale else 0
    for path in write():
        print(f"wrote {path.relative_to(CONTRACTS_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
