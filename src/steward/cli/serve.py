"""``steward serve``: the inference gateway over the deployments of the store."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from steward.cli._output import console
from steward.cli._state import state
from steward.errors import InvalidInput, NotFound

DEFAULT_PORT = 8000


def gateway_uvicorn_options() -> dict[str, Any]:
    """How uvicorn runs the gateway, here and in `steward demo`: each response in one write
    (`steward.api.http_protocol`), no access log and no proxy-headers middleware. At level
    warning uvicorn prints no access line, yet with its access log on it builds each one's
    arguments for a logger that drops it: ~3% of the requests/s. The middleware rewrites the
    client address and scheme from ``X-Forwarded-*`` on every request, and the gateway reads
    neither: 2-3% (both measured with bench/ab_serving.py)."""
    from steward.api.http_protocol import CoalescingHttpToolsProtocol

    return {"log_level": "warning", "access_log": False, "proxy_headers": False,
            "http": CoalescingHttpToolsProtocol}  # fmt: skip


def serve(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None,
        typer.Argument(metavar="[NAME ...]", help="Deployments to serve (default: all)."),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default: STEWARD_SERVER_HOST).")
    ] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to bind.")] = DEFAULT_PORT,
    inline_budget_ms: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=1000,
            help="Call scikit-learn/ONNX models measured under this many ms on the event loop; "
            "0: always in the thread pool (default: STEWARD_GATEWAY_INLINE_BUDGET_MS, 2).",
        ),
    ] = None,
    alert_webhook: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Slack-compatible webhook told of each automatic canary rollback "
            "(default: STEWARD_ALERTS_WEBHOOK_URL).",
        ),
    ] = None,
) -> None:
    """Serve deployments over HTTP: Open Inference Protocol v2 (/v2/...), POST /predict/NAME,
    GET /metrics. Deployment changes are picked up within a second, with no dropped request."""
    import uvicorn

    from steward.alerts import WebhookAlerts
    from steward.serving.gateway import create_gateway
    from steward.serving.runtime import Runtime
    from steward.store.prediction_log import PredictionLogWriter
    from steward.wiring import Services

    settings = state(ctx).settings
    if settings.url is not None:
        raise InvalidInput(
            "`steward serve` reads deployments from the store itself, not over HTTP: unset "
            "STEWARD_URL and point STEWARD_DATABASE_URL (and STEWARD_ARTIFACTS_ROOT) at the "
            "server's store.",
            field="url",
        )
    # checked before the store is opened: a typo in the URL fails here, not at the first breach
    alerts = WebhookAlerts.from_url(alert_webhook or settings.alert_webhook_url)
    services = Services.from_settings(settings)
    try:
        if names:  # refused here, in one line, rather than by a failed startup inside uvicorn
            with services.store.read() as rx:
                known = {d.name for d in rx.list_deployments()}
            missing = [name for name in names if name not in known]
            if missing:
                raise NotFound(
                    f"No deployment named {', '.join(repr(n) for n in missing)}; create it "
                    "with `steward deploy` or list them with `steward deployments`.",
                    details={"field": "names", "missing": missing},
                )
        runtime = Runtime(
            services.store,
            services.artifacts,
            names=tuple(names or ()),
            allow_trusted=settings.allow_trusted_models,
            inline_budget_ms=(
                settings.gateway.inline_budget_ms if inline_budget_ms is None else inline_budget_ms
            ),
        )
        app = create_gateway(runtime, PredictionLogWriter.from_settings(settings), alerts=alerts)
        bind = host or settings.server.host
        which = ", ".join(names) if names else "every deployment"
        console.print(
            f"Steward gateway on [bold]http://{bind}:{port}[/bold] serving {which} "
            "(OIP /v2/models/NAME/infer, POST /predict/NAME, /metrics). Ctrl+C stops it.",
            soft_wrap=True,
        )
        # One process, one event loop: uvicorn binds through asyncio, which sets TCP_NODELAY on
        # every connection (with --workers > 1 it would not: DESIGN.md "Known traps").
        uvicorn.run(app, host=bind, port=port, lifespan="on", **gateway_uvicorn_options())
    finally:
        services.close()
