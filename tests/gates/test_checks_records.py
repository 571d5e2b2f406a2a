"""Checks on what was recorded: model card, lineage, reproduction, monitoring."""

from __future__ import annotations

from steward.domain.entities import GitInfo, Lineage
from steward.domain.gates import Outcome


def test_documentation_passes_when_every_section_is_written(make, run) -> None:
    result = run("documentation", make.ctx(), sections=["intended_use", "limitations"])
    assert result.outcome == Outcome.PASSED
    assert result.detail == "all 2 sections written"


def test_documentation_names_missing_and_blank_sections(make, run) -> None:
    ctx = make.ctx(model=make.model(card={"intended_use": "Churn scoring.", "limitations": "  "}))
    result = run("documentation", ctx)  # default: every card section
    assert result.outcome == Outcome.FAILED
    assert result.evidence["empty"] == ["limitations"]
    assert result.evidence["missing"] == [
        "ethical_considerations",
        "training_data",
        "evaluation",
    ]
    assert "empty: limitations" in result.detail


def test_lineage_complete_passes(make, run) -> None:
    result = run("lineage_complete", make.ctx())
    assert result.outcome == Outcome.PASSED
    assert result.evidence["missing"] == []


def test_lineage_complete_lists_exactly_what_is_missing(make, run) -> None:
    dirty = make.version(
        lineage=Lineage(git=GitInfo(commit="abc123", dirty=True), training_data=make.data)
    )
    result = run("lineage_complete", make.ctx(version=dirty))
    assert result.outcome == Outcome.FAILED
    assert result.evidence["missing"] == [
        "a clean working tree (trained with uncommitted changes)",
        "environment",
        "training command",
    ]
    bare = run("lineage_complete", make.ctx(version=make.version(lineage=Lineage())))
    assert bare.detail == (
        "missing: git commit, training data fingerprint, environment, training command"
    )
    unknown = make.version(
        lineage=make.version().lineage.model_copy(update={"git": GitInfo(commit="abc")})
    )
    assert run("lineage_complete", make.ctx(version=unknown)).evidence["missing"] == [
        "whether the working tree was clean"
    ]


def test_reproducibility_passes_when_matched_within_the_policy(make, run) -> None:
    result = run("reproducibility", make.ctx(), tolerance=0.01)
    assert result.outcome == Outcome.PASSED
    assert result.evidence["reproduction_id"] == "rep-1"
    assert result.evidence["differences"]["roc_auc"] == 0.852 - 0.85


def test_reproducibility_without_reproduction_fails(make, run) -> None:
    result = run("reproducibility", make.ctx(reproduction=None))
    assert result.outcome == Outcome.FAILED
    assert "run steward reproduce" in result.detail


def test_reproducibility_not_matched_fails_with_the_differences(make, run) -> None:
    reproduction = make.reproduction(
        matched=False, reproduced={"roc_auc": 0.79}, detail="roc_auc differs by 0.06"
    )
    result = run("reproducibility", make.ctx(reproduction=reproduction))
    assert result.outcome == Outcome.FAILED
    assert "roc_auc 0.85 -> 0.79 (-0.06)" in result.detail
    assert "not reproduced: log_loss" in result.detail


def test_reproducibility_with_a_looser_tolerance_than_the_policy(make, run) -> None:
    loose = make.reproduction(tolerance=0.05, reproduced={"roc_auc": 0.82, "log_loss": 0.35})
    result = run("reproducibility", make.ctx(reproduction=loose), tolerance=0.01)
    assert result.outcome == Outcome.FAILED
    assert "looser than the policy's 0.01" in result.detail
    # the tolerance is absolute: numbers within the policy's tolerance still prove it
    close = make.reproduction(tolerance=0.05)
    assert run("reproducibility", make.ctx(reproduction=close), tolerance=0.01).outcome == (
        Outcome.PASSED
    )


def test_reproducibility_on_different_data_fails(make, run) -> None:
    reproduction = make.reproduction(data_fingerprints_matched=False)
    result = run("reproducibility", make.ctx(reproduction=reproduction))
    assert result.outcome == Outcome.FAILED
    assert "different data" in result.detail


def test_monitoring_configured(make, run) -> None:
    result = run("monitoring_configured", make.ctx())
    assert result.outcome == Outcome.PASSED
    assert "2 drift rule(s): psi-features, prediction-shift" in result.detail
    no_rules = run("monitoring_configured", make.ctx(drift_rules=[]))
    assert no_rules.outcome == Outcome.FAILED
    assert no_rules.detail == "missing: drift rules for the model"
    no_sample = make.ctx(version=make.version(reference_sample=None))
    assert "a reference sample" in run("monitoring_configured", no_sample).detail
