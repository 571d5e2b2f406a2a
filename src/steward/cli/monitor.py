"""``steward monitor run|show|configure``: measure deployments' live traffic, read the results,
and set what each monitor watches.

``run`` exits 0 when every window was measured and stored, whatever it found (no traffic, no
reference and a failed read are recorded states, shown in the table), and 3 when any alert
fired (``GateFailed``'s code, "a check said no", as ``steward drift`` uses it for dataset
drift): a cron job or an orchestrator can act on that. Bad input exits 2, an unknown deployment
4 (docs/errors.md). The trend and the report read the windows the monitor stored; the module
``steward.monitoring.window_report`` groups the metrics and draws the HTML page.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from steward.cli._output import (
    console,
    escape,
    note,
    number,
    parse_instant,
    parse_numbers,
    print_json,
    success,
    table,
    write_text,
)
from steward.cli._sparkline import sparkline
from steward.cli._state import state
from steward.domain.durations import format_duration, parse_duration
from steward.domain.monitoring import MAX_WINDOW_S, MIN_INTERVAL_S, Severity
from steward.errors import GateFailed, InvalidInput

if TYPE_CHECKING:
    from steward.domain.monitoring import MonitorSpec, MonitorWindow, StoredMonitor
    from steward.schemas.monitoring import MonitorOutcomeRead, MonitorRunResult

app = typer.Typer(
    no_args_is_help=True,
    help="Monitors: drift, data quality, freshness, performance and SLOs of each deployment's "
    "live traffic. `steward monitor run` measures now (exit 3 when an alert fired), "
    "`steward monitor show NAME` reads the results.",
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only, on stdout.")]
DurationText = "90s|15m|1h|2d"
_STATUS_STYLE = {"ok": "green", "no_data": "yellow", "no_reference": "yellow", "failed": "red"}


class EngineName(StrEnum):
    LOCAL = "local"
    RAY = "ray"


# -- run -------------------------------------------------------------------------------------
@app.command("run")
def run(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None,
        typer.Argument(metavar="DEPLOYMENT", help="Deployments to measure (default: all)."),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(metavar=DurationText, help="The window's length (default: the monitor's)."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(metavar="ISO-TIME", help="The window's end (default: now; naive = UTC)."),
    ] = None,
    engine: Annotated[
        EngineName,
        typer.Option(help="local: read the log in this process; ray: one task per hour."),
    ] = EngineName.LOCAL,
    as_json: JsonOption = False,
) -> None:
    """Measure one window of each deployment's traffic now and apply its alert rules.

    Every window is stored (no traffic, no reference or a failed read are recorded states);
    fired alerts open or join incidents. Exit codes: 0 measured, 3 an alert fired, 2 bad
    input, 4 unknown deployment.
    """
    if window is not None:
        parse_duration(window, field="--window", maximum=MAX_WINDOW_S)
    result = state(ctx).client.run_monitors(
        names or [], window=window, end=parse_instant(end, "--end"), engine=engine.value
    )
    if as_json:
        print_json(result)
    else:
        _print_outcomes(result)
    if result.fired:
        raise typer.Exit(GateFailed.exit_code)


def _print_outcomes(result: MonitorRunResult) -> None:
    """One block per deployment: a status line, then what drifted, key metrics and alerts."""
    if not result.outcomes:
        console.print("No deployment to monitor: deploy one with `steward deploy`.")
        return
    for outcome in result.outcomes:
        _print_outcome(outcome)
    fired = result.fired
    if fired:
        console.print(
            f"[bold red]{len(fired)} alert(s) fired[/]: `steward alerts` lists them, "
            "`steward incident` shows the incidents they opened or joined.",
            soft_wrap=True,
        )


def _print_outcome(outcome: MonitorOutcomeRead) -> None:
    window = outcome.window
    style = _STATUS_STYLE.get(window.status.value, "white")
    console.print(
        f"[bold]{escape(window.deployment)}[/] [{style}]{window.status.value}[/] · "
        f"{window.rows:,} rows · {window.start:%Y-%m-%d %H:%M} → {window.end:%H:%M} UTC",
        soft_wrap=True,
    )
    lines = {"drifted": _drifted_summary(window), "metrics": _key_metrics(window.metrics)}
    if window.error:
        lines["error"] = window.error
    for label, text in lines.items():
        if text:
            console.print(f"  {label}: {escape(text)}", soft_wrap=True)
    for alert in outcome.fired:
        console.print(
            f"  [bold red]fired[/]: {escape(alert.rule.name)} ({alert.severity.value}): "
            f"{escape(alert.rule.describe())}, value {alert.value:.4g}",
            soft_wrap=True,
        )


def _drifted_summary(window: MonitorWindow) -> str:
    tested = window.metrics.get("drift.n_tested")
    if tested is None:
        return ""
    names = [c["column"] for c in _drift_columns(window, "drift") if c.get("drifted")]
    return f"{', '.join(names) or 'none'} ({len(names)} of {int(tested)} tested)"


# the metrics `run` prints when measured: (metric, label, format); for performance and
# estimated, the first of _TASK_METRICS the window has
_KEY_METRICS = (
    ("drift.share_drifted", "drift share", "{:.2g}"),
    ("drift.prediction.score", "prediction drift", "{:.3g}"),
    ("quality.schema_violations", "schema violations", "{:.0f}"),
    ("slo.error_rate", "errors", "{:.2%}"),
    ("slo.p95_ms", "p95", "{:.3g} ms"),
)
_TASK_METRICS = ("roc_auc", "accuracy", "f1", "rmse", "mae", "r2")


def _key_metrics(metrics: dict[str, float]) -> str:
    parts = [f"{label} {form.format(metrics[key])}" for key, label, form in _KEY_METRICS
             if key in metrics]  # fmt: skip
    for section, label in (("performance", "live"), ("estimated", "estimated")):
        name = next((m for m in _TASK_METRICS if f"{section}.{m}" in metrics), None)
        if name is not None:
            parts.append(f"{label} {name} {metrics[f'{section}.{name}']:.3g}")
    return " · ".join(parts)


# -- show ------------------------------------------------------------------------------------
@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="DEPLOYMENT", help="The deployment.")],
    windows: Annotated[
        int, typer.Option(min=1, max=1000, help="Windows the trends span, oldest to newest.")
    ] = 24,
    html: Annotated[
        Path | None,
        typer.Option(help="Also write a standalone report (histograms, trends) to this file."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show the latest window: its metrics, their trends and the features that drifted.

    Metrics are grouped by section (drift, quality, freshness, performance, estimated, slo),
    each with a sparkline of its last --windows values, oldest to newest (· where a window did
    not measure it).
    """
    client = state(ctx).client
    found = client.monitor_windows(name, limit=windows)
    if as_json:
        print_json(found)
    if not found:
        message = (
            f"The monitor of {name} has no window yet: run `steward monitor run {name}` (or "
            "let `steward server`'s scheduler run it)."
        )
        if as_json:
            note(message)  # stdout holds the JSON
        else:
            console.print(escape(message), soft_wrap=True)
        return
    if not as_json:
        _print_window(found)
    if html is not None:
        write_text(
            html, client.monitor_report_html(name, windows=windows), what="report", option="html"
        )
        note(f"Wrote the report to {html}.")


