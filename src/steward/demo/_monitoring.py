"""The demo's monitoring scene: part of the traffic drifts, the monitor notices, its alert opens
an incident, the incident is mitigated by rolling the canary back, and its timeline is read
back from the ledger.

The drift is a plausible accident: from request 100 on, the rows come from a scanner whose
measurements read 40% high. Every call goes through the public SDK.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from rich.console import Console

    from steward.client import Client

DRIFT_FROM = 100  # requests from this unit on come from the miscalibrated scanner
DRIFT_FACTOR = 1.4
DEMO_RULES: list[dict[str, Any]] = [
    {"name": "feature-drift", "metric": "drift.share_drifted", "op": ">=", "threshold": 0.3,
     "severity": "high"},
    {"name": "error-rate", "metric": "slo.error_rate", "op": ">", "threshold": 0.05,
     "severity": "critical"},
]  # fmt: skip


@dataclass
class Watch:
    """What the monitor saw and what it opened, for the demo's summary."""

    status: str = ""
    rows: int = 0
    drifted: list[str] = field(default_factory=list)
    tested: int = 0
    alerts: list[str] = field(default_factory=list)
    incident: int | None = None
    incident_state: str = ""
    timeline: list[str] = field(default_factory=list)  # event kinds, oldest first


def configure(client: Client, deployment: str) -> None:
    client.configure_monitor(deployment, {"window_s": 3600, "rules": DEMO_RULES})


def miscalibrated(row: dict[str, float]) -> dict[str, float]:
    return {name: round(value * DRIFT_FACTOR, 6) for name, value in row.items()}


def watch(client: Client, console: Console, deployment: str, model: str) -> Watch:
    """Run the monitor over the last hour; the incident its alert opened, if any."""
    result = client.run_monitors(deployment, window="1h")
    window = result.outcomes[0].window
    out = Watch(status=window.status.value, rows=window.rows)
    columns = window.report.get("drift", {}).get("columns", [])
    out.drifted = [c["column"] for c in columns if c.get("drifted")]
    out.tested = int(window.metrics.get("drift.n_tested", 0))
    out.alerts = [a.rule.name for a in result.outcomes[0].fired]
    active = client.list_incidents(model=model, state="open")
    out.incident = active[0].id if active else None
    _print_window(console, deployment, window.metrics, out)
    return out


def mitigate(client: Client, out: Watch, deployment: str, canary: int) -> bool:
    """Roll the canary back as the incident's mitigation; whether the incident took it."""
    if out.incident is None:
        return False
    result = client.mitigate_incident(
        out.incident, "rollback", deployment=deployment,
        reason=f"demo: canary v{canary} out while the scanner drift is investigated",
    )  # fmt: skip
    return result.deployment.canary is None


def show_incident(client: Client, console: Console, out: Watch) -> None:
    if out.incident is None:
        console.print("[red]✗[/red] the monitor's alert opened no incident")
        return
    incident = client.get_incident(out.incident)
    out.incident_state = incident.state.value
    entries = client.incident_timeline(out.incident)
    out.timeline = [entry.kind for entry in entries]
    table = Table(
        title=f"steward incident show {incident.id}: {escape(incident.title)} "
        f"({incident.severity.value}, {incident.state.value}, owner {escape(incident.owner)})",
        title_justify="left",
    )
    for column in ("when (UTC)", "event", "by", "what"):
        table.add_column(column)
    for entry in entries:
        table.add_row(entry.at.strftime("%H:%M:%S.%f")[:-3], entry.kind, escape(entry.actor),
                      escape(entry.summary))  # fmt: skip
    console.print(table)


def _print_window(console: Console, deployment: str, metrics: dict[str, float], out: Watch) -> None:
    drifted = ", ".join(out.drifted[:6]) + (" …" if len(out.drifted) > 6 else "")
    slo = (
        f"error rate {metrics.get('slo.error_rate', 0):.1%}, "
        f"p95 {metrics.get('slo.p95_ms', 0):.1f} ms"
    )
    console.print(
        f"[yellow]![/yellow] steward monitor run {deployment} --window 1h → {out.status}, "
        f"{out.rows} rows: {len(out.drifted)} of {out.tested} features drifted ({drifted}); "
        f"{slo}; alerts fired: {', '.join(out.alerts) or 'none'}"
        + (f" → incident {out.incident} opened" if out.incident is not None else "")
    )
