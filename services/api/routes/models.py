"""`/v1/models`: upload weights to start jobs from (`"weights": <model id>` on submit), and read them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.datastructures import UploadFile

from services.api import weights
from services.api.deps import CurrentProject, SessionDep, SettingsDep, StorageDep
from services.api.errors import BadRequest, InvalidField
from services.api.routes.params import ModelId
from services.api.routes.uploads import multipart_schema, refuse_oversized, storable_field
from services.api.schemas import ErrorOut, ModelOut, ModelPage

router = APIRouter(prefix="/v1/models", tags=["models"])
ERRORS = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}}
UPLOAD_SCHEMA = multipart_schema(
    ["file"],
    {
        "name": {"type": "string", "maxLength": 100, "description": "default: the file's"},
        "file": {"type": "string", "format": "binary", "description": "a .pt (torch.save)"},
    },
)


@router.post(
    "",
    status_code=201,
    response_model=ModelOut,
    openapi_extra=UPLOAD_SCHEMA,
    responses={**ERRORS, 400: {"model": ErrorOut}, 413: {"model": ErrorOut}},
)
async def upload_model(
    request: Request, project: CurrentProject, session: SessionDep, storage: StorageDep, settings: SettingsDep
) -> ModelOut:
    """Upload weights (multipart `file`, `name`): timm, a state_dict (`model.pt` of a timm job) or a timm
    job's `last.pt`; Ultralytics, a checkpoint (`best.pt`, `yolo11n.pt`). A job starts from them with
    `"weights": <id>`; what fits its model is taken (a classifier head for other classes is not)."""
    # The body is read here, not by FastAPI, so an oversized upload is refused before it is read.
    refuse_oversized(request, settings.max_model_bytes, "model")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadRequest("send the model as multipart/form-data with a field file (and optionally name)")
    async with request.form(max_files=1, max_fields=5) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidField(("body", "file"), "field required: the weights (.pt)")
        if upload.filename:
            storable_field("file", upload.filename)
        name = form.get("name")
        if isinstance(name, str):
            storable_field("name", name)
        if not isinstance(name, str) or not name.strip():
            name = (upload.filename or "weights.pt").rsplit("/", 1)[-1].removesuffix(".pt") or "weights"
        model = await weights.upload(
            session,
            storage,
            project.id,
            name.strip(),
            upload.filename,
            upload.file,
            settings.max_model_bytes,
            datetime.now(UTC),
        )
    await session.commit()
    return ModelOut.model_validate(model)


@router.get("", response_model=ModelPage, responses=ERRORS)
async def list_models(
    project: CurrentProject, session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> ModelPage:
    """Newest first."""
    found = await weights.list_models(session, project.id, limit)
    return ModelPage(items=[ModelOut.model_validate(model) for model in found])


@router.get("/{model_id}", response_model=ModelOut, responses=ERRORS)
async def get_model(model_id: ModelId, project: CurrentProject, session: SessionDep) -> ModelOut:
    return ModelOut.model_validate(await weights.get(session, project.id, model_id))
