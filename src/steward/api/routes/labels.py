"""Labels: ground truth for a deployment's predictions, as JSON rows or a Parquet upload."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from steward.api.deps import Developer, ServicesDep
from steward.api.render import json_response
from steward.api.uploads import media_type, parse_json, read_body
from steward.domain.uri import check_model_name
from steward.schemas.labels import (
    MAX_LABELS_BODY_BYTES,
    PARQUET_MEDIA_TYPE,
    LabelReceipt,
    LabelsCreate,
    LabelSource,
    table_from_parquet,
)

router = APIRouter(tags=["labels"])


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` inlined: the body is read by hand (it may be
    Parquet), so FastAPI does not add LabelsCreate to the OpenAPI components itself."""
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined


_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _inlined(LabelsCreate.model_json_schema())},
            PARQUET_MEDIA_TYPE: {
                "schema": {"type": "string", "format": "binary"},
                "example": "a Parquet file with columns request_id, label[, row]",
            },
        },
    }
}


@router.post(
    "/deployments/{name}/labels",
    response_model=LabelReceipt,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_BODY,
)
async def log_labels(
    name: str,
    request: Request,
    services: ServicesDep,
    who: Developer,
    source: Annotated[
        LabelSource | None,
        Query(description="sdk, api (default) or file; a JSON body may say it as 'source'."),
    ] = None,
) -> Response:
    """Log labels for the deployment's predictions: one file, one ``labels.logged`` event.

    JSON ``{"labels": [{"request_id", "label", "row"?}], "source"?}``, or a Parquet body
    (``Content-Type: application/vnd.apache.parquet``) with those columns.
    """
    check_model_name(name, field="name")
    media = media_type(request, PARQUET_MEDIA_TYPE, "labels")
    body = await read_body(request, MAX_LABELS_BODY_BYTES, "labels")
    labels: Any
    if media == PARQUET_MEDIA_TYPE:
        labels = await run_in_threadpool(table_from_parquet, body)
        origin: LabelSource = source or "api"
    else:
        parsed = await run_in_threadpool(
            parse_json, LabelsCreate, body, '{"labels": [{"request_id": ..., "label": ...}]}'
        )  # ~2.5 s for 1M rows: off the loop
        labels, origin = parsed.labels, source or parsed.source
    receipt = await run_in_threadpool(services.labels.log, who.name, name, labels, source=origin)
    return json_response(receipt, status_code=201)
