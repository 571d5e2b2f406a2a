"""create_app(settings): the REST API (OpenAPI at /docs) over the services built from settings."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from starlette.types import Receive, Scope, Send

from steward._version import __version__
from steward.api.deps import refuse_nul
from steward.api.errors import install_error_handlers
from steward.api.hot_routes import HotRoutes
from steward.api.routes import (
    artifacts,
    audit,
    deployments,
    experiments,
    gates,
    incidents,
    labels,
    monitoring,
    registry,
    runs,
    tokens,
)
from steward.api.scheduler import run_scheduler
from steward.settings import Settings
from steward.wiring import Services

API_PREFIX = "/api/v1"


def create_app(
    settings: Settings, *, services: Services | None = None, scheduler: bool = False
) -> FastAPI:
    """``scheduler``: also run the monitors on their intervals (``steward server`` turns it on
    unless ``STEWARD_MONITOR_SCHEDULER=false``)."""
    built = services or Services.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # This loop's connections for PostgreSQL writes it commits itself (`HotRoutes`).
        await built.store.open_for_loop()
        task = None
        if scheduler:
            task = asyncio.create_task(run_scheduler(built, settings.monitor.tick_s))
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await built.store.close_for_loop()
        if services is None:
            built.close()

    app = StewardApi(
        built,
        title="Steward",
        version=__version__,
        description="The control plane for production machine learning.",
        lifespan=lifespan,
        dependencies=[Depends(refuse_nul)],
    )
    app.state.services = built
    install_error_handlers(app)
    routers = (
        registry, gates, deployments, monitoring, labels, incidents, experiments, artifacts,
        runs, audit, tokens,
    )  # fmt: skip
    for module in routers:
        app.include_router(module.router, prefix=API_PREFIX)

    # Async: a plain ``def`` route runs in the thread pool, and that hop alone (~0.2 ms here)
    # was as much as the rest of the request.
    @app.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app


class StewardApi(FastAPI):
    """FastAPI, with the hottest calls answered before its machinery (see `HotRoutes`)."""

    def __init__(self, services: Services, **options: Any) -> None:
        super().__init__(**options)
        self._hot = HotRoutes(super().__call__, services)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._hot(scope, receive, send)


__all__ = ["StewardApi", "create_app"]
