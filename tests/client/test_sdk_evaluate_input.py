"""Evaluation data that does not fit the version is refused, naming what is wrong, in every
mode, and nothing is stored."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from steward.client import Client, log_model
from steward.errors import InvalidInput


@pytest.fixture(scope="module")
def table_and_model() -> tuple[pd.DataFrame, LogisticRegression]:
    rng = np.random.default_rng(11)
    frame = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    label = (frame["a"] > 0).astype(int)
    return frame.assign(
        y=label, region=np.where(frame["b"] > 0, "n", "s")
    ), LogisticRegression().fit(frame, label)


@pytest.mark.parametrize(
    ("change", "label", "groups", "field", "message"),
    [
        (lambda t: t, "target", [], "label", "no label column 'target'"),
        (lambda t: t, "y", ["country"], "groups", "group column 'country'"),
        (lambda t: t.drop(columns=["b"]), "y", ["region"], "data", "lacks input columns"),
        (lambda t: t.assign(extra=1.0), "y", ["region"], "data", "signature lacks: extra"),
        (lambda t: t.assign(a=t["a"].astype(str)), "y", ["region"], "data", "must be float64"),
        (lambda t: t.iloc[:1], "y", [], "data", "at least 2 rows"),
    ],
    ids=["no-label", "unknown-group", "missing-input", "extra-column", "wrong-dtype", "one-row"],
)
def test_bad_evaluation_data_is_refused(
    client: Client, table_and_model, change, label, groups, field, message
) -> None:
    table, model = table_and_model
    uri = log_model(model, "scorer", training_data=table[["a", "b"]], client=client).uri
    with pytest.raises(InvalidInput, match=message) as refused:
        client.evaluate(uri, change(table), label, groups=groups, resamples=10, latency_calls=2)
    assert refused.value.field == field
    assert client.evaluations(uri) == []


def test_resamples_out_of_range_are_refused(client: Client, table_and_model) -> None:
    table, model = table_and_model
    uri = log_model(model, "scorer", training_data=table[["a", "b"]], client=client).uri
    with pytest.raises(InvalidInput) as refused:
        client.evaluate(uri, table, "y", resamples=-5)
    assert refused.value.field == "resamples"
