"""The gateway as `steward serve` runs it, inside the demo's own process, for its scenes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

    from steward.serving.runtime import Runtime
    from steward.settings import Settings
    from steward.store.prediction_log import PredictionLogWriter


@dataclass(frozen=True)
class InProcessGateway:
    http: httpx.AsyncClient  # speaks to the gateway's ASGI app, no socket
    runtime: Runtime
    log: PredictionLogWriter

    async def flush_log(self) -> None:
        """Wait until everything answered so far is in the prediction log (at most 10 s)."""
        await asyncio.get_running_loop().run_in_executor(None, self.log.flush, 10.0)


@asynccontextmanager
async def gateway_in_process(
    settings: Settings, names: tuple[str, ...]
) -> AsyncIterator[InProcessGateway]:
    """Serve the deployments ``names`` of the store in ``settings``, with the prediction log
    and the lifespan of `steward serve`, following the ledger only when refreshed."""
    # Imported here: the demo's other scenes need none of the serving stack.
    import httpx

    from steward.serving.gateway import create_gateway
    from steward.serving.runtime import Runtime
    from steward.store.prediction_log import PredictionLogWriter
    from steward.wiring import Services

    services = Services.from_settings(settings)
    try:
        runtime = Runtime(services.store, services.artifacts, names=names)
        log = PredictionLogWriter.from_settings(settings)
        app = create_gateway(runtime, log, poll_seconds=None)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://gateway") as http,
        ):
            yield InProcessGateway(http, runtime, log)
    finally:
        services.close()
