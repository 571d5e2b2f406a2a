"""The demo's experiment: the champion against the candidate on a 50/50 split, outcomes that
arrive after the predictions, the analysis that finds the winner, a second split someone
changed after its experiment started (its sample-ratio check says so before any result), and
the decisions.

The outcome is simulated, the traffic is real: every request goes through the gateway
in-process and lands in the prediction log; units are the patients (`unit_key`), assigned by
the gateway's hash, and the analysis recomputes the same assignment. Every store call goes
through the public SDK.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.markup import escape
from rich.table import Table

from steward.demo._gateway import gateway_in_process

if TYPE_CHECKING:
    from rich.console import Console

    from steward.client import Client
    from steward.domain.experiments import ExperimentAnalysis
    from steward.settings import Settings

CLEAN, BROKEN = "triage-ab", "triage-ab-eu"
EXPERIMENT, BROKEN_EXPERIMENT = "timely-follow-up", "timely-follow-up-eu"
PATIENTS = 3_000  # one request per patient, per split
CLIENTS = 16
# the chance a patient gets a timely follow-up, by the version that triaged them
FOLLOW_UP = {1: 0.25, 3: 0.31}
BROKEN_SHARE = 0.35  # the second split was redeployed at 65/35 after its 50/50 experiment began


@dataclass
class ExperimentScene:
    """What the experiment step did, for the demo's summary."""

    units: dict[int, int] = field(default_factory=dict)
    recommendation: str = ""
    ship_variant: int | None = None
    lift: float | None = None
    p_value: float | None = None
    broken_units: dict[int, int] = field(default_factory=dict)
    broken_srm_p: float | None = None
    broken_recommendation: str = ""
    decision: str = ""
    applied: bool = False
    champion_after: int = 0


def run(
    client: Client,
    console: Console,
    settings: Settings,
    *,
    champion: int,
    candidate: int,
    row: dict[str, float],
) -> ExperimentScene:
    out = ExperimentScene()
    split = {champion: 0.5, candidate: 0.5}
    for name in (CLEAN, BROKEN):
        client.deploy(name, model="breast-cancer", champion=champion, split=split,
                      unit_key="patient_id", experiment=name)  # fmt: skip
    client.define_metric("timely_follow_up", source="outcome", event="follow_up",
                         aggregation="any", description="A follow-up within 14 days")  # fmt: skip
    client.define_metric("triage_failures", source="error", aggregation="any",
                         description="A request the routed version failed")  # fmt: skip
    client.define_metric("triage_latency_ms", source="latency", aggregation="mean")
    start = datetime.now(UTC) - timedelta(seconds=1)
    for name, deployment in ((EXPERIMENT, CLEAN), (BROKEN_EXPERIMENT, BROKEN)):
        client.create_experiment(
            name, deployment=deployment, metric="timely_follow_up",
            # Latency is reported, not a guardrail: measured in-process on a shared machine, its
            # heavy tail once made a noisy CI run fail a 25% guardrail between two models of
            # the same cost.
            secondary=["triage_latency_ms:decrease"], guardrails=["triage_failures:decrease"],
            control=champion,
            planned_units=2_000, start=start,
            hypothesis=f"v{candidate} books more timely follow-ups than v{champion}",
        )  # fmt: skip
    # the mistake: someone "rebalances" the second split while its experiment runs
    client.deploy(BROKEN, model="breast-cancer", champion=champion, unit_key="patient_id",
                  split={champion: 1 - BROKEN_SHARE, candidate: BROKEN_SHARE},
                  experiment=BROKEN)  # fmt: skip
    rng = np.random.default_rng(11)
    with console.status(f"A/B traffic: {PATIENTS} patients on each of two splits…"):
        answered = asyncio.run(_traffic(settings, row))
    _log_outcomes(client, answered, rng)
    clean = client.analyze_experiment(EXPERIMENT)
    _record(out, clean, candidate)
    _print_analysis(console, clean, "the clean split")
    broken = client.analyze_experiment(BROKEN_EXPERIMENT)
    out.broken_units = dict(broken.units)
    out.broken_srm_p = broken.srm.p_value
    out.broken_recommendation = broken.recommendation.value
    _print_analysis(console, broken, "a split changed to 65/35 mid-experiment")
    _decide(client, console, out, candidate)
    return out


