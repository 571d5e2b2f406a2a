"""``steward drift`` and ``steward profile``: the drift engine on files, without a deployment.

``drift`` exits 0 when the dataset did not drift and 3 (``GateFailed``'s code, "a check said
no", as ``steward gate`` uses it) when it did, after printing the table. These commands read
local files only, so they call the monitoring capability in-process rather than through the
client, which would open the store for nothing. numpy, scipy and pyarrow load inside the
commands, not at import (see ``main``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from steward.cli._output import (
    console,
    escape,
    note,
    parse_numbers,
    parse_pairs,
    print_json,
    table,
    write_text,
)
from steward.errors import GateFailed

if TYPE_CHECKING:
    from steward.domain.drift import DriftReport
    from steward.stats.drift import DriftOptions
    from steward.stats.profile import Profile

# No `exists=True`: a missing or unreadable file gets the same one-line error, naming it, as
# every other bad input of these commands (Typer's own check prints a boxed usage error).
DataArgument = Annotated[Path, typer.Argument(metavar="DATA", help="A .parquet or .csv file.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only, on stdout.")]


def drift(
    reference: Annotated[
        Path,
        typer.Argument(
            metavar="REFERENCE",
            help="The reference: a .parquet or .csv file, or a profile (.json) written by "
            "`steward profile --out`.",
        ),
    ],
    current: Annotated[
        Path, typer.Argument(metavar="CURRENT", help="The current data: a .parquet or .csv file.")
    ],
    columns: Annotated[
        list[str] | None,
        typer.Option("--columns", help="Compare only these columns (comma-separated; repeatable)."),
    ] = None,
    threshold: Annotated[
        list[str] | None,
        typer.Option(help="COLUMN=VALUE: this column's threshold (p-value or distance)."),
    ] = None,
    method: Annotated[
        list[str] | None,
        typer.Option(help="COLUMN=TEST: ks, wasserstein, psi, chisquare, jensenshannon or z."),
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(help="COLUMN=KIND: numerical or categorical, instead of the inferred kind."),
    ] = None,
    drift_share: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Share of drifted columns that makes dataset drift."),
    ] = 0.5,
    html: Annotated[
        Path | None,
        typer.Option(help="Also write a standalone report with per-feature histograms here."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Compare two tables column by column with Evidently's tests: exit 0 when the dataset did
    not drift, 3 when it did."""
    from steward.monitoring.drift import compare

    options = _options(threshold, method, kind, drift_share, histograms=html is not None)
    wanted = _split(columns)
    report = compare(reference, current, columns=wanted, options=options)
    if html is not None:
        from steward.monitoring.report import render_html

        write_text(html, render_html(report, str(reference), str(current)), what="report",
                   option="html")  # fmt: skip
    if as_json:
        print_json(report.model_dump(mode="json", exclude={"columns": {"__all__": {"histogram"}}}))
    else:
        _print_report(report)
    if html is not None:
        note(f"Wrote the report to {html}.")
    if report.dataset_drift:
        raise typer.Exit(GateFailed.exit_code)


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _options(
    thresholds: list[str] | None,
    methods: list[str] | None,
    kinds: list[str] | None,
    drift_share: float,
    *,
    histograms: bool,
) -> DriftOptions:
    from steward.domain.drift import ColumnKind, DriftMethod
    from steward.stats.drift import DriftOptions

    return DriftOptions(
        thresholds=parse_numbers(thresholds, "--threshold", "the threshold of column"),
        methods=_enum_pairs(methods, "--method", DriftMethod),
        kinds={c: k for c, k in _enum_pairs(kinds, "--kind", ColumnKind).items()},
        drift_share=drift_share,
        histograms=histograms,
    )


def _enum_pairs(pairs: list[str] | None, option: str, enum: Any) -> dict[str, Any]:
    out = {}
    allowed = [member.value for member in enum]
    if option == "--kind":
        allowed = ["numerical", "categorical"]
    for column, text in parse_pairs(pairs, option).items():
        if text not in allowed:
            raise typer.BadParameter(
                f"column {column!r}: {text!r} is not one of {', '.join(allowed)}",
                param_hint=option,
            )
        out[column] = enum(text)
    return out


_SHORT_KIND = {"numerical": "num", "categorical": "cat"}


