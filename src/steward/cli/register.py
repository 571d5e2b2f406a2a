"""``steward register``: the first step of the journey, a model file into the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from steward.cli._output import parse_metrics, parse_pairs, print_json, success
from steward.cli._state import state
from steward.domain.enums import Flavor
from steward.errors import InvalidInput


def register(
    ctx: typer.Context,
    path: Annotated[
        Path,
        typer.Argument(
            help="The model file: .onnx, .skops (or a pickle with --flavor python --trusted).",
            metavar="PATH",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="The model to add a version to.")],
    flavor: Annotated[
        Flavor | None,
        typer.Option(help="How the file is stored and loaded; detected from it by default."),
    ] = None,
    metric: Annotated[
        list[str] | None, typer.Option(help="KEY=NUMBER, repeatable: --metric auc=0.91")
    ] = None,
    param: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
    training_data: Annotated[
        Path | None,
        typer.Option(
            help="Training data (.parquet or .csv): gives the signature, the data fingerprint "
            "and the reference sample for monitoring.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    owner: Annotated[str | None, typer.Option(help="Owner, when the model is new.")] = None,
    team: Annotated[str | None, typer.Option(help="Team, when the model is new.")] = None,
    tier: Annotated[
        int | None, typer.Option(min=1, max=3, help="Risk tier 1 (highest) to 3, when new.")
    ] = None,
    use_case: Annotated[str | None, typer.Option(help="Use case, when the model is new.")] = None,
    description: Annotated[str | None, typer.Option(help="Describes this version.")] = None,
    trusted: Annotated[
        bool,
        typer.Option(
            "--trusted",
            help="Mark a python-flavor (pickled) model as trusted; it will run code on load.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the version as JSON.")] = False,
) -> None:
    """Register a model file as a new version of NAME, with its lineage and metrics."""
    from steward.client import register_model

    kwargs: dict[str, Any] = {
        "metrics": parse_metrics(metric),
        "params": parse_pairs(param, "--param"),
        "tags": parse_pairs(tag, "--tag"),
        "owner": owner,
        "team": team,
        "risk_tier": tier,
        "use_case": use_case,
        "description": description,
        "trusted": trusted,
    }
    if training_data is not None:
        kwargs["training_data"] = read_table(training_data)
    version = register_model(
        path,
        name,
        flavor=flavor.value if flavor else None,
        client=state(ctx).client,
        **kwargs,
    )
    if as_json:
        print_json(version)
        return
    success(f"Registered {version.uri} ({version.flavor.value}).")


def read_table(path: Path) -> Any:
    """A pandas DataFrame from a .parquet or .csv file."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path)
    raise InvalidInput(
        f"Cannot read training data from {path.name!r}: use a .parquet or .csv file.",
        field="training_data",
    )
