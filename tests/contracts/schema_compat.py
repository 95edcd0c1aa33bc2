"""Is a new JSON Schema a compatible evolution of a published one?

Within a version a message may only grow by optional fields. Breaking, and reported:
- a field removed;
- a field's type changed (its JSON types, `format` or `const`), or an enum value removed;
- a new required field (a new field that is required, or an optional field that became required);
- any of these inside a nested object (through `$ref`, `anyOf`/`oneOf`, array items or map values);
- an object shape that no longer exists: every object the old schema allowed at a place (one, or each member
  of a union) must still be allowed there by a new object that is a compatible evolution of it.

So an object may become a union of objects (a discriminated union: `JobSpec` growing from the timm spec to
timm | ultralytics) when one member keeps the old shape: every message valid before is valid still, and a
new member is a new kind of value, like a new enum value. A union that loses a member, or whose members all
differ from the old shape, is breaking.

Constraints such as `maxLength` or `pattern` are not compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Schema = dict[str, Any]


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Every breaking difference between the published schema `old` and the candidate `new`, as messages."""
    problems: list[str] = []
    _compare(_Node(old, old), _Node(new, new), "$", problems)
    return problems


@dataclass(frozen=True)
class _Node:
    """A subschema and the document its `$ref`s resolve against."""

    schema: Schema
    root: Schema

    def resolved(self) -> _Node:
        schema = self.schema
        for _ in range(32):
            if "$ref" not in schema:
                break
            target: Any = self.root
            for part in schema["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return _Node(schema, self.root)

    def child(self, schema: Schema) -> _Node:
        return _Node(schema, self.root).resolved()

    def branches(self) -> list[Schema]:
        for keyword in ("anyOf", "oneOf"):
            if keyword in self.schema:
                return [self.child(branch).schema for branch in self.schema[keyword]]
        return [self.schema]

    def types(self) -> set[str]:
        types: set[str] = set()
        for branch in self.branches():
            declared = branch.get("type")
            if isinstance(declared, str):
                types.add(declared)
            elif isinstance(declared, list):
                types.update(declared)
            elif "enum" in branch or "const" in branch:
                types.update(_json_type(v) for v in branch.get("enum", [branch.get("const")]))
        return types

    def keyword_values(self, keyword: str) -> set[str]:
        return {repr(branch[keyword]) for branch in self.branches() if keyword in branch}

    def enum(self) -> set[str] | None:
        enums = [branch["enum"] for branch in self.branches() if "enum" in branch]
        return {repr(value) for enum in enums for value in enum} if enums else None

    def object_branches(self) -> list[_Node]:
        return [
            _Node(b, self.root) for b in self.branches() if b.get("type") == "object" or "properties" in b
        ]

    def array_items(self) -> _Node | None:
        arrays = [b for b in self.branches() if b.get("type") == "array" and isinstance(b.get("items"), dict)]
        return self.child(arrays[0]["items"]) if len(arrays) == 1 else None


def _compare(old: _Node, new: _Node, path: str, problems: list[str]) -> None:
    old, new = old.resolved(), new.resolved()
    old_types, new_types = old.types(), new.types()
    if old_types and new_types and old_types != new_types:
        problems.append(f"{path}: type changed from {_show(old_types)} to {_show(new_types)}")
    for keyword in ("format", "const"):
        before, after = old.keyword_values(keyword), new.keyword_values(keyword)
        if before != after:
            problems.append(f"{path}: {keyword} changed from {_show(before)} to {_show(after)}")
    old_enum, new_enum = old.enum(), new.enum()
    if old_enum is not None and new_enum is not None and old_enum - new_enum:
        problems.append(f"{path}: enum value(s) removed: {_show(old_enum - new_enum)}")

    old_objects, new_objects = old.object_branches(), new.object_branches()
    if old_objects and new_objects:
        _compare_object_shapes(old_objects, new_objects, path, problems)
    old_items, new_items = old.array_items(), new.array_items()
    if old_items is not None and new_items is not None:
        _compare(old_items, new_items, f"{path}[]", problems)


def _compare_object_shapes(
    old_objects: list[_Node], new_objects: list[_Node], path: str, problems: list[str]
) -> None:
    """Each old object shape needs a new one it compares with cleanly; when none does, report the closest
    (with a single candidate on each side, that is the plain object comparison)."""
    for old_object in old_objects:
        attempts = []
        for new_object in new_objects:
            found: list[str] = []
            _compare_objects(old_object, new_object, path, found)
            if not found:
                break
            attempts.append(found)
        else:
            if len(old_objects) > 1 or len(new_objects) > 1:
                shape = old_object.schema.get("title", "the old object")
                problems.append(f"{path}: no object of the new schema keeps the shape of {shape}")
            problems.extend(min(attempts, key=len))


def _compare_objects(old: _Node, new: _Node, path: str, problems: list[str]) -> None:
    old_properties: dict[str, Schema] = old.schema.get("properties", {})
    new_properties: dict[str, Schema] = new.schema.get("properties", {})
    for name, schema in old_properties.items():
        if name not in new_properties:
            problems.append(f"{path}.{name}: field removed")
        else:
            _compare(old.child(schema), new.child(new_properties[name]), f"{path}.{name}", problems)
    for name in sorted(set(new.schema.get("required", [])) - set(old.schema.get("required", []))):
        what = "optional field" if name in old_properties else "new field"
        problems.append(f"{path}.{name}: {what} is now required")
    old_values, new_values = old.schema.get("additionalProperties"), new.schema.get("additionalProperties")
    if isinstance(old_values, dict) and isinstance(new_values, dict):
        _compare(old.child(old_values), new.child(new_values), f"{path}{{}}", problems)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _show(values: set[str]) -> str:
    return "{" + ", ".join(sorted(values)) + "}" if values else "(none)"
