"""`/v1/datasets`: upload (multipart) and read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.datastructures import FormData, UploadFile

from services.api import service
from services.api.deps import CurrentProject, SessionDep, SettingsDep, StorageDep
from services.api.errors import BadRequest, InvalidField, PayloadTooLarge
from services.api.schemas import DatasetOut, DatasetPage, ErrorOut

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
ERRORS = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}}
# Room for the multipart framing and the small fields around the file.
MULTIPART_OVERHEAD = 64 * 1024

UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["name", "format", "file"],
                    "properties": {
                        "name": {"type": "string", "maxLength": 200},
                        "format": {"type": "string", "enum": list(service.DATASET_FORMATS)},
                        "file": {"type": "string", "format": "binary", "description": ".zip or .tar.gz"},
                    },
                }
            }
        },
    }
}


def _text_field(form: FormData, name: str, max_length: int) -> str:
    value = form.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidField(("body", name), "field required")
    if len(value) > max_length:
        raise InvalidField(("body", name), f"at most {max_length} characters")
    return value.strip()


@router.post(
    "",
    status_code=201,
    response_model=DatasetOut,
    openapi_extra=UPLOAD_SCHEMA,
    responses={**ERRORS, 400: {"model": ErrorOut}, 413: {"model": ErrorOut}},
)
async def upload_dataset(
    request: Request, project: CurrentProject, session: SessionDep, storage: StorageDep, settings: SettingsDep
) -> DatasetOut:
    """Upload a dataset archive. `imagefolder` (classification): `train/<class>/<image>` and
    `val/<class>/<image>`. `yolo-detect`, `yolo-segment` (Ultralytics layout): `data.yaml`, `images/` and
    `labels/`."""
    # The form is parsed here, not by FastAPI, so an oversized upload is refused before it is read.
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_dataset_bytes + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(
            f"upload is {declared} bytes; the dataset limit is {settings.max_dataset_bytes} bytes"
        )
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise BadRequest("send the dataset as multipart/form-data with fields name, format and file")
    async with request.form(max_files=1, max_fields=10) as form:
        name = _text_field(form, "name", 200)
        dataset_format = _text_field(form, "format", 32)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidField(("body", "file"), "field required: the dataset archive (.zip or .tar.gz)")
        dataset = await service.create_dataset(
            session,
            storage,
            project.id,
            name,
            dataset_format,
            upload.filename,
            upload.file,
            settings.max_dataset_bytes,
            datetime.now(UTC),
        )
        await session.commit()
    return DatasetOut.of(dataset)


@router.get("", response_model=DatasetPage, responses=ERRORS)
async def list_datasets(
    project: CurrentProject, session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> DatasetPage:
    datasets = await service.list_datasets(session, project.id, limit)
    return DatasetPage(items=[DatasetOut.of(dataset) for dataset in datasets])


@router.get("/{dataset_id}", response_model=DatasetOut, responses=ERRORS)
async def get_dataset(dataset_id: str, project: CurrentProject, session: SessionDep) -> DatasetOut:
    return DatasetOut.of(await service.get_dataset(session, project.id, dataset_id))
