"""``steward runs``: training runs, their params and metric series."""

from __future__ import annotations

from typing import Annotated

import typer

from steward.cli._groups import ListGroup
from steward.cli._output import console, kv_table, note, number, print_json, short_time, table
from steward.cli._state import state

app = typer.Typer(
    cls=ListGroup,
    help="Training runs: `steward runs [--project P]` lists them, `steward runs show ID` "
    "shows one.",
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only, on stdout.")]


@app.command("list")
def list_runs(
    ctx: typer.Context,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Only this project.")
    ] = None,
    filter_: Annotated[
        str | None,
        typer.Option(
            "--filter", "-f", help="e.g. \"metrics.val_auc > 0.9 and params.depth = '3'\"."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Show at most this many.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first (the default command of `steward runs`)."""
    page = state(ctx).client.list_runs(filter_, project=project, limit=limit)
    if as_json:
        print_json(page.items)
        return
    metric_names = sorted({key for run in page.items for key in run.metrics})[:3]
    rows = (
        [run.id[:8], run.name, run.project, run.status,
         *(number(run.metrics.get(k)) for k in metric_names), short_time(run.started_at)]
        for run in page.items
    )  # fmt: skip
    columns = ["id", "name", "project", "status", *metric_names, "started"]
    console.print(table(f"Runs ({len(page.items)})", columns, rows))
    if page.next_page_token is not None:
        note(f"Showing the first {len(page.items)}; raise --limit to see more.")


@app.command("show")
def show_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    as_json: JsonOption = False,
) -> None:
    """Show a run: params, tags, artifacts and each metric's series (points, min, max, last)."""
    client = state(ctx).client
    run = client.get_run(run_id)
    histories = {key: client.metric_history(run.id, key) for key in sorted(run.metrics)}
    if as_json:
        data = run.model_dump(mode="json")
        data["metric_history"] = {
            key: [point.model_dump(mode="json") for point in points]
            for key, points in histories.items()
        }
        print_json(data)
        return
    facts = {"id": run.id, "name": run.name, "project": run.project, "status": run.status,
             "started": run.started_at, "ended": run.ended_at, "by": run.created_by}  # fmt: skip
    console.print(kv_table(f"Run {run.name or run.id}", facts, key="field"))
    series = [
        (key, len(points), min(p.value for p in points), max(p.value for p in points),
         run.metrics[key], max(p.step for p in points))
        for key, points in histories.items() if points
    ]  # fmt: skip
    if series:
        console.print(
            table("Metrics", ["metric", "points", "min", "max", "last", "last step"], series)
        )
    if run.params:
        console.print(kv_table("Params", run.params, key="param"))
    if run.tags:
        console.print(kv_table("Tags", run.tags, key="tag"))
    if run.artifacts:
        rows = [(a.path, a.size, a.digest[:19]) for a in run.artifacts]
        console.print(table("Artifacts", ["path", "bytes", "digest"], rows))