def _print_report(report: DriftReport) -> None:
    out = table(
        f"Drift: {report.current_rows:,} current rows vs {report.reference_rows:,} reference "
        f"rows{' (profile)' if report.reference_from_profile else ''}",
        ["column", "kind", "test", "statistic", "score", "threshold", "drifted"],
        [],
    )
    out.columns[2].no_wrap = True  # a test's name folded in two reads as two words
    skipped = []
    for c in report.columns:
        kind = _SHORT_KIND.get(c.kind.value, c.kind.value)
        if c.method is None:
            out.add_row(escape(c.column), kind, "—", "—", "—", "—", "[dim]not tested[/]")
            skipped.append(f"{c.column} ({(c.note or '').removeprefix('not tested: ')})")
            continue
        score = ("p " if c.p_value is not None else "") + _num(c.score) + ("" if c.exact else " ≈")
        drifted = "[bold red]yes[/]" if c.drifted else "[green]no[/]"
        out.add_row(escape(c.column), kind, c.method.value, _num(c.statistic), score,
                    _num(c.threshold), drifted)  # fmt: skip
    console.print(out)
    verdict = "[bold red]dataset drift[/]" if report.dataset_drift else "[green]no dataset drift[/]"
    console.print(
        f"{verdict}: {report.n_drifted} of {report.n_tested} tested columns drifted "
        f"(share {report.share_drifted:.3g}; drift at {report.drift_share:g})",
        soft_wrap=True,
    )
    for label, names in (("not tested", skipped),
                         ("only in the reference", report.missing_columns),
                         ("only in the current data", report.extra_columns)):  # fmt: skip
        if names:
            note(f"{label.capitalize()}: {', '.join(names)}")


def profile(
    data: DataArgument,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the profile (compact JSON) to this file."),
    ] = None,
    batch_rows: Annotated[
        int, typer.Option(min=1, help="Rows read per batch (memory holds one batch).")
    ] = 65_536,
    as_json: JsonOption = False,
) -> None:
    """Profile a table, reading it in batches: per column its type, count, missing values,
    min/max, mean/std, quantiles (a mergeable sketch) or category counts."""
    from steward.monitoring.drift import build_profile

    built = build_profile(data, batch_rows=batch_rows)
    if out is not None:
        write_text(out, built.to_json(), what="profile", option="out")
    if as_json:
        print_json(built.to_dict())
    else:
        _print_profile(built, data)
    if out is not None:
        note(f"Wrote the profile to {out}; compare against it with `steward drift {out} FILE`.")


def _print_profile(built: Profile, data: Path) -> None:
    summary = built.to_dict()["columns"]
    columns = ["column", "kind", "count", "missing", "min", "median", "max", "top categories"]
    out = table(f"Profile of {data.name}: {built.rows:,} rows", columns, [])
    out.columns[-1].min_width = 16
    for name, column in summary.items():
        out.add_row(*_profile_row(name, column, built.rows))
    console.print(out)


def _profile_row(name: str, column: dict[str, Any], rows: int) -> list[str]:
    missing = column["missing"] + column.get("infinite", 0)
    share = f"{missing / rows:.1%}" if rows else "—"
    kind = _SHORT_KIND.get(column["kind"], column["kind"])
    base = [escape(name), kind, f"{column['count']:,}", share]
    if column["family"] == "numeric":
        median = (column.get("quantiles") or {}).get("0.5")
        return [*base, _num(column["min"]), _num(median), _num(column["max"]), ""]
    if column["family"] == "datetime":
        return [*base, _instant(column["min"]), "", _instant(column["max"]), ""]
    keys, counts = column["categories"]
    pairs = zip(keys[:3], counts[:3], strict=True)
    top = ", ".join(f"{k} {c / max(column['count'], 1):.0%}" for k, c in pairs)
    more = f" (+{len(keys) - 3})" if len(keys) > 3 else ""
    return [*base, "", "", "", escape(top + more)]


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _instant(nanoseconds: int | None) -> str:
    if nanoseconds is None:
        return "—"
    from datetime import UTC, datetime

    return f"{datetime.fromtimestamp(nanoseconds / 1e9, tz=UTC):%Y-%m-%d %H:%M}"
