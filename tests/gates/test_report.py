"""Running a policy, the verdict rule, a check that crashes, and the HTML report."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

from steward.domain.enums import Role
from steward.domain.gates import CheckResult, GateContext, Outcome, Verdict
from steward.gates.checks import BaseCheck, Finding, NoParams, builtin_checks
from steward.gates.policy import default_policy_text, parse_policy
from steward.gates.report import build_report, render_html, run_policy, verdict_of


def _result(outcome: Outcome) -> CheckResult:
    return CheckResult(check="x", title="x", outcome=outcome, detail="")


@pytest.mark.parametrize(
    ("outcomes", "verdict"),
    [
        ([], Verdict.PASSED),
        ([Outcome.PASSED, Outcome.NOT_APPLICABLE], Verdict.PASSED),
        ([Outcome.PASSED, Outcome.PENDING], Verdict.AWAITING_APPROVAL),
        ([Outcome.PENDING, Outcome.FAILED, Outcome.PASSED], Verdict.FAILED),
    ],
)
def test_verdict_rule(outcomes: list[Outcome], verdict: Verdict) -> None:
    assert verdict_of(_result(o) for o in outcomes) == verdict


def test_the_tier_1_policy_passes_a_version_with_all_the_evidence(make) -> None:
    results = run_policy(parse_policy(default_policy_text(1)), make.ctx())
    outcomes = {(r.check, r.params.get("metric")): r.outcome for r in results}
    assert outcomes[("metric_floor", "r2")] == Outcome.NOT_APPLICABLE  # a binary classifier
    assert all(
        outcome == Outcome.PASSED for (_, metric), outcome in outcomes.items() if metric != "r2"
    ), [r for r in results if r.outcome != Outcome.PASSED]
    assert verdict_of(results) == Verdict.PASSED


def test_a_gate_waiting_only_for_approvals(make) -> None:
    ctx = make.ctx(approvals=[make.approval("carol")])
    results = run_policy(parse_policy(default_policy_text(1)), ctx)
    assert verdict_of(results) == Verdict.AWAITING_APPROVAL
    assert [r.check for r in results if r.outcome == Outcome.PENDING] == ["approvals"]


class Exploding(BaseCheck[NoParams]):
    name = "exploding"
    Params = NoParams

    def title(self, params: NoParams) -> str:
        return "never finishes"

    def evaluate(self, params: NoParams, ctx: GateContext) -> Finding:
        raise ZeroDivisionError("division by zero in the check")


class WrongReturn:
    name = "wrong_return"
    Params = NoParams

    def title(self, params: Any) -> str:
        return "returns a string"

    def run(self, params: Any, ctx: GateContext) -> Any:
        return "passed"


def test_a_check_that_raises_fails_without_stopping_the_gate(make) -> None:
    checks = {**builtin_checks(), "exploding": Exploding(), "wrong_return": WrongReturn()}
    text = "name: x\nchecks:\n  - check: exploding\n  - check: wrong_return\n  - check: approvals\n"
    results = run_policy(parse_policy(text, checks=checks), make.ctx(), checks)
    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.FAILED, Outcome.PASSED]
    assert results[0].detail == "the check raised ZeroDivisionError: division by zero in the check"
    assert results[1].detail == "the check returned str, not a result"


def test_a_check_uninstalled_since_the_policy_was_stored_fails(make) -> None:
    checks = {**builtin_checks(), "exploding": Exploding()}
    policy = parse_policy("name: x\nchecks:\n  - check: exploding\n", checks=checks)
    (result,) = run_policy(policy, make.ctx(), builtin_checks())
    assert result.outcome == Outcome.FAILED
    assert result.detail == "check 'exploding' is not installed"


def test_build_report_names_the_policy_and_the_evaluation(make) -> None:
    policy = parse_policy(default_policy_text(3))
    report = build_report(policy, make.ctx(), report_id="g-1", revision=4, created_by="ci")
    assert (report.model_name, report.version, report.verdict) == ("churn", 2, Verdict.PASSED)
    assert (report.policy.name, report.policy.revision) == ("tier-3", 4)
    assert report.policy.digest == policy.digest
    assert report.evaluation_id == "ev-2"
    assert len(report.results) == len(policy.checks)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_the_html_report_is_standalone_and_escapes_everything(make) -> None:
    hostile = '<script>alert("x")</script>'
    ctx = make.ctx(
        approvals=[make.approval(hostile, Role.VIEWER)],
        version=make.version(created_by="bob"),
    )
    policy = parse_policy(default_policy_text(1))
    page = render_html(build_report(policy, ctx, report_id="g-1", revision=1, created_by=hostile))

    assert page.startswith("<!DOCTYPE html>")
    assert hostile not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    parser = _Tags()
    parser.feed(page)
    tags = [tag for tag, _ in parser.tags]
    assert not {"script", "link", "img", "iframe"} & set(tags)
    assert not re.search(r"https?://", page)  # no external assets of any kind
    assert tags.count("tr") == len(policy.checks) + 1
    assert "awaiting approval" in page
    assert policy.digest in page
    assert "tier-1 (revision 1)" in page


def test_non_finite_evidence_is_stored_as_null(make) -> None:
    # a reproduction that produced NaN: JSON (and PostgreSQL's jsonb) cannot hold it
    reproduction = make.reproduction(matched=False, reproduced={"roc_auc": float("nan")})
    policy = parse_policy("name: x\nchecks:\n  - check: reproducibility\n")
    (result,) = run_policy(policy, make.ctx(reproduction=reproduction))
    assert result.outcome == Outcome.FAILED
    assert result.evidence["differences"] == {"roc_auc": None}
    assert result.evidence["reproduced"] == {"roc_auc": None}
    assert "roc_auc 0.85 -> undefined" in result.detail
