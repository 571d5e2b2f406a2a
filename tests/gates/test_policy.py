"""Parsing release policies: the valid form, and every rejection with its line and reason."""

from __future__ import annotations

import hashlib
from textwrap import dedent

import pytest

from steward.errors import InvalidInput
from steward.gates.checks import builtin_checks
from steward.gates.policy import default_policy_text, parse_policy, policy_digest

VALID = dedent(
    """\
    name: tier-1
    description: Highest-risk models
    applies_to: 1
    checks:
      - check: metric_floor
        metric: roc_auc
        min: 0.80
        estimate: lower_bound
      - check: approvals
        count: 2
      - check: lineage_complete
    """
)


def _rejection(text: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse_policy(text, source="tier1.yaml")
    error = caught.value
    assert error.details["field"] == "policy"
    assert error.message == f"tier1.yaml line {error.details['line']}: {error.details['reason']}"
    return error


def test_a_valid_policy_parses_with_lines_and_filled_defaults() -> None:
    policy = parse_policy(VALID)
    assert (policy.name, policy.description, policy.applies_to) == (
        "tier-1",
        "Highest-risk models",
        1,
    )
    assert [(spec.check, spec.line) for spec in policy.checks] == [
        ("metric_floor", 5),
        ("approvals", 9),
        ("lineage_complete", 11),
    ]
    assert policy.checks[0].params == {
        "metric": "roc_auc",
        "min": 0.8,
        "estimate": "lower_bound",
        "tasks": [],
    }
    assert policy.checks[1].params == {"count": 2, "role": "approver"}
    assert policy.digest == "sha256:" + hashlib.sha256(VALID.encode()).hexdigest()
    assert policy.digest == policy_digest(VALID)


def test_a_yaml_syntax_error_names_its_line() -> None:
    error = _rejection("name: x\nchecks:\n  - check: latency\n    p95_ms: [1, 2\n")
    assert error.details["line"] == 4
    assert error.details["reason"].startswith("not valid YAML:")


def test_an_unknown_check_names_its_line_and_the_known_ones() -> None:
    text = VALID + "  - check: metric_flor\n    metric: auc\n"
    error = _rejection(text)
    assert error.details["line"] == 12
    assert "unknown check 'metric_flor' (did you mean 'metric_floor'?)" in error.message
    assert "known checks: " + ", ".join(sorted(builtin_checks())) in error.message


def test_a_wrongly_typed_parameter_names_its_line() -> None:
    error = _rejection(VALID.replace("min: 0.80", "min: high"))
    assert error.details["line"] == 7
    assert error.details["reason"].startswith("parameter 'min' of check 'metric_floor'")
    assert "got 'high'" in error.details["reason"]


def test_an_extra_parameter_is_rejected_with_the_allowed_ones() -> None:
    error = _rejection(VALID.replace("count: 2", "count: 2\n    quorum: all"))
    assert error.details["line"] == 11
    assert error.details["reason"] == (
        "unknown parameter 'quorum' for check 'approvals'; its parameters are: count, role"
    )


def test_a_missing_parameter_points_at_the_check() -> None:
    error = _rejection("name: x\nchecks:\n  - check: latency\n    case: batch\n")
    assert error.details == {
        "line": 3,
        "reason": "check 'latency' needs the parameter 'p95_ms'",
        "field": "policy",
    }


def test_empty_checks_and_missing_checks_are_rejected() -> None:
    assert _rejection("name: x\nchecks: []\n").details["line"] == 2
    assert "no checks" in _rejection("name: x\nchecks: []\n").message
    assert "no 'checks' list" in _rejection("name: x\ndescription: y\n").message
    assert _rejection("").details["reason"] == "the policy is empty"


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("- a\n- b\n", 1, "a policy is a mapping"),
        ("name: x\nname: y\nchecks: []\n", 2, "duplicate key 'name'"),
        ("name: x\nowner: y\nchecks: []\n", 2, "unknown key 'owner' for the policy"),
        ("name: x\napplies_to: 7\nchecks: []\n", 2, "key 'applies_to' of the policy"),
        ("name: x\nchecks:\n  - metric_floor\n", 3, "each check is a mapping"),
        ("name: x\nchecks:\n  - metric: auc\n", 3, "has no 'check' key"),
        ("name: x\nchecks:\n  - check: latency\n    p95_ms: .nan\n", 4, "finite number"),
        ("name: x\nchecks:\n  - check: approvals\n    role: developer\n", 4, "approver or admin"),
        ("name: x\nchecks:\n - check: documentation\n   sections: [owners]\n", 4, "owners"),
        (
            "name: x\nchecks:\n  - check: fairness\n    max: 1\n    groups: [a, [b]]\n",
            5,
            "groups[1]",
        ),
        ("name: !!python/object:os.system x\nchecks: []\n", 1, "constructor"),
        ("name: x\n---\nname: y\n", 2, "single document"),
        ("name: x\x07\nchecks: []\n", 1, "U+0007"),
    ],
)
def test_other_rejections_name_the_line(text: str, line: int, reason: str) -> None:
    error = _rejection(text)
    assert error.details["line"] == line
    assert reason in error.details["reason"]


def test_on_is_read_as_a_key_not_yaml_true() -> None:
    # YAML 1.1 reads a bare `on` as a boolean; the parser keeps keys as written
    error = _rejection(VALID.replace("estimate: lower_bound", "on: lower_bound"))
    assert "unknown parameter 'on'" in error.message


@pytest.mark.parametrize("tier", [1, 2, 3])
def test_default_policies_parse(tier: int) -> None:
    policy = parse_policy(default_policy_text(tier), source=f"tier{tier}.yaml")
    assert policy.applies_to == tier
    names = [spec.check for spec in policy.checks]
    assert {"approvals", "documentation", "metric_floor"} <= set(names)


def test_default_policies_get_lighter_by_tier() -> None:
    checks = {t: parse_policy(default_policy_text(t)).checks for t in (1, 2, 3)}
    names = {t: {spec.check for spec in specs} for t, specs in checks.items()}
    assert names[1] - names[2] == {"reproducibility"}
    assert names[3] == {"metric_floor", "documentation", "approvals"}
    counts = {
        t: next(s.params["count"] for s in checks[t] if s.check == "approvals") for t in checks
    }
    assert counts == {1: 2, 2: 1, 3: 1}


def test_no_default_policy_for_an_unknown_tier() -> None:
    with pytest.raises(InvalidInput) as caught:
        default_policy_text(4)
    assert caught.value.field == "tier"
