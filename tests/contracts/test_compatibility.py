"""The published v1 contracts only grow by optional fields, and the checked-in files match the models."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from schema_compat import breaking_changes

from contracts import generate
from contracts.dispatch import DispatchJob

REPO = Path(generate.__file__).resolve().parent.parent

PUBLISHED = sorted(generate.SCHEMAS_DIR.glob("*.json"))


def published_versions(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The checked-in schema, and the committed one when git knows it (so regenerating the files locally
    cannot hide a breaking change from this test)."""
    versions = [("checked-in", json.loads(path.read_text()))]
    relative = path.relative_to(REPO).as_posix()
    try:
        committed = subprocess.run(
            ["git", "show", f"HEAD:{relative}"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return versions
    versions.append(("committed", json.loads(committed)))
    return versions


def test_every_message_has_a_published_schema() -> None:
    assert {p.stem for p in PUBLISHED} >= {m.__name__ for m in generate.MESSAGES}


@pytest.mark.parametrize("path", PUBLISHED, ids=lambda p: p.stem)
def test_published_schema_is_not_broken(path: Path) -> None:
    models = {model.__name__: model for model in generate.MESSAGES}
    assert path.stem in models, f"{path.stem} was published in v1 and may not be removed"
    current = generate.message_schema(models[path.stem])
    for label, published in published_versions(path):
        problems = breaking_changes(published, current)
        assert not problems, f"{path.stem} breaks its {label} v1 schema:\n" + "\n".join(problems)


def test_asyncapi_keeps_every_published_channel() -> None:
    published = json.loads(generate.ASYNCAPI_PATH.read_text())
    current = generate.asyncapi_document()
    addresses = {c["address"] for c in current["channels"].values()}
    for name, channel in published["channels"].items():
        assert channel["address"] in addresses, f"channel {name} ({channel['address']}) was removed"


def test_generated_files_are_up_to_date() -> None:
    stale = generate.stale_files()
    assert not stale, f"run `python -m contracts.generate`; out of date: {[str(p) for p in stale]}"


def test_check_mode_exits_1_when_a_file_differs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generate, "SCHEMAS_DIR", tmp_path / "v1")
    monkeypatch.setattr(generate, "ASYNCAPI_PATH", tmp_path / "asyncapi.json")
    monkeypatch.setattr(generate, "CONTRACTS_DIR", tmp_path)
    assert generate.main(["--check"]) == 1
    assert generate.main([]) == 0
    assert generate.main(["--check"]) == 0
    (tmp_path / "v1" / "JobEvent.json").write_text("{}\n")
    assert generate.main(["--check"]) == 1


def test_every_contract_message_model_is_generated() -> None:
    from contracts import callbacks, commands, dispatch, events, reports
    from contracts.base import Message

    found = {
        obj
        for module in (callbacks, commands, dispatch, events, reports)
        for obj in vars(module).values()
        if isinstance(obj, type) and obj.__module__ == module.__name__
    }
    bases = {Message, reports.Report, callbacks.CallbackBody, commands.DatasetRef}  # bases, or only nested
    missing = {m.__name__ for m in found - bases - set(generate.MESSAGES) if hasattr(m, "model_json_schema")}
    assert not missing, f"add these models to contracts/generate.py: {sorted(missing)}"


def test_asyncapi_refs_resolve_and_parameters_are_declared() -> None:
    document = generate.asyncapi_document()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                target: Any = document
                for part in node["$ref"].removeprefix("#/").split("/"):
                    target = target[part]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert document["asyncapi"].startswith("3.")
    for channel in document["channels"].values():
        names = {part[1:-1] for part in channel["address"].split(".") if part.startswith("{")}
        assert names == set(channel.get("parameters", {})), channel["address"]
    assert document["channels"]["jobEvents"]["address"] == "vtp.v1.job.{job_id}.{event}"


# --- the comparison logic, on hand-made schema pairs --------------------------------------------------------

BASE: dict[str, Any] = {
    "$defs": {
        "Spec": {
            "type": "object",
            "properties": {"model": {"type": "string"}, "epochs": {"type": "integer", "default": 10}},
            "required": ["model"],
        },
        "State": {"type": "string", "enum": ["QUEUED", "RUNNING"]},
    },
    "type": "object",
    "properties": {
        "job_id": {"type": "string"},
        "name": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "kind": {"const": "progress", "type": "string", "default": "progress"},
        "time": {"type": "string", "format": "date-time"},
        "spec": {"$ref": "#/$defs/Spec"},
        "state": {"$ref": "#/$defs/State"},
        "tags": {"type": "array", "items": {"$ref": "#/$defs/Spec"}},
        "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
    },
    "required": ["job_id", "time", "spec", "state"],
}


def changed(edit: Any) -> dict[str, Any]:
    schema = copy.deepcopy(BASE)
    edit(schema)
    return schema


def test_identical_schemas_are_compatible() -> None:
    assert breaking_changes(BASE, copy.deepcopy(BASE)) == []


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(
            lambda s: s["properties"].update(extra={"type": "string", "default": ""}), id="optional-field"
        ),
        pytest.param(
            lambda s: s["$defs"]["Spec"]["properties"].update(lr={"type": "number"}), id="nested-optional"
        ),
        pytest.param(lambda s: s["$defs"]["State"]["enum"].append("FAILED"), id="enum-value-added"),
        pytest.param(lambda s: s["properties"]["job_id"].update(description="doc"), id="description"),
        pytest.param(lambda s: s["required"].remove("time"), id="required-became-optional"),
        pytest.param(lambda s: s["properties"]["job_id"].update(type=["string"]), id="type-as-list"),
    ],
)
def test_non_breaking_changes_pass(edit: Any) -> None:
    assert breaking_changes(BASE, changed(edit)) == []


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(lambda s: s["properties"].pop("name"), "$.name: field removed", id="field-removed"),
        pytest.param(
            lambda s: s["properties"].update(job_id={"type": "integer"}),
            "$.job_id: type changed from {string} to {integer}",
            id="type-changed",
        ),
        pytest.param(
            lambda s: s["properties"].update(name={"type": "string"}),
            "$.name: type changed from {null, string} to {string}",
            id="nullable-dropped",
        ),
        pytest.param(
            lambda s: (
                s["properties"].update(priority={"type": "integer"}),
                s["required"].append("priority"),
            ),
            "$.priority: new field is now required",
            id="new-required-field",
        ),
        pytest.param(
            lambda s: s["required"].append("name"),
            "$.name: optional field is now required",
            id="optional-became-required",
        ),
        pytest.param(
            lambda s: s["$defs"]["Spec"]["properties"].pop("epochs"),
            "$.spec.epochs: field removed",
            id="nested-field-removed",
        ),
        pytest.param(
            lambda s: s["$defs"]["Spec"]["properties"]["model"].update(type="integer"),
            "$.tags[].model: type changed from {string} to {integer}",
            id="array-item-type-changed",
        ),
        pytest.param(
            lambda s: s["properties"]["metrics"].update(additionalProperties={"type": "string"}),
            "$.metrics{}: type changed from {number} to {string}",
            id="map-value-type-changed",
        ),
        pytest.param(
            lambda s: s["properties"]["time"].pop("format"),
            "$.time: format changed from {'date-time'} to (none)",
            id="format-dropped",
        ),
        pytest.param(
            lambda s: s["properties"]["kind"].update(const="log", default="log"),
            "$.kind: const changed from {'progress'} to {'log'}",
            id="const-changed",
        ),
        pytest.param(
            lambda s: s["$defs"]["State"]["enum"].remove("RUNNING"),
            "$.state: enum value(s) removed: {'RUNNING'}",
            id="enum-value-removed",
        ),
        pytest.param(
            lambda s: s["properties"].update(spec={"type": "string"}),
            "$.spec: type changed from {object} to {string}",
            id="object-became-string",
        ),
    ],
)
def test_breaking_changes_are_reported(edit: Any, expected: str) -> None:
    assert expected in breaking_changes(BASE, changed(edit))


