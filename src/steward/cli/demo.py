"""``steward demo``: train real models, register them, and (unless --no-serve) serve them."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from steward.cli._output import console, escape
from steward.cli._state import state

if TYPE_CHECKING:
    from steward.settings import Settings


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
    run_demo(settings, console=console)
    if no_serve:
        return
    _serve(settings)


def _serve(settings: Settings) -> None:
    from steward.cli.server import serve
    from steward.client import Client

    with Client(settings=settings) as client:
        created = client.create_token("demo-admin", "admin")
    url = f"http://{settings.server.host}:{settings.server.port}"
    console.print(
        "\n[bold]Admin token[/bold] (shown once, copy it now):\n"
        f"    [bold green]{escape(created.secret)}[/bold green]\n"
        "Talk to the server from another shell:\n"
        f"    export STEWARD_URL={url} STEWARD_TOKEN={escape(created.secret)}\n"
        "    steward models\n"
        f"Browse the API at {url}/docs\n",
        soft_wrap=True,
    )
    serve(settings)
