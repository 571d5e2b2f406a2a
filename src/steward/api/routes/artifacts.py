"""Content-addressed artifact upload and download (raw bodies, streamed)."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from steward.api.deps import Developer, ServicesDep, Viewer
from steward.api.routing import JsonRoute
from steward.domain.artifacts import check_digest
from steward.domain.entities import ArtifactRef
from steward.errors import PayloadTooLarge

router = APIRouter(tags=["artifacts"], route_class=JsonRoute)

_SPOOL_IN_MEMORY = 8 * 1024 * 1024


@router.post("/artifacts", response_model=ArtifactRef, status_code=status.HTTP_201_CREATED)
async def upload_artifact(request: Request, services: ServicesDep, _: Developer) -> ArtifactRef:
    """Spool the body (refusing it as soon as it passes the limit), then store it by digest."""
    limit = services.artifacts.max_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            spool.write(chunk)
        spool.seek(0)
        return await run_in_threadpool(services.registry.upload_artifact, spool)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The artifact is over the size limit of {limit} bytes; raise STEWARD_ARTIFACTS_MAX_BYTES "
        "on the server or store a smaller file.",
        field="artifact",
    )


@router.get("/artifacts/{digest}")
def download_artifact(digest: str, services: ServicesDep, _: Viewer) -> StreamingResponse:
    check_digest(digest)
    stream = services.artifacts.open(digest)  # raises NotFound before the response starts

    async def body() -> AsyncIterator[bytes]:
        try:
            while chunk := await run_in_threadpool(stream.read, 1024 * 1024):
                yield chunk
        finally:
            stream.close()

    return StreamingResponse(body(), media_type="application/octet-stream")
