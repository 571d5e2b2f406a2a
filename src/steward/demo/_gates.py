"""The demo's release: evaluate every version, gate it against the demo's policy, have a second
person approve the ones that passed, promote them to production, and read a model's history.

Every call goes through the public SDK. The reviewer is a second :class:`~steward.client.Client`
on the same store with another actor: in embedded mode every actor is the local admin, so the
store's separation of duties (an author never approves their own version) is what stops the
author, exactly as it would on a server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from steward.domain.entities import CARD_SECTIONS
from steward.errors import StewardError

if TYPE_CHECKING:
    from rich.console import Console

    from steward.client import Client
    from steward.demo._train import Dataset
    from steward.domain.entities import ModelVersion
    from steward.domain.evaluation import Estimate, Evaluation
    from steward.domain.gates import CheckResult, GateReport

# 50 timed calls per case give a stable p95 for the demo's small models in a fraction of
# the default 200's time.
LATENCY_CALLS = 50
RESAMPLES = 200  # bootstrap resamples per evaluation: enough for the demo's intervals
REVIEWER = "rita.alves@example.com"  # the second person: an approver, not the author
_MARKS = {
    "passed": "[green]✓[/green]",
    "failed": "[red]✗[/red]",
    "not_applicable": "[dim]·[/dim]",
    "pending": "[yellow]…[/yellow]",
}
_FAIRNESS = {
    "equalized_odds_difference": "equalized odds difference",
    "demographic_parity_difference": "demographic parity difference",
}
_HISTORY_ROWS = 12  # a kept store's history grows with every run of the demo
POLICY_MODELS = ("breast-cancer", "diabetes-progression")  # gated by release_policy.yaml
_VERDICTS = {
    "passed": "[bold green]passed[/bold green]",
    "awaiting_approval": "[bold yellow]awaiting approval[/bold yellow]",
    "failed": "[bold red]failed[/bold red]",
}


@dataclass
class Release:
    """What the release step did, for the demo's summary."""

    policy: str = ""
    verdicts: dict[str, str] = field(default_factory=dict)  # uri -> verdict of its first gate
    failed_checks: dict[str, list[str]] = field(default_factory=dict)  # uri -> checks failed
    own_approval_refused: str | None = None  # the store's message to the author
    approved: list[str] = field(default_factory=list)  # uris, approved by the reviewer
    promoted: list[str] = field(default_factory=list)  # uris now in production
    blocked_promotion: str | None = None  # the store's message when promoting a failed version
    report_path: Path | None = None  # HTML gate report of the failed version
    history: list[str] = field(default_factory=list)  # "kind vN" lines of one model's history


def policy_text() -> str:
    return (files("steward.demo") / "release_policy.yaml").read_text(encoding="utf-8")


def release(
    client: Client,
    reviewer: Client,
    console: Console,
    candidates: list[tuple[ModelVersion, Dataset]],
    *,
    reports: Path,
    kept: bool,
) -> Release:
    """Evaluate, gate, approve, promote; the versions that fail their gate stay where they are."""
    console.rule("[bold]Release gates")
    out = Release()
    out.policy = _upload_policy(client, console)
    _evaluate(client, console, candidates)
    gated = {version.uri: client.gate(version.uri) for version, _ in candidates}
    _print_gates(console, list(gated.values()))
    data = {version.uri: dataset for version, dataset in candidates}
    for uri, report in gated.items():
        out.verdicts[uri] = report.verdict.value
        failed = [r for r in report.results if r.outcome.value == "failed"]
        if failed:
            out.failed_checks[uri] = [r.check for r in failed]
            _explain_failure(client, console, report, failed, data[uri])
            out.report_path = reports / f"{report.model_name}-v{report.version}-gate.html"
            _save_report(client, console, uri, out.report_path, kept=kept)
    waiting = [uri for uri, r in gated.items() if r.verdict.value == "awaiting_approval"]
    _approve(client, reviewer, console, waiting, out)
    _promote(client, console, out, blocked=next(iter(out.failed_checks), None))
    if out.promoted:
        out.history = _history(client, console, out.promoted[0].split("/")[1])
    return out


def _upload_policy(client: Client, console: Console) -> str:
    first, *others = POLICY_MODELS
    stored = client.set_policy(policy_text(), model=first)
    for model in others:
        client.assign_policy(model, stored.name)
    console.print(
        f"[green]✓[/green] set_policy: [bold]{stored.name}[/bold] rev {stored.revision} "
        f"[dim]({stored.digest[:19]})[/dim] gates {' and '.join(POLICY_MODELS)}; iris-species "
        "keeps its tier's shipped policy, tier-3."
    )
    return stored.name


