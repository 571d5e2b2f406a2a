"""``steward tokens create|list|revoke``: API tokens for the server."""

from __future__ import annotations

from typing import Annotated

import typer

from steward.cli._output import console, err_console, escape, print_json, success, table
from steward.cli._state import state
from steward.domain.enums import Role

app = typer.Typer(help="API tokens: each has a role (viewer, developer, approver, admin).")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only, on stdout.")]


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", "-n", help="What the token is for.")],
    role: Annotated[Role, typer.Option(help="What the token may do.")],
    expires_in_days: Annotated[
        float | None, typer.Option(help="Expire after this many days.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a token and print its secret, once: the store keeps only its hash."""
    created = state(ctx).client.create_token(name, role, expires_in_days=expires_in_days)
    if as_json:
        print_json(created)
        return
    token = created.token
    success(f"Created token {token.name!r} ({token.role.value}), id {token.id}.")
    console.print(f"\n    [bold]{escape(created.secret)}[/bold]\n", soft_wrap=True)
    err_console.print(
        "[yellow]Copy it now: it will not be shown again.[/yellow] "
        "Use it as STEWARD_TOKEN or `steward --token …`.",
        soft_wrap=True,
    )


@app.command("list")
def list_tokens(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List tokens (never their secrets)."""
    items = state(ctx).client.list_tokens()
    if as_json:
        print_json(items)
        return
    rows = (
        [t.id, t.name, t.role, t.created_by, t.created_at, t.expires_at, t.revoked] for t in items
    )
    columns = ["id", "name", "role", "created by", "created", "expires", "revoked"]
    console.print(table(f"Tokens ({len(items)})", columns, rows))


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id.")],
    as_json: JsonOption = False,
) -> None:
    """Revoke a token: it stops working at once."""
    token = state(ctx).client.revoke_token(token_id)
    if as_json:
        print_json(token)
        return
    success(f"Revoked token {token.name!r} ({token.id}).")
