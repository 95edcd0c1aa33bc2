"""What the upload routes (datasets, models) share: reading a multipart body themselves, they refuse one whose
declared size is over the limit before reading it, and document their form in OpenAPI."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from contracts.base import text_problem
from services.api.errors import InvalidField, PayloadTooLarge

# Room for the multipart framing and the small fields around the file; also the most a JSON body may be.
MULTIPART_OVERHEAD = 64 * 1024


def refuse_oversized(request: Request, limit: int, what: str, overhead: int = MULTIPART_OVERHEAD) -> None:
    """413 when the request says it is larger than `limit` (of the file) plus `overhead` (of the framing)."""
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit + overhead:
        raise PayloadTooLarge(f"upload is {declared} bytes; the {what} limit is {limit} bytes")


def storable_field(name: str, value: str) -> str:
    """A form field's text, when Postgres can store it (a form is read by hand, not by a model)."""
    if (problem := text_problem(value)) is not None:
        raise InvalidField(("body", name), problem, "unstorable_text")
    return value


def multipart_schema(
    required: list[str], properties: dict[str, Any], other_bodies: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its multipart form itself; `other_bodies`: the schemas of other
    media types it takes, by media type."""
    form = {"type": "object", "required": required, "properties": properties}
    content = {"multipart/form-data": {"schema": form}}
    content |= {media: {"schema": schema} for media, schema in (other_bodies or {}).items()}
    return {"requestBody": {"required": True, "content": content}}
