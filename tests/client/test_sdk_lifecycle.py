"""Lifecycle review through the SDK, in every mode: what it flags, and the archival policy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from steward.client import Client, log_model
from steward.domain.enums import VersionStatus as S
from steward.errors import InvalidInput

POLICY = """\
name: review-policy
checks:
  - check: metric_floor
    metric: roc_auc
    min: 0.5
  - check: approvals
    count: 1
"""


@pytest.fixture(scope="module")
def table_and_model() -> tuple[pd.DataFrame, LogisticRegression]:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})
    label = (frame["a"] > 0).astype(int)
    return frame.assign(label=label), LogisticRegression().fit(frame, label)


def _release(client: Client, reviewer: Client, uri: str, table: pd.DataFrame) -> None:
    client.evaluate(uri, table, "label", resamples=20, latency_calls=5)
    client.gate(uri)
    reviewer.approve(uri)
    client.promote(uri, "production")


def test_review_flags_and_archives_but_keeps_the_rollback_target(
    client: Client, reviewer: Client, table_and_model
) -> None:
    table, model = table_and_model
    client.create_model("churn", owner="ana@example.com")
    client.set_policy(POLICY, model="churn")
    features = table[["a", "b"]]
    uris = [log_model(model, "churn", training_data=features, client=client).uri for _ in range(2)]
    # the third has no reference sample: drift cannot be checked once it is in production
    uris.append(log_model(model, "churn", client=client).uri)
    for uri in uris:
        _release(client, reviewer, uri, table)
    assert [client.get_version(u).status for u in uris] == [
        S.DEPRECATED,
        S.DEPRECATED,
        S.PRODUCTION,
    ]

    review = client.lifecycle_review(archive_after_days=0)
    churn = [f for f in review.unmonitored_production if f.model == "churn"]
    assert [(f.version, "reference sample" in f.reason) for f in churn] == [(3, True)]
    assert [(f.model, f.version) for f in review.to_archive] == [("churn", 1)]
    assert [(f.model, f.version) for f in review.kept_for_rollback] == [("churn", 2)]
    assert "churn" not in {f.model for f in review.no_owner}  # a person owns it
    assert review.archived == []
    assert client.get_version(uris[0]).status is S.DEPRECATED  # a review alone changes nothing

    applied = client.lifecycle_review(archive_after_days=0, apply=True)
    assert [(f.model, f.version) for f in applied.archived] == [("churn", 1)]
    assert applied.to_archive == []
    assert client.get_version(uris[0]).status is S.ARCHIVED
    assert client.get_version(uris[1]).status is S.DEPRECATED  # still the way back
    assert client.lifecycle_review(archive_after_days=0).to_archive == []

    moves = [e for e in client.list_events(kind="version.transitioned").items
             if e.subject_id == uris[0]]  # fmt: skip
    assert moves[-1].payload["to"] == "archived"
    assert "archival policy" in moves[-1].payload["reason"]


def test_review_flags_models_owned_by_no_person(client: Client) -> None:
    client.create_model("orphan", owner="token:ci-bot")
    flagged = {f.model: f.reason for f in client.lifecycle_review().no_owner}
    assert "orphan" in flagged
    assert "name a person" in flagged["orphan"]


def test_review_refuses_negative_days(client: Client) -> None:
    with pytest.raises(InvalidInput) as refused:
        client.lifecycle_review(staging_days=-1)
    assert refused.value.field == "staging_days"
