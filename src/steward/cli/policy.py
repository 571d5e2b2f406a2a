"""``steward policy show|set|list``: the release policies kept in the store, as YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from steward.cli._groups import ListGroup
from steward.cli._output import console, note, print_json, success, table
from steward.cli._state import state

app = typer.Typer(
    cls=ListGroup,
    help="Release policies (YAML, versioned in the store): `steward policy` lists them.",
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only, on stdout.")]


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="The policy; omit it and pass --model for a model's.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Show the policy in force for this model.")
    ] = None,
    revision: Annotated[
        int | None, typer.Option(min=1, help="A past revision (default: the latest).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Print a policy's YAML text (to stdout, so it can be saved and edited)."""
    policy = state(ctx).client.get_policy(name, model=model, revision=revision)
    if as_json:
        print_json(policy)
        return
    note(f"# {policy.name} r{policy.revision} {policy.digest} by {policy.created_by}")
    typer.echo(policy.text, nl=not policy.text.endswith("\n"))


@app.command("set")
def set_policy(
    ctx: typer.Context,
    path: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help="The policy YAML.", exists=True, dir_okay=False, readable=True
        ),
    ],
    model: Annotated[str | None, typer.Option(help="Also gate this model by the policy.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Store FILE as the next revision of the policy it names (refused with the line when it
    does not parse); with --model, gate that model by it."""
    text = path.read_text(encoding="utf-8")
    saved = state(ctx).client.set_policy(text, model)
    if as_json:
        print_json(saved)
        return
    where = f"; {model} is gated by it" if model else ""
    success(f"Stored policy {saved.name} r{saved.revision}{where}.")


@app.command("list")
def list_policies(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the stored policies: name, latest revision, when and by whom."""
    items = state(ctx).client.list_policies()
    if as_json:
        print_json(items)
        return
    rows = ([p.name, p.revision, p.created_at, p.created_by, p.digest[:19]] for p in items)
    columns = ["name", "revision", "stored", "by", "digest"]
    console.print(table(f"Policies ({len(items)})", columns, rows))
