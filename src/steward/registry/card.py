"""Model cards in Markdown: registry facts plus the sections the owner writes.

Sections follow Mitchell et al., "Model Cards for Model Reporting" (2019), the form Hugging
Face and Google's toolkit use; a section the owner has not filled is flagged, not hidden.
"""

from __future__ import annotations

from steward.domain.entities import CARD_SECTIONS, Model, ModelVersion

_TITLES = {
    "intended_use": "Intended use",
    "limitations": "Limitations",
    "ethical_considerations": "Ethical considerations",
    "training_data": "Training data",
    "evaluation": "Evaluation",
}
_MISSING = "_Not written yet. Fill it with `steward card edit` or `Client.update_model(card=...)`._"


def render_card(model: Model, version: ModelVersion) -> str:
    lines = [f"# Model card: {model.name} v{version.version}", ""]
    if model.description:
        lines += [model.description, ""]
    lines += _facts(model, version)
    lines += _metrics(version)
    lines += _lineage(version)
    for section in CARD_SECTIONS:
        text = model.card.get(section, "").strip()
        lines += [f"## {_TITLES[section]}", "", text or _MISSING, ""]
    return "\n".join(lines).rstrip() + "\n"


def _facts(model: Model, version: ModelVersion) -> list[str]:
    aliases = ", ".join(version.aliases) or "none"
    rows = [
        ("Owner", model.owner),
        ("Team", model.team or "—"),
        ("Risk tier", f"{model.risk_tier} (1 = highest risk)"),
        ("Use case", model.use_case or "—"),
        ("Version", f"{version.version} ({version.status.value}); aliases: {aliases}"),
        ("Flavor", version.flavor.value),
        ("Registered", f"{version.created_at:%Y-%m-%d %H:%M} UTC by {version.created_by}"),
    ]
    out = ["## Summary", "", "| | |", "|---|---|"]
    out += [f"| {k} | {_cell(v)} |" for k, v in rows]
    if version.signature is not None and version.signature.inputs:
        out += ["", "**Inputs:** " + ", ".join(
            f"`{c.name}` ({c.dtype})" for c in version.signature.inputs
        )]  # fmt: skip
    return [*out, ""]


def _metrics(version: ModelVersion) -> list[str]:
    if not version.metrics:
        return ["## Metrics", "", "_No metrics recorded._", ""]
    out = ["## Metrics", "", "| metric | value |", "|---|---|"]
    out += [f"| {k} | {v:.6g} |" for k, v in sorted(version.metrics.items())]
    return [*out, ""]


def _lineage(version: ModelVersion) -> list[str]:
    lin = version.lineage
    git = lin.git
    commit = (
        "—" if git.commit is None else f"`{git.commit[:12]}`" + (" (dirty)" if git.dirty else "")
    )
    python = lin.environment.get("python", "—")
    rows = [
        ("Git commit", commit),
        ("Training data", f"`{lin.training_data}`" if lin.training_data else "—"),
        ("Evaluation data", f"`{lin.evaluation_data}`" if lin.evaluation_data else "—"),
        ("Training command", f"`{lin.command}`" if lin.command else "—"),
        ("Python", str(python)),
        ("Run", lin.run_id or "—"),
        ("Reference sample", "yes" if version.reference_sample else "no"),
    ]
    rows += [(f"Imported from ({k})", v) for k, v in sorted(lin.external.items())]
    out = ["## Lineage", "", "| | |", "|---|---|"]
    out += [f"| {k} | {_cell(v)} |" for k, v in rows]
    return [*out, ""]


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")