def test_a_real_model_change_is_caught() -> None:
    """The rules applied to the real JobEvent schema: dropping `trace_id` must be reported."""
    published = json.loads((generate.SCHEMAS_DIR / "JobEvent.json").read_text())
    candidate = copy.deepcopy(published)
    del candidate["properties"]["trace_id"]
    candidate["required"].remove("trace_id")
    assert breaking_changes(published, candidate) == ["$.trace_id: field removed"]


# --- an object that becomes a union of objects (JobSpec: timm -> timm | ultralytics) ---------------------

TIMM = {
    "title": "TimmSpec",
    "type": "object",
    "properties": {"framework": {"const": "timm", "type": "string"}, "model": {"type": "string"}},
    "required": ["framework", "model"],
}
YOLO = {
    "title": "YoloSpec",
    "type": "object",
    "properties": {
        "framework": {"const": "ultralytics", "type": "string"},
        "model": {"type": "string"},
        "task": {"enum": ["detect", "segment"], "type": "string"},
    },
    "required": ["framework", "model", "task"],
}


def with_spec(*members: dict[str, Any], keyword: str = "oneOf") -> dict[str, Any]:
    """A message whose `spec` is the one member given, or a discriminated union of them."""
    defs = {member["title"]: copy.deepcopy(member) for member in members}
    refs = [{"$ref": f"#/$defs/{member['title']}"} for member in members]
    spec = refs[0] if len(refs) == 1 else {keyword: refs, "discriminator": {"propertyName": "framework"}}
    return {"$defs": defs, "type": "object", "properties": {"spec": spec}, "required": ["spec"]}


