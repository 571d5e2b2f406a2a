"""``steward server``: the REST API (and OpenAPI docs) over the configured store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from steward.cli._output import console
from steward.cli._state import state

if TYPE_CHECKING:
    from steward.settings import Settings


def server(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Address to bind (overrides STEWARD_SERVER_HOST).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Port to bind (overrides STEWARD_SERVER_PORT)."),
    ] = None,
) -> None:
    """Run the Steward server: REST API under /api/v1, OpenAPI at /docs, /health."""
    settings = state(ctx).settings
    changes = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    if changes:
        settings = settings.model_copy(
            update={"server": settings.server.model_copy(update=changes)}
        )
    serve(settings)


def serve(settings: Settings) -> None:
    """Serve ``create_app(settings)`` until interrupted (blocking)."""
    import uvicorn

    from steward.api.app import create_app
    from steward.api.http_protocol import CoalescingHttpToolsProtocol

    app = create_app(settings, scheduler=settings.monitor.scheduler)
    host, port = settings.server.host, settings.server.port
    where = settings.database_url.split("://", 1)[0]
    console.print(
        f"Steward server on [bold]http://{host}:{port}[/bold]  "
        f"(API /api/v1, docs /docs; store: {where}). Ctrl+C stops it.",
        soft_wrap=True,
    )
    # One process, one event loop: uvicorn binds the socket through asyncio, which sets
    # TCP_NODELAY on every connection. With --workers > 1 uvicorn binds the socket itself
    # and leaves Nagle on (~40 ms per small keep-alive request; see DESIGN.md "Known traps",
    # uvicorn issue #3149), so scale out with more processes behind a balancer instead.
    uvicorn.run(app, host=host, port=port, log_level="info", http=CoalescingHttpToolsProtocol)