def _print_window(found: list[MonitorWindow]) -> None:
    from steward.monitoring.window_report import group_metrics, trend

    latest = found[0]
    console.print(_header(latest), soft_wrap=True)
    if latest.error:
        console.print(f"[red]failed:[/] {escape(latest.error)}", soft_wrap=True)
    groups = group_metrics(latest.metrics)
    if not groups:
        console.print("This window measured nothing.")
    else:
        spark = f"trend ({len(found)})"
        out = table(None, ["section", "metric", "latest", spark], [])
        for n, (section, names) in enumerate(groups.items()):
            if n:
                out.add_section()
            for i, metric in enumerate(names):
                value = number(latest.metrics[metric]) or "—"
                line = sparkline(trend(found, metric))
                out.add_row(section if i == 0 else "", escape(metric.removeprefix(f"{section}.")),
                            value, line)  # fmt: skip
        console.print(out)
    _print_drifted(latest)


def _header(window: MonitorWindow) -> str:
    style = _STATUS_STYLE.get(window.status.value, "white")
    span = format_duration((window.end - window.start).total_seconds())
    versions = ", ".join(f"v{v}" for v in window.versions) or "no version"
    return (
        f"[bold]{escape(window.deployment)}[/] · model {escape(window.model_name)} · "
        f"{window.start:%Y-%m-%d %H:%M} → {window.end:%Y-%m-%d %H:%M} UTC ({span}) · "
        f"[{style}]{window.status.value}[/] · {window.rows:,} rows · {versions} · "
        f"computed {window.computed_at:%Y-%m-%d %H:%M}"
    )


