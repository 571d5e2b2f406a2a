"""The analysis as a standalone page: read in order (the sample-ratio check first), an interval
plot per metric, every arm's numbers, the recommendation; no script, every string escaped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.experiments import scenario

from steward.domain.experiments import (
    ArmResult,
    Decision,
    DecisionAction,
    Direction,
    Experiment,
    ExperimentAnalysis,
    ExperimentMetric,
    GuardrailStatus,
    Method,
    MetricResult,
    MetricRole,
    Recommendation,
    SrmCheck,
)
from steward.experiments.report import GREEN, RED, interval_svg, render_analysis_html
from steward.wiring import Services

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script>'


def _experiment(**changes: Any) -> Experiment:
    fields: dict[str, Any] = {
        "name": "checkout", "deployment": "churn-ab", "model_name": "churn", "control": 1,
        "variants": [1, 2], "weights": {1: 0.5, 2: 0.5}, "salt": "churn-ab",
        "metrics": [
            ExperimentMetric(metric="converted", role=MetricRole.PRIMARY),
            ExperimentMetric(metric="revenue", role=MetricRole.SECONDARY),
            ExperimentMetric(metric="latency", role=MetricRole.GUARDRAIL,
                             direction=Direction.DECREASE, tolerance=0.05),
        ],
        "planned_units": 10_000, "start": T0, "created_at": T0, "created_by": "me",
    }  # fmt: skip
    return Experiment(**{**fields, **changes})


def _arm(**changes: Any) -> ArmResult:
    fields: dict[str, Any] = {
        "variant": 2, "n": 2_025, "mean": 0.126, "raw_mean": 0.126, "difference": 0.0277,
        "difference_ci": (0.0081, 0.0472), "relative": 0.2804, "relative_ci": (0.0555, 0.5053),
        "p_value": 0.0055, "p_value_adjusted": 0.0111, "significant": True, "better": True,
    }  # fmt: skip
    return ArmResult(**{**fields, **changes})


def _result(metric: str, role: MetricRole, *arms: ArmResult, **changes: Any) -> MetricResult:
    fields: dict[str, Any] = {
        "metric": metric, "role": role, "direction": Direction.INCREASE, "kind": "proportion",
        "method": Method.FIXED, "test": "z_unpooled", "control": 1, "control_n": 1_975,
        "control_mean": 0.0987, "arms": list(arms) or [_arm()],
    }  # fmt: skip
    return MetricResult(**{**fields, **changes})


def _guardrail(status: GuardrailStatus = GuardrailStatus.OK, **arm: Any) -> MetricResult:
    values = {"relative": -0.003, "relative_ci": (-0.01, 0.004), "difference": -0.015,
              "difference_ci": (-0.05, 0.02), "p_value": 0.42, "p_value_adjusted": None,
              "significant": False, "better": None, "guardrail": status, **arm}  # fmt: skip
    return _result("latency", MetricRole.GUARDRAIL, _arm(**values), kind="mean",
                   direction=Direction.DECREASE, test="welch_t", control_mean=5.0)  # fmt: skip


def _analysis(*, mismatch: bool = False, **changes: Any) -> ExperimentAnalysis:
    counts = {1: 1_975, 2: 2_025} if not mismatch else {1: 2_000, 2: 1_500}
    half = sum(counts.values()) / 2
    fields: dict[str, Any] = {
        "experiment": "checkout", "deployment": "churn-ab", "computed_at": T0, "start": T0,
        "end": T0, "method": Method.FIXED, "alpha": 0.05, "correction": "holm", "units": counts,
        "planned_units": 10_000,
        "srm": SrmCheck(counts=counts, expected={1: half, 2: half},
                        statistic=71.4 if mismatch else 0.6,
                        p_value=1e-17 if mismatch else 0.43, mismatch=mismatch),
        "metrics": [
            _result("converted", MetricRole.PRIMARY),
            _result("revenue", MetricRole.SECONDARY, _arm(significant=False, better=None,
                                                          p_value=0.2, p_value_adjusted=0.2)),
            _guardrail(),
        ],
        "recommendation": Recommendation.SHIP, "ship_variant": 2,
        "reasons": ["converted improves for v2 (+28.04%), significant at alpha 0.05."],
    }  # fmt: skip
    return ExperimentAnalysis(**{**fields, **changes})


def _svgs(page: str) -> list[str]:
    return re.findall(r'<svg class="forest".*?</svg>', page, flags=re.S)


def test_the_page_reads_in_order_with_a_plot_and_numbers_per_metric() -> None:
    analysis = _analysis(assignment_mismatches=3, assignment_checked=5_000)
    page = render_analysis_html(analysis, _experiment(hypothesis="v2 converts better"))
    assert page.startswith("<!DOCTYPE html>")
    order = ["Sample ratio", "Units per variant", "Primary metric", "Secondary metrics",
             "Guardrails", "Recommendation"]  # fmt: skip
    positions = [page.index(f">{heading}</h2>") for heading in order]
    assert positions == sorted(positions)
    for text in ("checkout", "churn-ab", "fixed, holm correction", "alpha 0.05",
                 "v2 converts better", "4,000 of the planned 10,000 units (40%)",
                 "+28.04% [+5.55%, +50.53%]", "0.0111", "yes, better", ">ok<", "ship v2",
                 "converted improves for v2"):  # fmt: skip
        assert text in page, text
    for metric in ("converted", "revenue", "latency"):
        assert f"<h3>{metric}</h3>" in page
    svgs = _svgs(page)
    assert len(svgs) == 3
    for svg in svgs:
        ET.fromstring(svg)  # well-formed: a browser draws it as written
    assert "3 of 5,000 unit(s) checked were served by another variant than the design" in page
    assert "cannot be trusted" not in page
    assert not re.search(r"<script|<link|\bsrc=|\bhref=", page)


def test_a_sample_ratio_mismatch_is_a_red_warning_before_any_result() -> None:
    page = render_analysis_html(
        _analysis(mismatch=True, recommendation=Recommendation.INCONCLUSIVE, ship_variant=None,
                  reasons=["Sample ratio mismatch (p = 1e-17)."]),
        _experiment(),
    )  # fmt: skip
    warning = page.index('<div class="alert bad" role="alert">')
    assert "the results cannot be trusted" in page
    assert warning < page.index("Units per variant") < page.index('<svg class="forest"')
    assert "v1 2,000, v2 1,500" in page
    assert "inconclusive" in page


def test_every_string_is_escaped() -> None:
    hostile_metric = _result(HOSTILE, MetricRole.PRIMARY, _arm(notes=[HOSTILE]), notes=[HOSTILE],
                             test=HOSTILE)  # fmt: skip
    analysis = _analysis(
        experiment=HOSTILE,
        deployment=HOSTILE,
        metrics=[hostile_metric, _guardrail()],
        reasons=[HOSTILE],
    )
    decision = Decision(action=DecisionAction.ITERATE, reason=HOSTILE, decided_at=T0,
                        decided_by=HOSTILE)  # fmt: skip
    experiment = _experiment(
        hypothesis=HOSTILE, model_name=HOSTILE, decision=decision,
        metrics=[ExperimentMetric(metric=HOSTILE, role=MetricRole.PRIMARY)],
    )  # fmt: skip
    page = render_analysis_html(analysis, experiment)
    assert "<script" not in page
    assert page.count("&lt;script&gt;") >= 9
    for svg in _svgs(page):
        ET.fromstring(svg)


def test_the_interval_plot_has_a_zero_line_a_tolerance_and_colours_by_verdict() -> None:
    failing = _guardrail(GuardrailStatus.FAILING, relative=0.2, relative_ci=(0.15, 0.25),
                         significant=True, better=False)  # fmt: skip
    svg = interval_svg(failing, 0.05, 0.05)
    root = ET.fromstring(svg)
    assert "95% confidence interval" in (root.get("aria-label") or "")
    assert "tolerance +5%" in svg  # lower is better: up to 5% higher is tolerated
    assert 'stroke-dasharray="3 3"' in svg  # the zero line
    assert f'fill="{RED}"' in svg
    winner = interval_svg(_result("converted", MetricRole.PRIMARY), None, 0.05)
    assert f'fill="{GREEN}"' in winner
    assert "tolerance" not in winner
    for tick in ("0", "+20%", "+40%"):
        assert f">{tick}</text>" in winner, tick


def test_arms_without_an_estimate_or_a_relative_lift_still_draw() -> None:
    empty = _result("converted", MetricRole.PRIMARY,
                    _arm(difference=None, difference_ci=None, relative=None, relative_ci=None,
                         p_value=None, p_value_adjusted=None, significant=False, better=None,
                         notes=["no units in v2"]))  # fmt: skip
    svg = interval_svg(empty, None, 0.05)
    ET.fromstring(svg)
    assert "no estimate" in svg
    absolute = _result("errors", MetricRole.PRIMARY,
                       _arm(relative=None, relative_ci=None, difference=0.25,
                            difference_ci=(0.1, float("inf"))),
                       _arm(variant=3, relative=None, relative_ci=None))  # fmt: skip
    svg = interval_svg(absolute, None, 0.05)
    ET.fromstring(svg)
    assert "the difference of each variant" in svg
    page = render_analysis_html(_analysis(metrics=[empty, _guardrail()]), _experiment())
    assert "no units in v2" in page
    assert "—" in page


# -- from a real analysis --------------------------------------------------------------------
@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scenario.build_template(tmp_path_factory.mktemp("report") / "home")


@pytest.fixture
def services(template: Path, tmp_path: Path) -> Iterator[Services]:
    made = scenario.open_home(template, tmp_path / "home")
    yield made
    made.close()


def test_a_real_analysis_with_a_broken_split_and_a_failing_guardrail(services: Services) -> None:
    scenario.create(services)
    scenario.traffic(services, 4_000, rates={1: 0.10, 2: 0.14}, latency={1: 5.0, 2: 6.0},
                     drop={2: 0.3}, seed=11)  # fmt: skip
    analysis = services.analyze_experiment("me", "checkout")
    page = render_analysis_html(analysis, services.experiments.get("checkout"))
    assert analysis.srm.mismatch
    assert "the results cannot be trusted" in page
    assert len(_svgs(page)) == 3
    assert '<span class="worse">failing</span>' in page
    assert "Sample ratio mismatch" in page
