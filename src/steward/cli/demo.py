"""``steward demo``: train real models, register them, and (unless --no-serve) serve them: the
API (`steward server`) on the configured port and the inference gateway (`steward serve`) on
the next one, in one process."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from steward.cli._output import console, escape
from steward.cli._state import state
from steward.errors import AlreadyExists

if TYPE_CHECKING:
    import uvicorn

    from steward.demo import DemoSummary
    from steward.settings import Settings
    from steward.wiring import Services


def demo(
    ctx: typer.Context,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Stop after the scenario instead of serving.")
    ] = False,
    home: Annotated[
        Path | None,
        typer.Option(
            help="Store folder for the demo (default STEWARD_HOME; with --no-serve, a fresh "
            "temporary folder).",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Run the demo: train and register models from scikit-learn's datasets, then serve them."""
    from steward.demo import demo_settings, run_demo

    base = state(ctx).settings
    root_home = ctx.find_root().params.get("home")
    chosen = home or root_home
    if chosen is None and no_serve:
        with tempfile.TemporaryDirectory(prefix="steward-demo-") as folder:
            run_demo(demo_settings(base, Path(folder), fresh=True), console=console, kept=False)
        return
    settings = demo_settings(base, chosen, fresh=chosen is not None)
    held = _models_held(settings)
    if held:
        # A second `make demo` lands here: its scenario (names, incidents, experiments) needs
        # an empty store, and the store may hold more than the demo's, so nothing is removed.
        if no_serve:
            raise AlreadyExists(
                f"{settings.home} already holds a store with {held} model(s); the demo's "
                "scenario runs into an empty one. Pick a new folder with `steward demo --home "
                f"FOLDER`, or remove {settings.home} to start over.",
                details={"field": "home"},
            )
        console.print(
            f"[yellow]{escape(str(settings.home))} already holds a store with {held} model(s)"
            "[/yellow]: serving it as it is. The scenario runs into an empty store: "
            "`steward demo --home FOLDER` with a new folder, or remove this one to start over.",
            soft_wrap=True,
        )
        _serve(settings, None)
        return
    summary = run_demo(settings, console=console)
    if no_serve:
        return
    _serve(settings, summary)


def _models_held(settings: Settings) -> int:
    """How many models the store of ``settings`` holds (0 for a new one)."""
    from steward.client import Client

    with Client(settings=settings) as client:
        return len(client.list_models(limit=1000).items)


def _serve(settings: Settings, summary: DemoSummary | None) -> None:
    from steward.cli.server import serve
    from steward.client import Client

    with Client(settings=settings) as client:
        created = client.create_token("demo-admin", "admin")
    url = f"http://{settings.server.host}:{settings.server.port}"
    gateway = _Gateway(settings, settings.server.port + 1)
    try:
        with console.status(f"Starting the inference gateway on port {gateway.port}…"):
            started = gateway.start()
        console.print(
            "\n[bold]Admin token[/bold] (shown once, copy it now):\n"
            f"    [bold green]{escape(created.secret)}[/bold green]\n"
            "Talk to the server from another shell:\n"
            f"    export STEWARD_URL={url} STEWARD_TOKEN={escape(created.secret)}\n"
            "    steward models\n"
            f"Browse the API at {url}/docs",
            soft_wrap=True,
        )
        _print_gateway(settings, summary, gateway, started=started)
        console.print()
        serve(settings)
    finally:
        gateway.stop()


