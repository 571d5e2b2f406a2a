"""The lifecycle review's rules on hand-built versions (dates in the past are easy here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from steward.domain.entities import ArtifactRef
from steward.domain.enums import VersionStatus as S
from steward.errors import InvalidInput
from steward.gates.review import review

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SAMPLE = ArtifactRef(digest="sha256:" + "c" * 64, size=10)


def _ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def test_each_finding_and_its_threshold(make) -> None:
    versions = [
        make.version(1, status=S.DEPRECATED, status_changed_at=_ago(200)),
        make.version(2, status=S.DEPRECATED, status_changed_at=_ago(120)),  # rollback target
        make.version(3, status=S.PRODUCTION, status_changed_at=_ago(10), reference_sample=None),
        make.version(4, status=S.STAGING, status_changed_at=_ago(45), reference_sample=SAMPLE),
        make.version(5, status=S.STAGING, status_changed_at=_ago(5)),
        make.version(6, status=S.DEPRECATED, status_changed_at=_ago(30)),
    ]
    models = [make.model(), make.model(id="m-2", name="bot-owned", owner="token:ci")]
    result = review(models, versions, at=NOW, staging_days=30, archive_after_days=90)

    assert [f.model for f in result.no_owner] == ["bot-owned"]
    assert [f.version for f in result.unmonitored_production] == [3]
    assert [f.version for f in result.stale_staging] == [4]
    # v6 is the newest deprecated version: the rollback target, and not yet 90 days old anyway
    assert [f.version for f in result.to_archive] == [2, 1]
    assert result.kept_for_rollback == []
    assert not result.clean


def test_the_rollback_target_is_kept_even_past_its_date(make) -> None:
    versions = [
        make.version(1, status=S.DEPRECATED, status_changed_at=_ago(300)),
        make.version(2, status=S.DEPRECATED, status_changed_at=_ago(100)),
    ]
    result = review([make.model()], versions, at=NOW, staging_days=30, archive_after_days=90)
    assert [f.version for f in result.to_archive] == [1]
    assert [f.version for f in result.kept_for_rollback] == [2]
    assert "rollback target" in result.kept_for_rollback[0].reason


def test_a_tidy_registry_is_clean(make) -> None:
    versions = [make.version(1, status=S.PRODUCTION, reference_sample=SAMPLE)]
    result = review([make.model()], versions, at=NOW, staging_days=30, archive_after_days=90)
    assert result.clean


@pytest.mark.parametrize("field", ["staging_days", "archive_after_days"])
def test_days_out_of_range_are_refused(make, field: str) -> None:
    days = {"staging_days": 30, "archive_after_days": 90, field: -1}
    with pytest.raises(InvalidInput) as refused:
        review([], [], at=NOW, **days)
    assert refused.value.field == field