def _print_drifted(window: MonitorWindow) -> None:
    rows = []
    for key, label in (("drift", "feature"), ("prediction_drift", "prediction")):
        for column in _drift_columns(window, key):
            if column.get("drifted"):
                rows.append([column.get("column"), label, column.get("method"),
                             number(column.get("score")),
                             number(column.get("threshold"))])  # fmt: skip
    if rows:
        console.print(table("Drifted", ["column", "of", "test", "score", "threshold"], rows))
        return
    drift = window.report.get("drift")
    if isinstance(drift, dict) and "note" in drift:
        note(f"Drift: {drift['note']}")
    elif "drift.n_tested" in window.metrics:
        console.print(f"No feature drifted ({int(window.metrics['drift.n_tested'])} tested).")


def _drift_columns(window: MonitorWindow, key: str) -> list[dict[str, Any]]:
    section = window.report.get(key)
    columns = section.get("columns") if isinstance(section, dict) else None
    return [c for c in columns if isinstance(c, dict)] if isinstance(columns, list) else []


# -- configure -------------------------------------------------------------------------------
_RULE_SYNTAX = "NAME:METRIC>=VALUE[:SEVERITY[:FOR_WINDOWS]]"
_EXPRESSION = re.compile(r"^\s*([^<>=\s]+)\s*(>=|<=|>|<)\s*(\S+)\s*$")
# the spec's fields each option sets, to name the option when the spec refuses a value
_OPTION_OF = {
    "interval_s": "--interval",
    "window_s": "--window",
    "drift_share": "--drift-share",
    "label_delay_s": "--label-delay",
    "thresholds": "--threshold",
    "rules": "--rule",
    "enabled": "--enable/--disable",
}