async def _traffic(settings: Settings, row: dict[str, float]) -> dict[str, list[tuple[str, int]]]:
    """One /predict per patient on each split; the (patient, version) pairs answered."""
    answered: dict[str, list[tuple[str, int]]] = {CLEAN: [], BROKEN: []}
    async with gateway_in_process(settings, (CLEAN, BROKEN)) as gateway:
        for deployment in (CLEAN, BROKEN):
            answered[deployment] = await _drive(gateway.http, deployment, row)
        await gateway.flush_log()
    return answered


async def _drive(http: Any, deployment: str, row: dict[str, float]) -> list[tuple[str, int]]:
    pending = iter(range(PATIENTS))
    answered: list[tuple[str, int]] = []

    async def one_client() -> None:
        for i in pending:
            patient = f"patient-{deployment}-{i:05d}"
            body = {"instances": [row], "unit_id": patient}
            answer = await http.post(f"/predict/{deployment}", json=body)
            version = int(answer.json()["version"]) if answer.status_code == 200 else None
            if version is not None:
                answered.append((patient, version))

    await asyncio.gather(*(one_client() for _ in range(CLIENTS)))
    return answered


def _log_outcomes(
    client: Client, answered: dict[str, list[tuple[str, int]]], rng: np.random.Generator
) -> None:
    """The follow-ups that happened, a few days later (simulated by version)."""
    import pyarrow as pa

    when = datetime.now(UTC)
    units = [patient for pairs in answered.values() for patient, version in pairs
             if rng.random() < FOLLOW_UP[version]]  # fmt: skip
    client.log_outcomes(pa.table({
        "name": ["follow_up"] * len(units), "value": [1.0] * len(units), "unit_id": units,
        "timestamp": [when] * len(units),
    }))  # fmt: skip


def _record(out: ExperimentScene, found: ExperimentAnalysis, candidate: int) -> None:
    out.units = dict(found.units)
    out.recommendation = found.recommendation.value
    out.ship_variant = found.ship_variant
    primary = next(m for m in found.metrics if m.role.value == "primary")
    arm = next(a for a in primary.arms if a.variant == candidate)
    out.lift, out.p_value = arm.relative, arm.p_value_adjusted


def _decide(client: Client, console: Console, out: ExperimentScene, candidate: int) -> None:
    decided = client.decide_experiment(
        EXPERIMENT, "ship", variant=candidate, apply=True,
        reason=f"v{candidate} books {out.lift:+.0%} more timely follow-ups; fails no more requests "
        "than the champion",
    )  # fmt: skip
    assert decided.decision is not None
    out.decision, out.applied = decided.decision.action.value, decided.decision.applied
    out.champion_after = client.get_deployment(CLEAN).champion
    client.decide_experiment(
        BROKEN_EXPERIMENT, "iterate",
        reason="sample ratio mismatch: the split was changed mid-experiment; restart it",
    )  # fmt: skip
    console.print(
        f"[green]✓[/green] steward experiment decide {EXPERIMENT} ship --variant {candidate} "
        f"--apply → v{candidate} promoted and now the champion of {CLEAN}; "
        f"{BROKEN_EXPERIMENT}: iterate (recorded, nothing changed)"
    )


def _print_analysis(console: Console, found: ExperimentAnalysis, label: str) -> None:
    srm = found.srm
    mark = "[red]✗ sample ratio mismatch[/red]" if srm.mismatch else "[green]✓ no SRM[/green]"
    units = ", ".join(f"v{v}: {n:,}" for v, n in found.units.items())
    console.print(f"steward experiment analyze {found.experiment} ({label}): {mark} "
                  f"(p = {srm.p_value:.2g}; units {units})")  # fmt: skip
    if srm.mismatch:
        console.print(f"  [red]{escape(found.reasons[0])}[/red]")
        return
    table = Table(title_justify="left")
    for column in ("metric", "role", "control", "variant", "lift", "95% CI", "p (adj.)", ""):
        table.add_column(column)
    for metric in found.metrics:
        for arm in metric.arms:
            interval = arm.relative_ci
            table.add_row(
                metric.metric, metric.role.value, f"{metric.control_mean:.4g}",
                f"v{arm.variant} {arm.mean:.4g}",
                f"{arm.relative:+.1%}" if arm.relative is not None else "-",
                f"[{interval[0]:+.1%}, {interval[1]:+.1%}]" if interval else "-",
                f"{arm.p_value_adjusted if arm.p_value_adjusted is not None else arm.p_value:.2g}",
                arm.guardrail.value if arm.guardrail else ("✓" if arm.significant else ""),
            )  # fmt: skip
    console.print(table)
    console.print(f"  → {found.recommendation.value}: {escape(' '.join(found.reasons))}")