def evolved(member: dict[str, Any], edit: Any) -> dict[str, Any]:
    member = copy.deepcopy(member)
    edit(member)
    return member


@pytest.mark.parametrize("keyword", ["oneOf", "anyOf"])
def test_an_object_may_become_a_union_that_keeps_its_shape(keyword: str) -> None:
    assert breaking_changes(with_spec(TIMM), with_spec(TIMM, YOLO, keyword=keyword)) == []
    grown = evolved(TIMM, lambda m: m["properties"].update(lr={"type": "number"}))
    assert breaking_changes(with_spec(TIMM), with_spec(grown, YOLO, keyword=keyword)) == []
    assert breaking_changes(with_spec(TIMM, YOLO), with_spec(YOLO, TIMM, keyword=keyword)) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            with_spec(TIMM),
            with_spec(YOLO, evolved(YOLO, lambda m: m.update(title="Yolo2"))),
            "$.spec: no object of the new schema keeps the shape of TimmSpec",
            id="union-without-the-old-shape",
        ),
        pytest.param(
            with_spec(TIMM),
            with_spec(evolved(TIMM, lambda m: m["properties"].pop("model")), YOLO),
            "$.spec.model: field removed",
            id="old-member-lost-a-field",
        ),
        pytest.param(
            with_spec(TIMM, YOLO),
            with_spec(TIMM, evolved(YOLO, lambda m: m["properties"]["task"]["enum"].remove("segment"))),
            "$.spec.task: enum value(s) removed: {'segment'}",
            id="other-member-narrowed",
        ),
        pytest.param(
            with_spec(TIMM, YOLO),
            with_spec(TIMM),
            "$.spec: no object of the new schema keeps the shape of YoloSpec",
            id="union-lost-a-member",
        ),
    ],
)
def test_a_union_that_loses_a_shape_is_breaking(old: Any, new: Any, expected: str) -> None:
    problems = breaking_changes(old, new)
    assert expected in problems, problems


def test_the_real_job_spec_union_keeps_the_v1_timm_shape() -> None:
    """v1 published DispatchJob.spec as the timm spec alone; the union still holds it, and a change to that
    member is caught through the union."""
    current = generate.message_schema(DispatchJob)
    timm_only = copy.deepcopy(current)
    timm_only["properties"]["spec"] = {"$ref": "#/$defs/TimmSpec"}
    assert breaking_changes(timm_only, current) == []
    broken = copy.deepcopy(current)
    del broken["$defs"]["TimmSpec"]["properties"]["hyperparameters"]
    assert "$.spec.hyperparameters: field removed" in breaking_changes(timm_only, broken)
    lost = "$.spec: no object of the new schema keeps the shape of TimmSpec"
    assert lost in breaking_changes(current, broken)
