"""The ``steward`` command: the root app, its global options, and ``main()``.

Commands import their heavy dependencies (the client, SQLAlchemy, pandas, scikit-learn,
uvicorn) inside the function body, not at the top of the module: ``steward --help`` and
shell completion then load Typer and Rich only and answer in a fraction of a second. This is
an import-time optimisation of the CLI edge, not a way around a cycle (STYLE.md §1).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from steward import __version__
from steward.cli import (
    alias,
    audit,
    card,
    db,
    demo,
    deployments,
    drift,
    experiment_analysis,
    experiments,
    gates,
    importer,
    incidents,
    labels,
    lifecycle,
    model,
    monitor,
    policy,
    register,
    runs,
    serve,
    server,
    settings,
    tokens,
)
from steward.cli._groups import DEBUG_KEY, RootGroup, report
from steward.cli._state import State

app = typer.Typer(
    cls=RootGroup,
    name="steward",
    help="Steward: the control plane for production machine learning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"steward {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(help="Server URL (overrides STEWARD_URL); without it, the embedded store."),
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="API token for the server (overrides STEWARD_TOKEN).")
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option(
            help="Folder of the embedded store (overrides STEWARD_HOME; implies no --url).",
            file_okay=False,
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback of any error.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Registry, release gates, runs and the audit ledger, over the embedded store or a Steward
    server."""
    ctx.meta[DEBUG_KEY] = debug  # set first, so --debug also holds when the settings fail
    ctx.obj = State.build(url=url, token=token, home=home, debug=debug)
    ctx.call_on_close(ctx.obj.close)


# The journey's steps and the main listings are top-level verbs; the rest are noun groups.
app.command("register")(register.register)
app.add_typer(model.app, name="models")
app.command("versions")(model.versions)
app.command("show")(model.show)
app.command("evaluate")(gates.evaluate)
app.command("gate")(gates.gate)
app.command("approve")(gates.approve)
app.command("promote")(gates.promote)
app.command("history")(gates.history)
app.command("reproduce")(gates.reproduce)
app.command("deploy")(deployments.deploy)
app.command("deployments")(deployments.deployments)
app.command("rollback")(deployments.rollback)
app.command("serve")(serve.serve)
app.command("drift")(drift.drift)
app.add_typer(monitor.app, name="monitor")
app.command("profile")(drift.profile)
app.add_typer(labels.app, name="labels")
app.command("alerts")(incidents.alerts)
app.add_typer(incidents.app, name="incident")
app.add_typer(experiments.metric_app, name="metric")
experiments.experiment_app.command("analyze")(experiment_analysis.analyze)
experiments.experiment_app.command("decide")(experiment_analysis.decide)
app.add_typer(experiments.experiment_app, name="experiment")
app.add_typer(experiments.outcomes_app, name="outcomes")
app.add_typer(policy.app, name="policy")
app.add_typer(lifecycle.app, name="lifecycle")
app.add_typer(alias.app, name="alias")
app.add_typer(card.app, name="card")
app.add_typer(runs.app, name="runs")
app.add_typer(audit.app, name="audit")
app.add_typer(tokens.app, name="tokens")
app.command("server")(server.server)
app.add_typer(db.app, name="db")
app.add_typer(settings.app, name="settings")
app.add_typer(importer.app, name="import")
app.command("demo")(demo.demo)


def main() -> None:
    """Entry point of the ``steward`` script."""
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # only reached with --debug, or before the root group runs
        if "--debug" in sys.argv[1:]:
            raise
        sys.exit(report(exc))


if __name__ == "__main__":
    main()