def _evaluate(
    client: Client, console: Console, candidates: list[tuple[ModelVersion, Dataset]]
) -> None:
    out = Table(
        title=f"evaluate(): held-out data, 95% bootstrap intervals ({RESAMPLES} resamples)",
        title_justify="left",
    )
    for column in ("version", "quality", "calibration\n(ECE)", "gap between groups",
                   "p95 ms\n1 row"):  # fmt: skip
        out.add_column(column, overflow="fold")
    with console.status("Evaluating on held-out data (metrics, intervals, groups, latency)…"):
        for version, data in candidates:
            evaluation = client.evaluate(
                version.uri, data.evaluation, "target", groups=data.group_columns,
                resamples=RESAMPLES, latency_calls=LATENCY_CALLS,
            )  # fmt: skip
            out.add_row(*_evaluation_row(version, evaluation))
    console.print(out)
    console.print(
        "[dim]The [bold]clinic[/bold] column is synthetic: scikit-learn's data has no "
        "demographic attribute, so each breast cancer sample is sent to clinic A or B by a "
        "seeded rule that gives both clinics the same share of malignant samples. "
        "[bold]sex_code[/bold] is the diabetes data's own coding of sex (1 or 2).[/dim]"
    )


def _evaluation_row(version: ModelVersion, evaluation: Evaluation) -> list[str]:
    summary = evaluation.summary
    key = "r2" if summary.task.value == "regression" else "roc_auc"
    ece = summary.metrics.get("ece")
    gaps = []
    for group in summary.groups:
        if group.equalized_odds_difference is not None:
            eod = _interval(group.equalized_odds_difference)
            gaps.append(f"equalized odds by {group.column}: {eod}")
            continue
        mae = [g.metrics["mae"].value for g in group.groups if "mae" in g.metrics]
        defined = [value for value in mae if value is not None]
        if len(defined) > 1:
            gaps.append(f"MAE by {group.column}: {max(defined) - min(defined):.1f}")
    latency = evaluation.latency
    return [
        f"{version.model_name} v{version.version}\n[dim]{summary.task.value}, "
        f"{summary.n_rows} rows[/dim]",
        f"{key} {_interval(summary.metrics[key])}",
        "—" if ece is None or ece.value is None else f"{ece.value:.3f}",
        "\n".join(gaps) or "[dim]no groups[/dim]",
        "—" if latency is None else f"{latency.single_row_ms.p95:.1f}",
    ]


def _interval(estimate: Estimate) -> str:
    if estimate.value is None:
        return f"undefined ({estimate.note})"
    if estimate.lower is None or estimate.upper is None:
        return f"{estimate.value:.3f}"
    return f"{estimate.value:.3f} [{estimate.lower:.2f}, {estimate.upper:.2f}]"


def _print_gates(console: Console, reports: list[GateReport]) -> None:
    """One row per check, one column per version; a blank where a policy has no such check."""
    rows: dict[str, list[str]] = {}
    for index, report in enumerate(reports):
        for result in report.results:
            rows.setdefault(_label(result), [""] * len(reports))[index] = _MARKS[result.outcome]
    out = Table(
        title="gate(): [green]✓[/green] passed  [red]✗[/red] failed  [dim]·[/dim] not "
        "applicable  [yellow]…[/yellow] pending",
        title_justify="left",
    )
    out.add_column("check", overflow="fold")
    for report in reports:
        header = "\n".join(report.model_name.split("-", 1))
        out.add_column(f"{header}\nv{report.version}", justify="center")
    for label, marks in rows.items():
        out.add_row(escape(label), *marks)
    out.add_section()
    out.add_row("[dim]policy", *(f"[dim]{r.policy.name}" for r in reports))
    out.add_row("[bold]verdict", *(_VERDICTS[r.verdict.value] for r in reports))
    console.print(out)


def _label(result: CheckResult) -> str:
    """A short name for the check, from what the policy asked of it; else the check's title."""
    p = result.params
    if result.check == "metric_floor":
        bound = "lower bound " if p.get("estimate") == "lower_bound" else ""
        return f"{p['metric']} {bound}≥ {_n(p['min'])}"
    if result.check == "no_regression":
        return f"{p['metric']} ≥ champion's - {_n(p.get('tolerance', 0))}"
    if result.check == "fairness":
        metric = str(p.get("metric", "demographic_parity_difference"))
        name = _FAIRNESS.get(metric, f"{metric} gap")
        return f"{name} ≤ {_n(p['max'])} by {', '.join(p.get('groups') or ['group'])}"
    labels = {
        "calibration": f"calibration: ECE ≤ {_n(p.get('max_ece'))}",
        "latency": f"p95 latency ≤ {_n(p.get('p95_ms'))} ms",
        "documentation": f"model card: {len(p.get('sections') or CARD_SECTIONS)} sections",
        "rollback_ready": "rollback target ready",
        "approvals": f"{p.get('count', 1)} approval, not the author's",
    }
    return labels.get(result.check, result.title)


