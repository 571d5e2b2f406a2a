"""``steward card``: print a version's model card, or edit the model's card sections."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from steward.cli._groups import ShowGroup
from steward.cli._output import success
from steward.cli._state import state
from steward.errors import InvalidInput

app = typer.Typer(
    cls=ShowGroup,
    help="Model cards: `steward card models:/NAME/VERSION` prints one in Markdown; "
    "`steward card edit NAME --section S --text T` fills a section.",
)

SECTIONS = "intended_use, limitations, ethical_considerations, training_data, evaluation"


@app.command("show")
def show_card(
    ctx: typer.Context,
    uri: Annotated[str, typer.Argument(help="models:/NAME/VERSION or models:/NAME@ALIAS.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the Markdown to this file.", dir_okay=False),
    ] = None,
) -> None:
    """Print the model card of URI as Markdown (the default command of `steward card`)."""
    markdown = state(ctx).client.model_card(uri)
    if output is None:
        typer.echo(markdown, nl=False)
        return
    output.write_text(markdown, encoding="utf-8")
    success(f"Wrote the card of {uri} to {output}.")


@app.command("edit")
def edit_card(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model.")],
    section: Annotated[str, typer.Option(help=f"One of: {SECTIONS}.")],
    text: Annotated[str | None, typer.Option(help="The section's Markdown.")] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            help="Read the section's Markdown from this file.", exists=True, dir_okay=False
        ),
    ] = None,
) -> None:
    """Write one section of NAME's model card (the other sections are kept)."""
    if (text is None) == (file is None):
        raise InvalidInput("Give the section's content with either --text or --file.")
    content = file.read_text(encoding="utf-8") if file is not None else text
    state(ctx).client.update_model(name, card={section: content})
    success(f"Updated the {section!r} section of {name}'s model card.")
