"""``steward import mlflow``: copy registered models, versions and runs from MLflow."""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Annotated

import typer

from steward.cli._output import console, error_line, kv_table, note, print_json, success

app = typer.Typer(help="Bring models and runs in from other systems.")

MLFLOW_MISSING = "the MLflow importer needs the mlflow extra: pip install 'ml-steward[mlflow]'"


@app.command("mlflow")
def import_mlflow(
    ctx: typer.Context,
    tracking_uri: Annotated[
        str,
        typer.Option(help="MLflow tracking URI, e.g. http://mlflow:5000 or sqlite:///mlflow.db."),
    ],
    registry_uri: Annotated[
        str | None, typer.Option(help="MLflow registry URI, when not the tracking URI.")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Import only this registered model (repeatable)."),
    ] = None,
    trust_pickles: Annotated[
        bool,
        typer.Option(
            "--trust-pickles",
            help="Load pickled scikit-learn models with MLflow and re-package them as skops "
            "(runs their code; only for sources you trust).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import MLflow registered models with their versions, runs, metrics and aliases.

    Safe to re-run: versions imported before are skipped.
    """
    if importlib.util.find_spec("mlflow") is None:
        error_line(MLFLOW_MISSING)
        raise typer.Exit(2)
    from steward.cli._state import state
    from steward.importers.mlflow import import_from_mlflow

    client = state(ctx).client
    with console.status("Importing from MLflow…") as status:

        def progress(label: str, done: int, total: int) -> None:
            status.update(f"Importing from MLflow: {done}/{total} {label}")

        report = import_from_mlflow(
            client,
            tracking_uri=tracking_uri,
            registry_uri=registry_uri,
            models=list(model) if model else None,
            progress=progress,
            trust_pickles=trust_pickles,
        )
    data = dataclasses.asdict(report)
    if as_json:
        print_json(data)
        return
    success(f"Imported from MLflow at {tracking_uri}.")
    counts = {k: v for k, v in data.items() if not isinstance(v, list)}
    console.print(kv_table("Import report", counts, key="created"))
    for uri in report.untrusted:
        note(f"{uri} is a pickle kept as an untrusted python-flavor version (see --trust-pickles).")
    for warning in report.warnings:
        note(f"warning: {warning}")