class _Gateway:
    """`steward serve` in a thread of this process: a second uvicorn server with its own event
    loop (uvicorn installs signal handlers only in the main thread, where the API server runs;
    stopping the API stops this one)."""

    def __init__(self, settings: Settings, port: int) -> None:
        self.settings = settings
        self.host = settings.server.host
        self.port = port
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None
        self.services: Services | None = None

    @property
    def url(self) -> str:
        host = "localhost" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 60.0) -> bool:
        """Start serving every deployment; False when it did not come up (a busy port)."""
        import uvicorn

        from steward.cli.serve import gateway_uvicorn_options
        from steward.serving.gateway import create_gateway
        from steward.serving.runtime import Runtime
        from steward.store.prediction_log import PredictionLogWriter
        from steward.wiring import Services

        settings = self.settings
        self.services = Services.from_settings(settings)
        runtime = Runtime(
            self.services.store, self.services.artifacts,
            allow_trusted=settings.allow_trusted_models,
        )  # fmt: skip
        app = create_gateway(runtime, PredictionLogWriter.from_settings(settings))
        config = uvicorn.Config(app, host=self.host, port=self.port, **gateway_uvicorn_options())
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, name="steward-demo-gateway", daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.server.started

    def stop(self) -> None:
        """Stop serving: the gateway drains its batchers and flushes the prediction log."""
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(15)
        if self.services is not None:
            self.services.close()


def _print_gateway(
    settings: Settings, summary: DemoSummary | None, gateway: _Gateway, *, started: bool
) -> None:
    if summary is None:
        _print_gateway_of_store(settings, gateway, started=started)
        return
    serving = summary.serving
    name, files = serving.deployment, serving.files
    home = escape(str(settings.home))
    json_header = "-H 'content-type: application/json'"
    if started:
        console.print(
            f"\n[bold]Inference gateway[/bold] (steward serve) on [bold]{gateway.url}[/bold], "
            f"serving {name}: champion v{serving.champion}, the canary rolled back by the demo.",
            soft_wrap=True,
        )
    else:
        _print_not_started(settings, gateway, f" {name}")
    body = json.dumps({"instances": [serving.sample_row]})
    lines = [
        f"curl -s {gateway.url}/predict/{name} {json_header} -d '{body}'",
        f"curl -s {gateway.url}/v2/models/{name}/infer {json_header} -d @{files['infer']}"
        if "infer" in files else "",
        f"curl -s {gateway.url}/metrics | grep '^steward_requests_total'",
    ]  # fmt: skip
    console.print("Ask it (one held-out biopsy; /predict, then the same row over the Open "
                  "Inference Protocol v2):")  # fmt: skip
    for line in filter(None, lines):
        console.print(f"    {escape(line)}", soft_wrap=True)
    if "rules" in files:
        console.print(
            "Put the canary back; the running gateway loads it and swaps it in within a "
            "second:\n"
            f"    steward --home {home} deploy {name} --model breast-cancer --champion "
            f"{serving.champion} --canary {serving.canary} --canary-share {serving.canary_share:g} "
            "--fallback "
            f"rule:{escape(str(files['rules']))} --fallback default:0 --batch-max 32",
            soft_wrap=True,
        )


def _print_gateway_of_store(settings: Settings, gateway: _Gateway, *, started: bool) -> None:
    """Where the gateway serves a store the demo did not just fill: its deployments by name."""
    from steward.client import Client

    if not started:
        _print_not_started(settings, gateway, "")
        return
    with Client(settings=settings) as client:
        names = [d.name for d in client.deployments()]
    served = ", ".join(names) if names else "none yet (create one with `steward deploy`)"
    console.print(
        f"\n[bold]Inference gateway[/bold] (steward serve) on [bold]{gateway.url}[/bold], "
        f"serving the store's deployments: {escape(served)}.",
        soft_wrap=True,
    )
    for name in names:
        console.print(f"    curl -s {gateway.url}/v2/models/{escape(name)}", soft_wrap=True)


def _print_not_started(settings: Settings, gateway: _Gateway, names: str) -> None:
    """How to serve from another shell when the gateway's port was taken (``names``: the
    deployments to name on the command line, each with a leading space; none: all)."""
    console.print(
        f"\n[yellow]The inference gateway did not start on port {gateway.port}[/yellow] "
        "(is it in use?). Serve from another shell with:\n"
        f"    steward --home {escape(str(settings.home))} serve --port {gateway.port}"
        f"{escape(names)}",
        soft_wrap=True,
    )