@app.command("configure")
def configure(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="DEPLOYMENT", help="The deployment.")],
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="A whole spec (.yaml, .yml or .json) to start from."),
    ] = None,
    interval: Annotated[
        str | None, typer.Option(metavar=DurationText, help="How often the scheduler runs it.")
    ] = None,
    window: Annotated[
        str | None, typer.Option(metavar=DurationText, help="How much traffic each run reads.")
    ] = None,
    drift_share: Annotated[
        float | None, typer.Option(help="Share of drifted features that is dataset drift.")
    ] = None,
    label_delay: Annotated[
        str | None,
        typer.Option(
            metavar=DurationText,
            help="How long labels take to arrive: live performance is measured on the traffic "
            "this long before the window.",
        ),
    ] = None,
    threshold: Annotated[
        list[str] | None,
        typer.Option(metavar="COLUMN=VALUE", help="A column's drift threshold (repeatable)."),
    ] = None,
    rule: Annotated[
        list[str] | None,
        typer.Option(
            metavar=_RULE_SYNTAX,
            help="An alert rule, e.g. 'drift:drift.share_drifted>=0.3:high:2' (repeatable; "
            "replaces the rule of the same name).",
        ),
    ] = None,
    drop_rule: Annotated[
        list[str] | None, typer.Option(metavar="NAME", help="Remove this rule (repeatable).")
    ] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Run it on schedule, or not.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Set what a deployment's monitor watches, or print the spec in force.

    Starts from --file (a whole spec) or from the spec in force, applies the options and
    stores the result as the next revision. With neither a file nor an option, prints the spec
    in force and stores nothing.
    """
    client = state(ctx).client
    changes = _changes(interval, window, drift_share, threshold, enabled)
    if label_delay is not None:
        changes["label_delay_s"] = parse_duration(
            label_delay, field="--label-delay", minimum=0, maximum=MAX_WINDOW_S
        )
    if file is None and not (changes or rule or drop_rule):
        current = client.get_monitor(name)
        if as_json:
            print_json(current)
            return
        _print_spec(name, current.spec, None)
        if not current.configured:
            note("Not configured: these are its risk tier's defaults.")
        return
    spec = _load_spec(file) if file is not None else client.get_monitor(name).spec.model_dump()
    thresholds = {**(spec.get("thresholds") or {}), **changes.get("thresholds", {})}
    spec.update(changes, thresholds=thresholds)  # a threshold set keeps the others
    spec["rules"] = _apply_rules(list(spec.get("rules", [])), rule or [], drop_rule or [])
    try:
        stored = client.configure_monitor(name, spec)
    except InvalidInput as exc:
        raise _name_option(exc, set(changes) | ({"rules"} if rule else set())) from None
    if as_json:
        print_json(stored)
        return
    _print_spec(name, stored.spec, stored)


def _changes(
    interval: str | None,
    window: str | None,
    drift_share: float | None,
    thresholds: list[str] | None,
    enabled: bool | None,
) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    bounds = {"minimum": MIN_INTERVAL_S, "maximum": MAX_WINDOW_S}
    if interval is not None:
        changes["interval_s"] = parse_duration(interval, field="--interval", **bounds)
    if window is not None:
        changes["window_s"] = parse_duration(window, field="--window", **bounds)
    if drift_share is not None:
        changes["drift_share"] = drift_share
    if thresholds:
        changes["thresholds"] = parse_numbers(thresholds, "--threshold", "the threshold of column")
    if enabled is not None:
        changes["enabled"] = enabled
    return changes


def _apply_rules(rules: list[Any], added: list[str], dropped: list[str]) -> list[Any]:
    names = [r["name"] if isinstance(r, dict) else None for r in rules]
    for name in dropped:
        if name not in names:
            known = ", ".join(str(n) for n in names) or "none"
            raise typer.BadParameter(
                f"no rule named {name!r} (rules: {known})", param_hint="--drop-rule"
            )
    kept = [r for r, n in zip(rules, names, strict=True) if n not in dropped]
    for text in added:
        new = parse_rule(text)
        kept = [r for r in kept if not (isinstance(r, dict) and r.get("name") == new["name"])]
        kept.append(new)
    return kept


def parse_rule(text: str) -> dict[str, Any]:
    """``NAME:METRIC>=VALUE[:SEVERITY[:FOR_WINDOWS]]`` as an alert rule's fields; a usage error
    (exit 2) naming --rule otherwise."""
    from steward.domain.monitoring import AlertRule
    from steward.schemas import parse

    parts = [part.strip() for part in text.split(":")]
    found = _EXPRESSION.match(parts[1]) if 2 <= len(parts) <= 4 else None
    if found is None:
        raise typer.BadParameter(f"expected {_RULE_SYNTAX}, got {text!r}", param_hint="--rule")
    fields: dict[str, Any] = {"name": parts[0], "metric": found[1], "op": found[2]}
    fields["threshold"] = _number_of(found[3], text, "the value")
    if len(parts) > 2:
        fields["severity"] = parts[2]
    if len(parts) > 3:
        fields["for_windows"] = _number_of(parts[3], text, "FOR_WINDOWS")
    try:
        return parse(AlertRule, fields).model_dump(mode="json")
    except InvalidInput as exc:
        severities = ", ".join(s.value for s in Severity)
        hint = f" (severities: {severities})" if exc.field == "severity" else ""
        raise typer.BadParameter(f"{text!r}: {exc.message}{hint}", param_hint="--rule") from None


def _number_of(text: str, rule: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value:  # not a number, or NaN
        raise typer.BadParameter(
            f"{rule!r}: {what} must be a number, got {text!r}", param_hint="--rule"
        )
    return value


def _load_spec(path: Path) -> dict[str, Any]:
    """A spec file (YAML or JSON): a MonitorSpec's fields, or what `--json` printed (the spec
    under ``spec``)."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"Cannot read {str(path)!r}: {exc.strerror}.", field="file") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{path.name} is not valid JSON or YAML: {exc}", field="file") from None
    if isinstance(data, dict) and isinstance(data.get("spec"), dict):
        data = data["spec"]
    if not isinstance(data, dict):
        raise InvalidInput(f"{path.name} must hold a mapping of the spec's fields.", field="file")
    return data


def _name_option(exc: InvalidInput, from_options: set[str]) -> InvalidInput:
    root = (exc.field or "").split(".", 1)[0]
    if root in from_options and root in _OPTION_OF:
        return InvalidInput(f"{_OPTION_OF[root]}: {exc.message}", field=exc.field,
                            details=exc.details)  # fmt: skip
    return exc


def _print_spec(name: str, spec: MonitorSpec, stored: StoredMonitor | None) -> None:
    revision = f" r{stored.revision}" if stored is not None else ""
    state_text = "enabled" if spec.enabled else "disabled"
    summary = (
        f"{name} monitor{revision}: every {format_duration(spec.interval_s)} over "
        f"{format_duration(spec.window_s)}, dataset drift at share {spec.drift_share:g}, "
        f"min {spec.min_rows} rows, {state_text}"
    )
    if stored is not None:
        success(summary)
    else:
        console.print(escape(summary), soft_wrap=True)
    if spec.thresholds:
        pairs = ", ".join(f"{k}={v:g}" for k, v in sorted(spec.thresholds.items()))
        console.print(f"thresholds: {escape(pairs)}", soft_wrap=True)
    rows = ([r.name, r.describe(), r.severity, r.for_windows] for r in spec.rules)
    console.print(table(f"Rules ({len(spec.rules)})", ["name", "fires when", "severity",
                                                      "for windows"], rows))  # fmt: skip
