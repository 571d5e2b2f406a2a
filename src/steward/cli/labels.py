"""``steward labels log``: ground truth from a file, joined to a deployment's predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from steward.cli._output import err_console, escape, print_json, success
from steward.cli._state import state

app = typer.Typer(help="Labels: the ground truth that live performance is measured against.")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only, on stdout.")]


@app.command("log")
def log(
    ctx: typer.Context,
    # No `exists=True`: a missing file gets the same one-line error (exit 2) as any bad input.
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="A .parquet or .csv file of labels.")
    ],
    deployment: Annotated[str, typer.Option("--deployment", "-d", help="The deployment.")],
    request_id_column: Annotated[
        str, typer.Option(help="The column holding the predictions' request ids.")
    ] = "request_id",
    label_column: Annotated[str, typer.Option(help="The column holding the labels.")] = "label",
    row_column: Annotated[
        str | None,
        typer.Option(
            help="The column holding each row's position in its request (default: "
            "'row' if the file has it, else 0)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Log the labels in FILE for a deployment's predictions: all or nothing, one file in the
    label log and one ledger event. A label logged again for the same request id and row
    corrects the earlier one."""
    receipt = state(ctx).client.log_labels(
        deployment, file, request_id_column=request_id_column, label_column=label_column,
        row_column=row_column,
    )  # fmt: skip
    if as_json:
        print_json(receipt)
        return
    success(f"Logged {receipt.rows:,} labels for {receipt.deployment} ({receipt.file}).")
    if receipt.unknown_request_ids:
        examples = ", ".join(receipt.unknown_examples)
        err_console.print(
            f"[yellow]{receipt.unknown_request_ids:,} request id(s) have no prediction in the "
            f"last 7 days[/yellow] (e.g. {escape(examples)}): they are stored and join once "
            "their predictions are logged; check the ids if they never do.",
            soft_wrap=True,
        )
