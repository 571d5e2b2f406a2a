"""The demo, step by step, printed with Rich; every call goes through the public SDK."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table

from steward.demo._experiments import ExperimentScene
from steward.demo._experiments import run as run_experiment
from steward.demo._gates import REVIEWER, Release, release
from steward.demo._serving import DEPLOYMENT, Serving, release_candidate, serve_canary

if TYPE_CHECKING:
    from steward.client import Client
    from steward.demo._train import Dataset, Trained
    from steward.domain.entities import ModelVersion
    from steward.settings import Settings

PROJECT = "steward-demo"


@dataclass
class ModelSpec:
    name: str
    dataset: str
    owner: str
    team: str
    risk_tier: int
    use_case: str
    description: str
    card: dict[str, str]


@dataclass
class Candidate:
    """One training run that ends in a registered version, and the alias it gets."""

    spec: ModelSpec
    run_name: str
    trainer: str  # a function of steward.demo._train
    alias: str | None = None  # set at registration; `champion` comes only with promotion
    export_onnx: bool = False


@dataclass
class DemoSummary:
    home: Path
    versions: list[str] = field(default_factory=list)  # models:/NAME/VERSION, in order
    aliases: dict[str, str] = field(default_factory=dict)  # NAME@ALIAS -> uri, at registration
    release: Release = field(default_factory=Release)  # gate verdicts, approvals, promotions
    predictions: list[Any] = field(default_factory=list)
    search_hits: list[str] = field(default_factory=list)
    serving: Serving = field(default_factory=Serving)  # deployment, traffic, rollback
    experiment: ExperimentScene = field(default_factory=ExperimentScene)  # A/B, SRM, decision
    events_checked: int = 0
    ledger_ok: bool = False
    seconds: float = 0.0


BREAST_CANCER = ModelSpec(
    name="breast-cancer",
    dataset="breast_cancer",
    owner="ana.lima@example.com",
    team="clinical-ml",
    risk_tier=1,
    use_case="Flag fine-needle aspirate biopsies for priority review by a pathologist.",
    description="Malignant vs benign from 30 cell-nucleus measurements (Wisconsin data).",
    card={
        "intended_use": "Triage aid: orders the pathologist's queue so likely-malignant "
        "samples are read first. Never a diagnosis on its own.",
        "limitations": "Trained on 569 samples from one hospital (Wisconsin, 1995); the "
        "measurements must come from the same imaging protocol.",
        "ethical_considerations": "A false negative delays care: the threshold is chosen for "
        "recall, and every sample is still read by a pathologist.",
        "training_data": "scikit-learn's copy of the Breast Cancer Wisconsin (Diagnostic) data, "
        "75% stratified split, seed 0.",
        "evaluation": "AUC, accuracy, F1 and log loss on the 25% held-out split.",
    },
)
DIABETES = ModelSpec(
    name="diabetes-progression",
    dataset="diabetes",
    owner="sam.okafor@example.com",
    team="care-analytics",
    risk_tier=2,
    use_case="Estimate one-year disease progression to plan follow-up capacity.",
    description="Progression score one year after baseline, from age, sex, BMI, blood "
    "pressure and six serum measurements.",
    card={
        "intended_use": "Capacity planning over cohorts; not for decisions about one patient.",
        "limitations": "442 patients; features are mean-centred and scaled as in the source.",
        "ethical_considerations": "Sex is an input; errors are reviewed by group each quarter.",
        "training_data": "scikit-learn's diabetes data (Efron et al., 2004), 75% random split.",
        "evaluation": "RMSE, MAE and R² on the 25% held-out split.",
    },
)
IRIS = ModelSpec(
    name="iris-species",
    dataset="iris",
    owner="lee.chen@example.com",
    team="platform",
    risk_tier=3,
    use_case="Smoke test of the ONNX serving path: classify iris flowers.",
    description="Species from sepal and petal sizes; exported to ONNX for fast serving.",
    card={
        "intended_use": "A reference model for testing deployments end to end.",
        "limitations": "150 flowers of three species; nothing else is recognised.",
        "ethical_considerations": "None known: no people in the data.",
        "training_data": "Fisher's iris data as shipped by scikit-learn, stratified 75% split.",
        "evaluation": "Accuracy, macro F1 and log loss on the held-out 25%.",
    },
)
CANDIDATES = [
    Candidate(BREAST_CANCER, "logreg-baseline", "logistic_regression"),
    Candidate(BREAST_CANCER, "gbm-site-aware", "site_aware_boosting", "challenger"),
    Candidate(DIABETES, "gbm-regressor", "boosted_regressor"),
    Candidate(IRIS, "sgd-onnx", "sgd_classifier", export_onnx=True),
]
# Trained after the release, for the serving step: the champion's pipeline, less regularised.
CANARY = Candidate(BREAST_CANCER, "logreg-c1", "logistic_regression")
CANARY_C = 1.0


def demo_settings(base: Settings, home: Path | None, *, fresh: bool) -> Settings:
    """The demo always uses the embedded store: in ``home`` (a fresh one when ``fresh``, with
    its own database and artifacts), or else in the configured STEWARD_HOME."""
    update: dict[str, Any] = {"url": None, "token": None}
    if home is not None:
        update["home"] = home
    if fresh:
        update["database"] = base.database.model_copy(update={"url": None})
        update["artifacts"] = base.artifacts.model_copy(update={"root": None})
    return base.model_copy(update=update)


def run_demo(settings: Settings, *, console: Console, kept: bool = True) -> DemoSummary:
    """Train, register, gate, approve, promote, load, search, deploy with a canary, serve
    traffic, roll back and verify; returns what happened, for tests.

    ``kept`` says whether the store outlives the demo (to suggest commands to explore it).
    """
    from steward.client import Client

    started = time.perf_counter()
    summary = DemoSummary(home=settings.home)
    console.rule("[bold]Steward demo")
    console.print(f"Store: [bold]{settings.home}[/bold] (embedded SQLite and artifacts)\n")
    with console.status("Loading scikit-learn and the datasets…"):
        from steward.demo import _train

        datasets = {name: _train.load(name) for name in ("breast_cancer", "diabetes", "iris")}
    reviewer_settings = settings.model_copy(update={"actor": REVIEWER})
    with Client(settings=settings) as client, Client(settings=reviewer_settings) as reviewer:
        registered: list[tuple[ModelVersion, Dataset]] = []
        for candidate in CANDIDATES:
            data = datasets[candidate.spec.dataset]
            trainer: Callable[[Dataset], Trained] = getattr(_train, candidate.trainer)
            version = _train_and_register(client, console, candidate, data, trainer)
            registered.append((version, data))
            summary.versions.append(version.uri)
            if candidate.alias is not None:
                summary.aliases[f"{candidate.spec.name}@{candidate.alias}"] = version.uri
        _fill_cards(client, console)
        summary.release = release(
            client, reviewer, console, registered, reports=settings.home / "reports", kept=kept
        )
        console.rule("[bold]Using the champions")
        summary.predictions = _load_and_predict(client, console, datasets["breast_cancer"])
        _load_onnx(client, console, datasets["iris"])
        summary.search_hits = _search(client, console)
        _summarise(client, console)
        _card_excerpt(client, console)
        summary.serving = _serve(client, reviewer, console, settings, datasets["breast_cancer"],
                                 summary, kept=kept)  # fmt: skip
        console.rule("[bold]Experiments: the champion against the candidate, and a broken split")
        summary.experiment = run_experiment(
            client, console, settings, champion=summary.serving.champion,
            candidate=summary.serving.canary, row=summary.serving.sample_row,
        )  # fmt: skip
        report = client.verify_ledger()
        summary.ledger_ok, summary.events_checked = report.ok, report.events_checked
        mark = "[green]✓ intact[/green]" if report.ok else f"[red]✗ broken: {report.reason}[/red]"
        console.print(f"Ledger: {mark}, {report.events_checked} hash-chained events verified.")
    summary.seconds = time.perf_counter() - started
    if not kept:
        console.print(f"\nDone in {summary.seconds:.1f} s (the temporary store is removed).")
        return summary
    console.print(
        f"\nDone in {summary.seconds:.1f} s. Try: [bold]steward --home {settings.home} "
        'models[/bold], [bold]versions --all --filter "metrics.auc > 0.9"[/bold], '
        "[bold]show models:/breast-cancer@champion[/bold], [bold]policy show steward-demo"
        "[/bold], [bold]history breast-cancer[/bold], [bold]audit log[/bold], [bold]deployments"
        f"[/bold], [bold]serve --port {settings.server.port + 1} {DEPLOYMENT}[/bold]."
    )
    return summary


def _serve(
    client: Client,
    reviewer: Client,
    console: Console,
    settings: Settings,
    data: Dataset,
    summary: DemoSummary,
    *,
    kept: bool,
) -> Serving:
    """A canary candidate through the release, then deployed next to the champion."""
    from steward.demo import _train

    console.rule("[bold]Serving and monitoring: a canary, drift, an incident, a rollback")
    trainer = partial(_train.logistic_regression, c=CANARY_C)
    candidate = _train_and_register(client, console, CANARY, data, trainer)
    summary.versions.append(candidate.uri)
    status = release_candidate(client, reviewer, console, candidate, data)
    champion = client.get_version(f"models:/{BREAST_CANCER.name}@champion").version
    return serve_canary(
        client, console, settings, champion=champion, canary=candidate.version,
        canary_status=status, data=data, kept=kept,
    )  # fmt: skip


def _train_and_register(
    client: Client,
    console: Console,
    candidate: Candidate,
    data: Dataset,
    trainer: Callable[[Dataset], Trained],
) -> ModelVersion:
    from steward.client import start_run

    spec = candidate.spec
    with console.status(f"Training {spec.name} ({candidate.run_name})…") as status:
        trained = trainer(data)
        with start_run(
            candidate.run_name, project=PROJECT, params=trained.params, client=client,
            tags={"dataset": spec.dataset, "model": spec.name},
        ) as run:  # fmt: skip
            for key, points in trained.series.items():
                for step, value in points:
                    run.log_metric(key, value, step=step)
            for key, value in trained.metrics.items():
                run.log_metric(key, value)
            status.update(f"Registering {spec.name} ({candidate.run_name})…")
            version = run.log_model(
                trained.model,
                spec.name,
                metrics=trained.metrics,
                params=trained.params,
                training_data=(
                    data.x_train if trained.training_data is None else trained.training_data
                ),
                evaluation_data=data.evaluation,
                export_onnx=candidate.export_onnx,
                tags={"candidate": candidate.run_name},
                description=f"{candidate.run_name}: {spec.description}",
                owner=spec.owner,
                team=spec.team,
                risk_tier=spec.risk_tier,
                use_case=spec.use_case,
            )
        if candidate.alias is not None:
            client.set_alias(spec.name, candidate.alias, version.version)
    logged = sum(len(p) for p in trained.series.values())
    headline = ", ".join(f"{k} {v:.3f}" for k, v in list(trained.metrics.items())[:3])
    files = "+ONNX " if candidate.export_onnx else ""
    alias = f" → [bold]@{candidate.alias}[/bold]" if candidate.alias else ""
    console.print(
        f"[green]✓[/green] {version.uri} {files}[dim]({candidate.run_name}: {headline}; "
        f"{logged} metric points logged)[/dim]{alias}"
    )
    return version


def _fill_cards(client: Client, console: Console) -> None:
    for spec in (BREAST_CANCER, DIABETES, IRIS):
        client.update_model(spec.name, card=spec.card, description=spec.description)
    console.print("[green]✓[/green] Model cards written (intended use, limitations, ethics, "
                  "training data, evaluation).")  # fmt: skip


def _load_and_predict(client: Client, console: Console, data: Dataset) -> list[Any]:
    from steward.client import load_model

    uri = f"models:/{BREAST_CANCER.name}@champion"
    model = load_model(uri, client=client)
    rows = data.x_test.head(5)
    predicted = model.predict(rows)
    proba = model.predict_proba(rows)[:, 1] if model.has_predict_proba else [None] * len(rows)
    out = Table(title=f"load_model({uri!r}).predict(5 held-out rows)", title_justify="left")
    for column in ("row", "mean_radius", "predicted", "P(benign)", "actual"):
        out.add_column(column)
    for index, (label, p, actual) in enumerate(
        zip(predicted, proba, data.y_test.head(5), strict=True)
    ):
        out.add_row(str(index), f"{rows.iloc[index]['mean_radius']:.2f}", str(label),
                    "—" if p is None else f"{p:.3f}", str(actual))  # fmt: skip
    console.print(out)
    return [int(label) for label in predicted]


def _load_onnx(client: Client, console: Console, data: Dataset) -> None:
    from steward.client import load_model

    uri = f"models:/{IRIS.name}@champion"
    model = load_model(uri, prefer="onnx", client=client)
    predicted = model.predict(data.x_test.head(5))
    console.print(f"[green]✓[/green] {uri} through onnxruntime → {[int(p) for p in predicted]} "
                  f"(actual {[int(y) for y in data.y_test.head(5)]})")  # fmt: skip


def _search(client: Client, console: Console) -> list[str]:
    query = "metrics.auc > 0.9"
    hits = client.search_versions(query)
    out = Table(title=f"search_versions({query!r})", title_justify="left")
    for column in ("version", "auc", "accuracy", "aliases"):
        out.add_column(column)
    for v in hits:
        out.add_row(v.uri, f"{v.metrics['auc']:.4f}", f"{v.metrics.get('accuracy', 0):.4f}",
                    ", ".join(v.aliases))  # fmt: skip
    console.print(out)
    return [v.uri for v in hits]


def _summarise(client: Client, console: Console) -> None:
    out = Table(title="The registry", title_justify="left")
    for column in ("model", "team", "tier", "versions", "aliases", "champion"):
        out.add_column(column, overflow="fold")
    for model in client.search_models():
        aliases = ", ".join(f"{a}→v{v}" for a, v in sorted(model.aliases.items()))
        headline = "— (none in production)"
        if "champion" in model.aliases:
            champion = client.get_version(f"models:/{model.name}@champion")
            key = next((k for k in ("auc", "rmse", "accuracy") if k in champion.metrics), None)
            if key is not None:
                headline = f"v{champion.version}: {key} {champion.metrics[key]:.3f}"
        out.add_row(model.name, model.team or "—", str(model.risk_tier),
                    str(model.latest_version), aliases, headline)  # fmt: skip
    console.print(out)


def _card_excerpt(client: Client, console: Console) -> None:
    uri = f"models:/{BREAST_CANCER.name}@champion"
    card = client.model_card(uri)
    keep, heading, lines = {"## Summary", "## Metrics", "## Intended use"}, "", []
    for line in card.splitlines():
        if line.startswith("#"):
            heading = line.strip()
        if (line.startswith("# ") or heading in keep) and not line.startswith("**Inputs:**"):
            lines.append(line)
    excerpt = "\n".join(lines)
    console.print(Panel(Markdown(excerpt), title=f"steward card {uri} (excerpt)", expand=False))