def _n(value: object) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _explain_failure(
    client: Client, console: Console, report: GateReport, failed: list[CheckResult], data: Dataset
) -> None:
    uri = f"models:/{report.model_name}/{report.version}"
    console.print(f"\n[bold red]✗ {uri} is blocked.[/bold red] What the gate found:")
    for result in failed:
        console.print(f"  [red]✗[/red] [bold]{escape(result.title)}[/bold]\n"
                      f"    {escape(result.detail)}")  # fmt: skip
        if result.check == "fairness" and "clinic" in data.group_columns:
            _print_misses(client, console, uri, data)


def _print_misses(client: Client, console: Console, uri: str, data: Dataset) -> None:
    """What the disparity means, clinic by clinic: malignant samples the model calls benign."""
    from steward.client import load_model

    model = load_model(uri, client=client)
    frame = data.evaluation
    inputs = model.signature.input_names if model.signature else list(data.x_test.columns)
    called_benign = model.predict(frame[inputs]) == 1
    malignant = frame["target"].to_numpy() == 0
    for clinic in sorted(frame["clinic"].unique()):
        at = (frame["clinic"] == clinic).to_numpy() & malignant
        missed = int((called_benign & at).sum())
        console.print(f"    clinic {clinic}: {missed} of {int(at.sum())} malignant samples called "
                      f"benign ({missed / max(int(at.sum()), 1):.0%})")  # fmt: skip


def _save_report(client: Client, console: Console, uri: str, path: Path, *, kept: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(client.gate_report_html(uri), encoding="utf-8")
    note = "" if kept else " [dim](removed with the temporary store; keep it with --home DIR)[/dim]"
    console.print(f"  gate_report_html() → [bold]{escape(str(path))}[/bold]{note}\n")


def _approve(
    client: Client, reviewer: Client, console: Console, waiting: list[str], out: Release
) -> None:
    if not waiting:
        return
    author = client.whoami()[0]
    try:
        client.approve(waiting[0], comment="LGTM, my own work")
    except StewardError as error:
        out.own_approval_refused = str(error)
        console.print(f"[red]✗[/red] {escape(author)} approves their own {waiting[0]}: refused "
                      f"[dim]({type(error).__name__}: {escape(str(error))})[/dim]")  # fmt: skip
    else:
        console.print(f"[red]![/red] {author}'s approval of their own version was accepted")
    for uri in waiting:
        result = reviewer.approve(uri, comment="Evaluation, card and fairness reviewed.")
        out.approved.append(uri)
        console.print(f"[green]✓[/green] {REVIEWER} approves {uri} → gate "
                      f"{_VERDICTS[result.report.verdict.value]}")  # fmt: skip


def _promote(client: Client, console: Console, out: Release, *, blocked: str | None) -> None:
    for uri in out.approved:
        moves = client.promote(uri, "production", reason="gate passed and approved")
        out.promoted.append(uri)
        steps = ", ".join(f"v{m.version} {m.from_status.value}→{m.to_status.value}" for m in moves)
        console.print(f"[green]✓[/green] promote {uri} → production ({steps}); "
                      f"[bold]@champion[/bold] now v{moves[-1].version}")  # fmt: skip
    if blocked is None:
        return
    try:
        client.promote(blocked, "production")
    except StewardError as error:
        out.blocked_promotion = str(error)
        console.print(f"[red]✗[/red] promote {blocked} → production: refused by the store "
                      f"[dim]({type(error).__name__}: {escape(str(error))})[/dim]")  # fmt: skip


def _history(client: Client, console: Console, name: str) -> list[str]:
    history = client.history(name)
    out = Table(title=f"history({name!r})", title_justify="left")
    for column in ("UTC", "who", "version", "what", "why"):
        out.add_column(column, overflow="fold")
    lines = []
    shown = history.entries[-_HISTORY_ROWS:]
    if len(shown) < len(history.entries):
        out.caption = f"the last {len(shown)} of {len(history.entries)} entries"
    for entry in shown:
        if entry.alias is not None:
            what = f"@{entry.alias} → v{entry.version}"
        elif entry.kind == "version.approved":
            what = "approval"
        elif entry.from_status is None:
            what = str(entry.to_status)
        else:
            what = f"{entry.from_status} → {entry.to_status}"
        lines.append(f"{entry.kind} v{entry.version}")
        out.add_row(entry.at.strftime("%H:%M:%S"), escape(entry.actor), f"v{entry.version}",
                    what, escape(entry.reason or ""))  # fmt: skip
    console.print(out)
    aliases = ", ".join(f"@{a} → v{v}" for a, v in sorted(history.aliases.items()))
    console.print(
        f"[dim]Now: {aliases}. history({name!r}, at=…) gives the state at any time.[/dim]"
    )
    return lines
