"""`/v1/datasets`: upload (multipart, or JSON naming an archive PUT to a signed upload URL) and read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from services.api import datasets
from services.api.datasets import Registered
from services.api.deps import CurrentProject, IntakeDep, SessionDep, SettingsDep
from services.api.errors import BadRequest, InvalidField
from services.api.routes.params import DatasetName, DatasetReference
from services.api.routes.uploads import multipart_schema, refuse_oversized, storable_field
from services.api.schemas import (
    DatasetCreated,
    DatasetFromUpload,
    DatasetOut,
    DatasetPage,
    ErrorOut,
    UploadOut,
)

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
ERRORS = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}}
UPLOAD_SCHEMA = multipart_schema(
    ["name", "format", "file"],
    {
        "name": {"type": "string", "maxLength": 100},
        "format": {"type": "string", "enum": list(datasets.DATASET_FORMATS)},
        "file": {"type": "string", "format": "binary", "description": ".zip or .tar.gz"},
    },
    {"application/json": DatasetFromUpload.model_json_schema()},
)


def _text_field(form: FormData, name: str, max_length: int) -> str:
    value = form.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidField(("body", name), "field required")
    if len(value) > max_length:
        raise InvalidField(("body", name), f"at most {max_length} characters")
    return storable_field(name, value.strip())


@router.post("/uploads", status_code=201, response_model=UploadOut, responses=ERRORS)
async def request_upload(project: CurrentProject, intake: IntakeDep) -> UploadOut:
    """A signed URL to PUT one dataset archive to (up to the dataset size limit), for archives too large to
    send through the API: PUT the file there, then `POST /v1/datasets` with `{name, format, upload_id}`."""
    ticket = datasets.request_upload(intake, project.id, datetime.now(UTC))
    return UploadOut(
        upload_id=ticket.upload_id, url=ticket.url, expires_at=ticket.expires_at, max_bytes=ticket.max_bytes
    )


@router.post(
    "",
    status_code=201,
    response_model=DatasetCreated,
    openapi_extra=UPLOAD_SCHEMA,
    responses={**ERRORS, 200: {"model": DatasetCreated}, 400: {"model": ErrorOut}, 413: {"model": ErrorOut}},
)
async def create_dataset(
    request: Request, project: CurrentProject, session: SessionDep, intake: IntakeDep, settings: SettingsDep
) -> JSONResponse:
    """Add a dataset version: multipart (`name`, `format`, `file`), or JSON `{name, format, upload_id}` for an
    archive PUT to an upload URL. `imagefolder` (classification): `train/<class>/<image>` and
    `val/<class>/<image>`. `yolo-detect`, `yolo-segment` (Ultralytics layout): `data.yaml`, `images/` and
    `labels/`. A new version (201) is VALIDATING until its validation job makes it READY or REJECTED; the same
    archive under the same name again answers its existing version (200, `created: false`)."""
    content_type = request.headers.get("content-type", "")
    # The body is read here, not by FastAPI, so an oversized upload is refused before it is read. A JSON body
    # only names an upload: it gets the framing's room and no more.
    file_limit = 0 if content_type.startswith("application/json") else settings.max_dataset_bytes
    refuse_oversized(request, file_limit, "dataset")
    now = datetime.now(UTC)
    if content_type.startswith("application/json"):
        body = _json_body(await request.body())
        registered = await datasets.create_from_upload(
            session, intake, project.id, body.name, body.format, body.upload_id, body.filename, now
        )
    elif content_type.startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=10) as form:
            name = _text_field(form, "name", 100)
            dataset_format = _text_field(form, "format", 32)
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InvalidField(("body", "file"), "field required: the dataset archive (.zip or .tar.gz)")
            filename = storable_field("file", upload.filename) if upload.filename else upload.filename
            registered = await datasets.create_from_file(
                session, intake, project.id, name, dataset_format, filename, upload.file, now
            )
    else:
        raise BadRequest(
            "send the dataset as multipart/form-data with fields name, format and file, or as JSON "
            "{name, format, upload_id} after a PUT to an upload URL (POST /v1/datasets/uploads)"
        )
    await session.commit()
    return _created(registered)


def _json_body(raw: bytes) -> DatasetFromUpload:
    try:
        return DatasetFromUpload.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def _created(registered: Registered) -> JSONResponse:
    body = DatasetCreated(**DatasetOut.of(registered.dataset).model_dump(), created=registered.created)
    return JSONResponse(body.model_dump(mode="json"), status_code=201 if registered.created else 200)


@router.get("", response_model=DatasetPage, responses=ERRORS)
async def list_datasets(
    project: CurrentProject,
    session: SessionDep,
    name: DatasetName = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DatasetPage:
    """Newest first."""
    found = await datasets.list_datasets(session, project.id, name, limit)
    return DatasetPage(items=[DatasetOut.of(dataset) for dataset in found])


@router.get("/{reference}", response_model=DatasetOut, responses=ERRORS)
async def get_dataset(
    reference: DatasetReference, project: CurrentProject, session: SessionDep
) -> DatasetOut:
    """A dataset by id, `name:version`, or `name` (its newest version, whatever its status)."""
    return DatasetOut.of(await datasets.get(session, project.id, reference))
