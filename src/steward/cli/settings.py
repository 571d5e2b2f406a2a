"""``steward settings show``: the effective configuration, secrets masked."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

import typer

from steward.cli._output import console, print_json, table
from steward.cli._state import state

app = typer.Typer(help="Steward's configuration (flags > STEWARD_* > steward.toml > defaults).")

_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]*@")


@app.command("show")
def show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only, on stdout.")] = False,
) -> None:
    """Print the effective settings, with secrets masked."""
    settings = state(ctx).settings
    values = settings.masked()
    # The derived values are what the store will actually use; the password is never printed.
    values["effective"] = {
        "database_url": mask_url(settings.database_url),
        "artifact_root": mask_url(settings.artifact_root),
        "mode": "remote" if settings.url else "embedded",
    }
    if as_json:
        print_json(values)
        return
    console.print(table("Settings", ["setting", "value"], flatten(values)))


def mask_url(url: str) -> str:
    """``postgresql://user:secret@host/db`` → ``postgresql://user:***@host/db``."""
    return _PASSWORD.sub(r"\1***@", url)


def flatten(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value
