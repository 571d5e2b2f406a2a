"""``steward alias set|delete``: move the named pointers (champion, challenger, …) of a model."""

from __future__ import annotations

from typing import Annotated

import typer

from steward.cli._output import print_json, success
from steward.cli._state import state

app = typer.Typer(help="Point a model's aliases (champion, challenger, …) at versions.")


@app.command("set")
def set_alias(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model.")],
    alias: Annotated[str, typer.Argument(help="The alias, e.g. champion.")],
    version: Annotated[int, typer.Argument(min=1, help="The version it points to.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the alias as JSON.")] = False,
) -> None:
    """Point ALIAS at VERSION of NAME (atomically; a previous target is released)."""
    result = state(ctx).client.set_alias(name, alias, version)
    if as_json:
        print_json(result)
        return
    success(f"{name}@{result.alias} → version {result.version}")


@app.command("delete")
def delete_alias(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model.")],
    alias: Annotated[str, typer.Argument(help="The alias to remove.")],
) -> None:
    """Remove ALIAS from NAME; the version it pointed to is untouched."""
    state(ctx).client.delete_alias(name, alias)
    success(f"Deleted alias {alias!r} of {name}.")
