"""``steward audit verify|log``: check the hash chain of the ledger and read its events."""

from __future__ import annotations

from typing import Annotated

import typer

from steward.cli._output import (
    console,
    error_line,
    parse_instant,
    print_json,
    short_time,
    success,
    table,
)
from steward.cli._state import state
from steward.errors import LedgerCorrupted

app = typer.Typer(help="The audit ledger: every change of state, hash-chained.")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only, on stdout.")]


@app.command("verify")
def verify(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Recompute the hash chain; exit 8 and name the first broken event if it does not hold."""
    report = state(ctx).client.verify_ledger()
    if as_json:
        print_json(report)
    elif report.ok:
        success(f"Ledger intact: {report.events_checked} events verified.")
    else:
        error_line(
            f"the ledger is broken at event {report.first_broken_seq}: {report.reason} "
            f"({report.events_checked} events checked)"
        )
    if not report.ok:
        raise typer.Exit(LedgerCorrupted.exit_code)


@app.command("log")
def log(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option(help="e.g. version.registered, alias.set.")] = None,
    subject: Annotated[
        str | None,
        typer.Option(help="The subject's id: a model name, models:/NAME/VERSION, a run id …"),
    ] = None,
    subject_type: Annotated[
        str | None, typer.Option(help="model, model_version, run, token, …")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Who did it.")] = None,
    since: Annotated[
        str | None, typer.Option(help="ISO 8601 date or time (UTC unless it has an offset).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 date or time, exclusive.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Show at most this many.")] = 50,
    oldest_first: Annotated[
        bool, typer.Option("--oldest-first", help="Oldest events first (default: newest).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List ledger events, newest first, filtered by kind, subject, actor and time."""
    page = state(ctx).client.list_events(
        kind=kind,
        subject_type=subject_type,
        subject_id=subject,
        actor=actor,
        since=parse_instant(since, "--since"),
        until=parse_instant(until, "--until"),
        newest_first=not oldest_first,
        limit=limit,
    )
    if as_json:
        print_json(page.items)
        return
    rows = (
        [
            e.seq,
            short_time(e.occurred_at),
            e.actor,
            e.kind,
            f"{e.subject_type}:{e.subject_id}",
            e.hash[:12],
        ]
        for e in page.items
    )
    columns = ["seq", "when (UTC)", "actor", "kind", "subject", "hash"]
    console.print(table(f"Events ({len(page.items)})", columns, rows))
