"""``steward lifecycle review``: registry hygiene and the archival policy."""

from __future__ import annotations

from typing import Annotated

import typer

from steward.cli._groups import ListGroup
from steward.cli._output import console, note, print_json, short_time, success, table
from steward.cli._state import state
from steward.domain.gates import Finding, LifecycleReview

app = typer.Typer(cls=ListGroup, help="Lifecycle hygiene across every model.")

_SECTIONS = (
    ("no_owner", "Models without a person as owner"),
    ("unmonitored_production", "Production versions without monitoring"),
    ("stale_staging", "Versions in staging too long"),
    ("to_archive", "Deprecated versions past their archival date"),
    ("kept_for_rollback", "Past their archival date but kept as rollback target"),
    ("archived", "Archived now"),
)


@app.command("review")
def review(
    ctx: typer.Context,
    staging_days: Annotated[
        int, typer.Option(min=0, max=36_500, help="Flag versions in staging longer than this.")
    ] = 30,
    archive_after_days: Annotated[
        int, typer.Option(min=0, max=36_500, help="Archive versions deprecated longer than this.")
    ] = 90,
    apply: Annotated[
        bool, typer.Option("--apply", help="Archive what is past its archival date.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only, on stdout.")] = False,
) -> None:
    """List models with no owner, production versions without monitoring, versions in staging
    for more than --staging-days and deprecated versions past --archive-after-days; with
    --apply, archive the latter (never a model's rollback target)."""
    result = state(ctx).client.lifecycle_review(
        staging_days=staging_days, archive_after_days=archive_after_days, apply=apply
    )
    if as_json:
        print_json(result)
        return
    _print(result)


def _print(result: LifecycleReview) -> None:
    shown = False
    for field, title in _SECTIONS:
        findings: list[Finding] = getattr(result, field)
        if not findings:
            continue
        shown = True
        rows = ([f.model, f.version or "", short_time(f.since) or "", f.reason] for f in findings)
        columns = ["model", "version", "since", "why"]
        console.print(table(f"{title} ({len(findings)})", columns, rows))
    if not shown:
        success("Nothing needs attention.")
    elif result.to_archive:
        note("Run again with --apply to archive the versions past their archival date.")
