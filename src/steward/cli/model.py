"""``steward models [list|create]``, ``steward versions`` and ``steward show``: the registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.columns import Columns
from rich.panel import Panel
from rich.table import Table

from steward.cli._groups import ListGroup
from steward.cli._output import (
    aliases_text,
    cell,
    console,
    kv_table,
    note,
    number,
    print_json,
    short_time,
    success,
    table,
)
from steward.cli._state import state
from steward.errors import InvalidInput

if TYPE_CHECKING:
    from steward.domain.entities import Model, ModelVersion

FilterOption = Annotated[
    str | None,
    typer.Option(
        "--filter",
        "-f",
        help="Conditions joined by AND, e.g. \"tier <= 2 and team = 'risk'\" or "
        '"metrics.auc > 0.8".',
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only, on stdout.")]
LimitOption = Annotated[int, typer.Option(min=1, max=1000, help="Show at most this many.")]


app = typer.Typer(
    cls=ListGroup,
    help="Registered models: `steward models [--filter F]` lists them; `steward models create "
    "NAME` adds one (register does too, on first use).",
)


@app.command("list")
def models(
    ctx: typer.Context,
    filter_: FilterOption = None,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
) -> None:
    """List registered models: owner, team, risk tier, latest version and aliases."""
    page = state(ctx).client.list_models(filter_, limit=limit)
    if as_json:
        print_json(page.items)
        return
    console.print(models_table(page.items))
    _more(page.next_page_token, len(page.items))


@app.command("create")
def create_model(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model's unique name.")],
    owner: Annotated[str | None, typer.Option(help="Owner; default the caller.")] = None,
    team: Annotated[str | None, typer.Option(help="Owning team.")] = None,
    tier: Annotated[int, typer.Option(min=1, max=3, help="Risk tier, 1 (highest) to 3.")] = 3,
    use_case: Annotated[str | None, typer.Option(help="What the model is for.")] = None,
    description: Annotated[str | None, typer.Option(help="A short description.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a model (no versions yet); an existing name exits 5."""
    created = state(ctx).client.create_model(
        name, owner=owner, team=team, risk_tier=tier, use_case=use_case, description=description
    )
    if as_json:
        print_json(created)
        return
    success(f"Created model {created.name} (owner {created.owner}, tier {created.risk_tier}).")


def models_table(items: list[Model]) -> Table:
    return table(
        f"Models ({len(items)})",
        ["name", "owner", "team", "tier", "latest", "aliases"],
        (
            [m.name, m.owner, m.team, m.risk_tier, m.latest_version, aliases_text(m.aliases)]
            for m in items
        ),
    )


def versions(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="The model; omit it and pass --all to search all.")
    ] = None,
    all_models: Annotated[
        bool, typer.Option("--all", help="Search the versions of every model.")
    ] = False,
    filter_: FilterOption = None,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
) -> None:
    """List a model's versions, or search versions across models (--all), newest first.

    Example: steward versions --all --filter "metrics.auc > 0.9 and tier = 1"
    """
    if (name is None) == (not all_models):
        raise InvalidInput(
            "Name a model (`steward versions NAME`) or pass --all to search every model, "
            "not both." if name else
            "Name a model (`steward versions NAME`) or pass --all to search every model.",
            field="name",
        )  # fmt: skip
    page = state(ctx).client.list_versions(filter_, model=name, limit=limit)
    if as_json:
        print_json(page.items)
        return
    console.print(versions_table(page.items, title=name or "Versions"))
    _more(page.next_page_token, len(page.items))


def versions_table(items: list[ModelVersion], *, title: str = "Versions") -> Table:
    metric_names = sorted({key for v in items for key in v.metrics})[:2]
    return table(
        f"{title} ({len(items)})",
        ["model", "v", "flavor", "status", "aliases", *metric_names, "created"],
        (
            [
                v.model_name, v.version, v.flavor, v.status, ", ".join(v.aliases),
                *(number(v.metrics.get(key)) for key in metric_names), short_time(v.created_at),
            ]
            for v in items
        ),
    )  # fmt: skip


def show(
    ctx: typer.Context,
    uri: Annotated[str, typer.Argument(help="models:/NAME/VERSION, models:/NAME@ALIAS, …")],
    as_json: JsonOption = False,
) -> None:
    """Show one version: lineage, metrics, params, signature, files and aliases."""
    version = state(ctx).client.get_version(uri)
    if as_json:
        print_json(version)
        return
    render_version(version)


def render_version(v: ModelVersion) -> None:
    facts = {
        "model": v.model_name,
        "version": v.version,
        "flavor": v.flavor,
        "status": v.status,
        "aliases": ", ".join(v.aliases) or None,
        "trusted": v.trusted,
        "created": f"{cell(v.created_at)} by {v.created_by}",
        "description": v.description,
    }
    console.print(Panel(_facts(facts), title=f"[bold]{v.uri}[/bold]", expand=False))
    lineage = v.lineage
    git = lineage.git
    commit = None if git.commit is None else git.commit[:12] + (" (dirty)" if git.dirty else "")
    lineage_rows = {
        "git commit": commit,
        "git branch": git.branch,
        "training data": lineage.training_data,
        "evaluation data": lineage.evaluation_data,
        "command": lineage.command,
        "run": lineage.run_id,
        "python": lineage.environment.get("python"),
        "reference sample": v.reference_sample is not None,
        **{f"from {key}": value for key, value in lineage.external.items()},
    }  # fmt: skip
    console.print(kv_table("Lineage", lineage_rows, key="what"))
    parts = []
    if v.metrics:
        parts.append(kv_table("Metrics", v.metrics, key="metric"))
    if v.params:
        parts.append(kv_table("Params", v.params, key="param"))
    if v.tags:
        parts.append(kv_table("Tags", v.tags, key="tag"))
    if parts:
        console.print(Columns(parts))
    if v.signature is not None:
        rows = [("input", c.name, c.dtype, c.shape) for c in v.signature.inputs]
        rows += [("output", c.name, c.dtype, c.shape) for c in v.signature.outputs]
        console.print(table("Signature", ["", "name", "dtype", "shape"], rows))
    files = [
        (name + (" (primary)" if name == v.primary_file else ""), ref.size, ref.digest[:19])
        for name, ref in sorted(v.files.items())
    ]
    console.print(table("Files", ["file", "bytes", "digest"], files))


def _facts(values: dict[str, object]) -> str:
    return "\n".join(
        f"[bold]{key}[/bold]: {cell(value)}" for key, value in values.items() if value is not None
    )


def _more(next_page_token: str | None, shown: int) -> None:
    if next_page_token is not None:
        note(f"Showing the first {shown}; raise --limit to see more.")
