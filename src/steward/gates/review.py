"""Lifecycle hygiene: what in the registry needs a person's attention, and the archival policy.

Pure: the gates service reads the store, calls :func:`review` and, when asked, archives what
the review lists under ``to_archive``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from steward.domain.entities import Model, ModelVersion
from steward.domain.enums import VersionStatus
from steward.domain.gates import Finding, LifecycleReview
from steward.errors import InvalidInput

# Owners that name a machine, not a person: nobody answers for such a model.
_MACHINE_OWNER_PREFIXES = ("token:", "steward")


def check_days(**days: int) -> None:
    for field, value in days.items():
        if not 0 <= value <= 36_500:
            raise InvalidInput(
                f"{field} must be between 0 and 36500 days; got {value}.", field=field
            )


def review(
    models: Iterable[Model],
    versions: Iterable[ModelVersion],
    *,
    at: datetime,
    staging_days: int,
    archive_after_days: int,
) -> LifecycleReview:
    """``versions`` are the staging, production and deprecated versions of every model."""
    check_days(staging_days=staging_days, archive_after_days=archive_after_days)
    found: dict[str, list[Finding]] = {
        key: [] for key in ("unmonitored_production", "stale_staging", "to_archive",
                            "kept_for_rollback")
    }  # fmt: skip
    deprecated: dict[str, list[ModelVersion]] = {}
    for version in versions:
        status, since = version.status, version.status_changed_at
        if status is VersionStatus.PRODUCTION and version.reference_sample is None:
            found["unmonitored_production"].append(_finding(
                version, "in production without a reference sample: drift cannot be checked",
            ))  # fmt: skip
        elif status is VersionStatus.STAGING and _older(since, at, staging_days):
            found["stale_staging"].append(
                _finding(version, f"in staging for more than {staging_days} days")
            )
        elif status is VersionStatus.DEPRECATED:
            deprecated.setdefault(version.model_name, []).append(version)
    for group in deprecated.values():
        # The most recently deprecated version is the one a rollback goes back to: keep it.
        group.sort(key=lambda v: (v.status_changed_at or at, v.version), reverse=True)
        newest, *older = group
        if _older(newest.status_changed_at, at, archive_after_days):
            found["kept_for_rollback"].append(_finding(
                newest, "past its archival date, but kept: it is the rollback target",
            ))  # fmt: skip
        found["to_archive"] += [
            _finding(v, f"deprecated for more than {archive_after_days} days")
            for v in older
            if _older(v.status_changed_at, at, archive_after_days)
        ]
    return LifecycleReview(
        at=at,
        staging_days=staging_days,
        archive_after_days=archive_after_days,
        no_owner=[_ownerless(m) for m in models if _has_no_owner(m)],
        **found,
    )


def _has_no_owner(model: Model) -> bool:
    owner = model.owner.strip()
    return not owner or owner.startswith(_MACHINE_OWNER_PREFIXES)


def _ownerless(model: Model) -> Finding:
    return Finding(
        model=model.name, reason=f"owner is {model.owner.strip() or 'empty'!r}: name a person"
    )


def _older(since: datetime | None, at: datetime, days: int) -> bool:
    return since is not None and at - since > timedelta(days=days)


def _finding(version: ModelVersion, reason: str) -> Finding:
    return Finding(
        model=version.model_name,
        version=version.version,
        reason=reason,
        since=version.status_changed_at,
    )
