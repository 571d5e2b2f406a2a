"""Checks on what was recorded about the version: card, lineage, reproduction, monitoring."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from steward.domain.entities import CARD_SECTIONS, Lineage
from steward.domain.gates import GateContext, Outcome, Reproduction
from steward.gates.checks._base import (
    BaseCheck,
    CheckParams,
    Finding,
    NoParams,
    Unmet,
    num,
    passed_if,
)


class DocumentationParams(CheckParams):
    sections: list[str] = Field(default_factory=lambda: list(CARD_SECTIONS), min_length=1)

    @field_validator("sections")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [section for section in value if section not in CARD_SECTIONS]
        if unknown:
            raise ValueError(
                f"unknown model card section(s) {', '.join(unknown)}; "
                f"sections are {', '.join(CARD_SECTIONS)}"
            )
        return value


class Documentation(BaseCheck[DocumentationParams]):
    name = "documentation"
    Params = DocumentationParams

    def title(self, params: DocumentationParams) -> str:
        return f"model card sections written: {', '.join(params.sections)}"

    def evaluate(self, params: DocumentationParams, ctx: GateContext) -> Finding:
        card = ctx.model.card
        absent = [section for section in params.sections if section not in card]
        # whitespace only is as good as absent: the section says nothing
        empty = [s for s in params.sections if s in card and not card[s].strip()]
        problems = ([f"missing: {', '.join(absent)}"] if absent else []) + (
            [f"empty: {', '.join(empty)}"] if empty else []
        )
        detail = "; ".join(problems) or f"all {len(params.sections)} sections written"
        return passed_if(
            not problems,
            detail,
            {
                "missing": absent,
                "empty": empty,
                "lengths": {s: len(card.get(s, "").strip()) for s in params.sections},
            },
        )


class LineageComplete(BaseCheck[NoParams]):
    name = "lineage_complete"
    Params = NoParams

    def title(self, params: NoParams) -> str:
        return "lineage complete: clean git commit, training data, environment, command"

    def evaluate(self, params: NoParams, ctx: GateContext) -> Finding:
        lineage = ctx.version.lineage
        missing = _missing_lineage(lineage)
        commit = lineage.git.commit
        detail = (
            f"missing: {', '.join(missing)}"
            if missing
            else f"commit {(commit or '')[:12]} (clean), training data "
            f"{(lineage.training_data or '')[:19]}, {len(lineage.environment)} environment "
            "entries, command recorded"
        )
        return passed_if(
            not missing,
            detail,
            {
                "missing": missing,
                "git_commit": commit,
                "git_dirty": lineage.git.dirty,
                "training_data": lineage.training_data,
                "environment_entries": len(lineage.environment),
                "command": lineage.command,
            },
        )


def _missing_lineage(lineage: Lineage) -> list[str]:
    missing = []
    if not lineage.git.commit:
        missing.append("git commit")
    elif lineage.git.dirty is None:
        missing.append("whether the working tree was clean")
    elif lineage.git.dirty:
        missing.append("a clean working tree (trained with uncommitted changes)")
    if not lineage.training_data:
        missing.append("training data fingerprint")
    if not lineage.environment:
        missing.append("environment")
    if not (lineage.command or "").strip():
        missing.append("training command")
    return missing


class ReproducibilityParams(CheckParams):
    tolerance: float = Field(default=0.01, ge=0)


class Reproducibility(BaseCheck[ReproducibilityParams]):
    name = "reproducibility"
    Params = ReproducibilityParams

    def title(self, params: ReproducibilityParams) -> str:
        return f"training reproduced within {num(params.tolerance)}"

    def evaluate(self, params: ReproducibilityParams, ctx: GateContext) -> Finding:
        reproduction = ctx.reproduction
        if reproduction is None:
            raise Unmet("no reproduction of this version; run steward reproduce")
        evidence = _reproduction_evidence(reproduction, params.tolerance)
        if not reproduction.matched:
            raise Unmet(
                f"the reproduction did not match within {num(reproduction.tolerance)}: "
                f"{_differences_text(reproduction)}; {reproduction.detail}",
                evidence=evidence,
            )
        if reproduction.data_fingerprints_matched is False:
            raise Unmet(
                "the reproduction read different data than the training recorded",
                evidence=evidence,
            )
        looser = reproduction.tolerance > params.tolerance
        # the tolerance is absolute, so the recorded numbers can still prove the policy's
        if looser and not _within(reproduction, params.tolerance):
            raise Unmet(
                f"matched within {num(reproduction.tolerance)}, looser than the policy's "
                f"{num(params.tolerance)}: {_differences_text(reproduction)}; run steward "
                "reproduce with the policy's tolerance",
                evidence=evidence,
            )
        return Finding(
            Outcome.PASSED,
            f"reproduced within {num(min(reproduction.tolerance, params.tolerance))}: "
            f"{_differences_text(reproduction)}",
            evidence,
        )


def _differences(reproduction: Reproduction) -> dict[str, float]:
    return {
        metric: reproduction.reproduced[metric] - recorded
        for metric, recorded in reproduction.recorded.items()
        if metric in reproduction.reproduced
    }


def _within(reproduction: Reproduction, tolerance: float) -> bool:
    differences = _differences(reproduction)
    complete = set(differences) == set(reproduction.recorded)
    # `not <=` so that a NaN difference counts as outside
    return complete and not any(not abs(d) <= tolerance for d in differences.values())


def _differences_text(reproduction: Reproduction) -> str:
    parts = [
        f"{metric} {num(reproduction.recorded[metric])} -> "
        f"{num(reproduction.reproduced[metric])} ({change:+.4g})"
        for metric, change in _differences(reproduction).items()
    ]
    lost = sorted(set(reproduction.recorded) - set(reproduction.reproduced))
    if lost:
        parts.append(f"not reproduced: {', '.join(lost)}")
    return ", ".join(parts) or "no metrics compared"


def _reproduction_evidence(reproduction: Reproduction, required: float) -> dict[str, Any]:
    return {
        "reproduction_id": reproduction.id,
        "matched": reproduction.matched,
        "tolerance": reproduction.tolerance,
        "required_tolerance": required,
        "differences": _differences(reproduction),
        "recorded": reproduction.recorded,
        "reproduced": reproduction.reproduced,
        "data_fingerprints_matched": reproduction.data_fingerprints_matched,
    }


class MonitoringConfigured(BaseCheck[NoParams]):
    name = "monitoring_configured"
    Params = NoParams

    def title(self, params: NoParams) -> str:
        return "monitoring configured: a reference sample and drift rules"

    def evaluate(self, params: NoParams, ctx: GateContext) -> Finding:
        sample = ctx.version.reference_sample
        missing = []
        if sample is None:
            missing.append("a reference sample (register the version with one)")
        if not ctx.drift_rules:
            missing.append("drift rules for the model")
        detail = (
            f"missing: {'; '.join(missing)}"
            if missing
            else f"reference sample {(sample.digest if sample else '')[:19]} and "
            f"{len(ctx.drift_rules)} drift rule(s): {', '.join(ctx.drift_rules)}"
        )
        return passed_if(
            not missing,
            detail,
            {
                "reference_sample": sample.digest if sample else None,
                "drift_rules": list(ctx.drift_rules),
                "missing": missing,
            },
        )
