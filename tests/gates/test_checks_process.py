"""Checks on the release process: a way back, and separation of duties in approvals."""

from __future__ import annotations

from steward.domain.enums import Role
from steward.domain.gates import Outcome


def test_rollback_ready_with_a_previous_version_or_a_fallback(make, run) -> None:
    result = run("rollback_ready", make.ctx())
    assert result.outcome == Outcome.PASSED
    assert result.detail == "traffic can go back to v1"
    fallback = make.ctx(rollback_targets=[], fallback_configured=True)
    assert run("rollback_ready", fallback).outcome == Outcome.PASSED


def test_rollback_ready_on_a_first_release_is_not_applicable(make, run) -> None:
    ctx = make.ctx(rollback_targets=[], previously_in_production=[], champion=None)
    result = run("rollback_ready", ctx)
    assert result.outcome == Outcome.NOT_APPLICABLE
    assert result.detail.startswith("first release of this model")


def test_rollback_ready_fails_when_an_old_production_version_cannot_take_traffic(make, run) -> None:
    retired = make.ctx(rollback_targets=[], previously_in_production=[1], champion=None)
    assert run("rollback_ready", retired).outcome == Outcome.FAILED
    # a champion serving now is a previous production version even if no history says so
    serving = make.ctx(rollback_targets=[], previously_in_production=[])
    assert run("rollback_ready", serving).outcome == Outcome.FAILED


def test_approvals_pass_with_enough_distinct_approvers(make, run) -> None:
    result = run("approvals", make.ctx(), count=2)
    assert result.outcome == Outcome.PASSED
    assert result.evidence["approved_by"] == ["carol", "dave"]
    assert result.title == "2 approvals by approver or above, not the author"


def test_approvals_fewer_than_needed_are_pending_not_failed(make, run) -> None:
    ctx = make.ctx(approvals=[make.approval("carol"), make.approval("carol")])
    result = run("approvals", ctx, count=2)
    assert result.outcome == Outcome.PENDING
    assert result.detail == "1 of 2 approval(s): carol (approver)"
    nobody = run("approvals", make.ctx(approvals=[]))
    assert nobody.outcome == Outcome.PENDING
    assert nobody.detail == "0 of 1 approval(s); nobody has approved yet"


def test_the_authors_approval_never_counts(make, run) -> None:
    # bob wrote version 2; an admin role does not let him sign off his own work
    ctx = make.ctx(approvals=[make.approval("bob", Role.ADMIN)])
    result = run("approvals", ctx)
    assert result.outcome == Outcome.PENDING
    assert "bob is the version's author" in result.detail
    assert result.evidence["not_counted"] == {"bob": "bob is the version's author"}


def test_only_approver_and_admin_roles_count(make, run) -> None:
    approvals = [
        make.approval("vera", Role.VIEWER),
        make.approval("dan", Role.DEVELOPER),
        make.approval("ada", Role.ADMIN),
    ]
    result = run("approvals", make.ctx(approvals=approvals), count=2)
    assert result.outcome == Outcome.PENDING
    assert result.evidence["approved_by"] == ["ada"]
    assert "vera has role viewer, below approver" in result.detail
    assert "dan has role developer, below approver" in result.detail
    admins_only = run("approvals", make.ctx(), role="admin")
    assert admins_only.evidence["approved_by"] == ["dave"]


def test_approvals_of_another_version_do_not_count(make, run) -> None:
    ctx = make.ctx(approvals=[make.approval("carol", version=1)])
    assert run("approvals", ctx).outcome == Outcome.PENDING
