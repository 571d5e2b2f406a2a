"""create_app(settings): the REST API (OpenAPI at /docs) over the services built from settings."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from steward._version import __version__
from steward.api.deps import refuse_nul
from steward.api.errors import install_error_handlers
from steward.api.hot_routes import HotRoutes
from steward.api.http_protocol import DirectHandler
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
        trusted_proxies=settings.server.forwarded_allow_ips,
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
    """FastAPI, with the hottest calls answered before its machinery (see `HotRoutes`).

    Served by `CoalescingHttpToolsProtocol` (as `steward server` serves it), those answers are
    written by the protocol itself, with no ASGI messages (`direct_route`); that needs uvicorn's
    proxy-headers middleware off, since the protocol only asks the app it is given. What FastAPI
    answers still sees ``X-Forwarded-*`` from ``trusted_proxies``, as uvicorn's middleware
    would apply them (``STEWARD_SERVER_FORWARDED_ALLOW_IPS``, default the loopback addresses);
    the hot routes read neither the client's address nor the scheme.
    """

    def __init__(self, services: Services, *, trusted_proxies: str, **options: Any) -> None:
        super().__init__(**options)
        # uvicorn types an ASGI app with its own TypedDicts, Starlette with mappings: the same.
        forwarded = ProxyHeadersMiddleware(super().__call__, trusted_proxies)  # type: ignore[arg-type]
        self._hot = HotRoutes(cast(ASGIApp, forwarded), services)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._hot(scope, receive, send)

    def direct_route(self, scope: Scope) -> DirectHandler | None:
        """The hot lane's answer to this request, for the protocol to write (see `HotRoutes`)."""
        return self._hot.direct_route(scope)


__all__ = ["StewardApi", "create_app"]
