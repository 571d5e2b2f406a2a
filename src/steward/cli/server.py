"""``steward server``: the REST API (and OpenAPI docs) over the configured store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

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
    access_log: Annotated[
        bool | None,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log a line per request (overrides STEWARD_SERVER_ACCESS_LOG; default off).",
        ),
    ] = None,
) -> None:
    """Run the Steward server: REST API under /api/v1, OpenAPI at /docs, /health."""
    settings = state(ctx).settings
    asked = {"host": host, "port": port, "access_log": access_log}
    changes = {k: v for k, v in asked.items() if v is not None}
    if changes:
        settings = settings.model_copy(
            update={"server": settings.server.model_copy(update=changes)}
        )
    serve(settings)


def api_uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn runs the API, here, in `steward demo` and in the benchmarks: each response in
    one write, the hot routes' answers written by the protocol itself (`StewardApi`, which
    applies ``X-Forwarded-*`` to FastAPI's routes itself, so uvicorn's middleware is off), and
    no access log unless asked: formatting and writing a line per request cost ~4% of a
    registration (measured with paired servers), and every change is in the ledger anyway."""
    from steward.api.http_protocol import CoalescingHttpToolsProtocol

    return {"log_level": "info", "access_log": settings.server.access_log,
            "proxy_headers": False, "http": CoalescingHttpToolsProtocol}  # fmt: skip


def serve(settings: Settings) -> None:
    """Serve ``create_app(settings)`` until interrupted (blocking)."""
    from steward.api.app import create_app

    app = create_app(settings, scheduler=settings.monitor.scheduler)
    host, port = settings.server.host, settings.server.port
    where = settings.database_url.split("://", 1)[0]
    console.print(
        f"Steward server on [bold]http://{host}:{port}[/bold]  "
        f"(API /api/v1, docs /docs; store: {where}). Ctrl+C stops it.",
        soft_wrap=True,
    )
    run_api(app, settings, host=host, port=port)


def run_api(app: Any, settings: Settings, *, host: str, port: int, **options: Any) -> None:
    """uvicorn serving ``app`` in this process until interrupted, as `steward server` runs it
    (and the benchmarks' server); ``options`` override `api_uvicorn_options`.

    What exists by now (the modules, the app with its routes and schemas, the services) lives
    as long as the process, so it is frozen out of the garbage collector's full passes
    (`gc.freeze`): on a PostgreSQL server one such pass took ~150 ms, a stall for every request
    in flight, against ~10 ms for all its other collections over 4,200 registrations; frozen,
    the same run made no full pass at all (measured with gc callbacks, twice each way).
    """
    import gc

    import uvicorn

    gc.freeze()
    # One process, one event loop: uvicorn binds the socket through asyncio, which sets
    # TCP_NODELAY on every connection. With --workers > 1 uvicorn binds the socket itself
    # and leaves Nagle on (~40 ms per small keep-alive request; see DESIGN.md "Known traps",
    # uvicorn issue #3149), so scale out with more processes behind a balancer instead.
    uvicorn.run(app, host=host, port=port, **{**api_uvicorn_options(settings), **options})
