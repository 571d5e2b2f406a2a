"""Printing for every command: JSON on stdout, tables on stdout, one-line errors on stderr.

Rich is imported here and by the commands; it is light (~80 ms), unlike pandas, SQLAlchemy or
scikit-learn, which the commands import only when they run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from steward.errors import InvalidInput

# Both resolve sys.stdout / sys.stderr when printing, so CliRunner's capture sees them.
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def write_text(path: Path, text: str, *, what: str, option: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary name, then renamed);
    InvalidInput naming ``option`` when it cannot be written."""
    try:
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:
        raise InvalidInput(
            f"Cannot write the {what} to {str(path)!r}: {exc}.", field=option
        ) from exc


def parse_instant(text: str | None, option: str) -> datetime | None:
    """An ISO 8601 date or time from the command line; one without an offset is UTC. The one
    parser of every time option (``--since``, ``--at``, ``--end``, ``--start``)."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"expected an ISO 8601 date or time such as 2025-01-31 or 2025-01-31T14:00Z, "
            f"got {text!r}",
            param_hint=option,
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def print_json(data: Any) -> None:
    """Machine-readable output: JSON only, on stdout (no Rich markup, no wrapping)."""
    typer.echo(json.dumps(_jsonable(data), indent=2, sort_keys=False))


def _jsonable(data: Any) -> Any:
    if hasattr(data, "model_dump"):
        return data.model_dump(mode="json")
    if isinstance(data, list | tuple):
        return [_jsonable(item) for item in data]
    if isinstance(data, dict):
        return {key: _jsonable(value) for key, value in data.items()}
    return data


def error_line(message: str) -> None:
    """The one line a failed command prints: ``error: <message>`` in red on stderr."""
    first = " ".join(message.split())  # one line, however the message was wrapped
    err_console.print(
        f"error: {first}", style="bold red", markup=False, highlight=False, soft_wrap=True
    )


def note(message: str) -> None:
    """A hint for humans on stderr, so it never mixes with stdout that a script may parse."""
    err_console.print(message, style="dim", markup=False, highlight=False, soft_wrap=True)


def success(message: str) -> None:
    console.print(f"[green]✓[/green] {escape(message)}", soft_wrap=True)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> Table:
    out = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD)
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*(cell(value) for value in row))
    return out


def kv_table(title: str | None, values: Mapping[str, Any], *, key: str = "key") -> Table:
    return table(title, [key, "value"], sorted(values.items()))


def cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "value") and isinstance(value.value, str):  # enums
        return escape(value.value)
    return escape(str(value))


def short_time(value: datetime | None) -> str | None:
    return None if value is None else f"{value:%Y-%m-%d %H:%M}"


def number(value: float | None) -> str | None:
    return None if value is None else f"{value:.4g}"


def aliases_text(aliases: Mapping[str, int]) -> str:
    return ", ".join(f"{alias}→v{version}" for alias, version in sorted(aliases.items()))


_KEY_VALUE = re.compile(r"^\s*([^=\s][^=]*?)\s*=(.*)$")


def parse_pairs(pairs: list[str] | None, option: str) -> dict[str, str]:
    """``["k=v", ...]`` as a dict; a malformed pair is a usage error (exit 2)."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        match = _KEY_VALUE.match(pair)
        if match is None:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        out[match.group(1)] = match.group(2).strip()
    return out


def parse_metrics(pairs: list[str] | None) -> dict[str, float]:
    return parse_numbers(pairs, "--metric", "the value of metric")


def parse_numbers(pairs: list[str] | None, option: str, what: str) -> dict[str, float]:
    """``KEY=NUMBER`` pairs; a value that is not a number is refused naming ``what`` and key."""
    out: dict[str, float] = {}
    for key, text in parse_pairs(pairs, option).items():
        try:
            out[key] = float(text)
        except ValueError:
            raise typer.BadParameter(
                f"{what} {key!r} must be a number, got {text!r}", param_hint=option
            ) from None
    return out
