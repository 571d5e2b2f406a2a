"""A deployment's runtime through the SDK, in every mode: "onnx" is accepted for versions
registered with their ONNX export, refused for the others, and a bad value names the field."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from steward.client import Client, log_model
from steward.errors import InvalidInput

POLICY = """\
name: runtime-policy
checks:
  - check: approvals
    count: 1
"""


def _versions(client: Client, reviewer: Client) -> None:
    """pricing v1 in production with its ONNX export, v2 approved without one."""
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
    model = LogisticRegression().fit(frame, (frame["a"] > 0).astype(int))
    client.create_model("pricing", owner="ana@example.com")
    client.set_policy(POLICY, model="pricing")
    for export in (True, False):
        uri = log_model(model, "pricing", export_onnx=export, client=client).uri
        client.gate(uri)
        reviewer.approve(uri)
    client.promote("models:/pricing/1", "production")


def test_the_onnx_runtime_is_kept_and_refused_without_an_export(
    client: Client, reviewer: Client
) -> None:
    _versions(client, reviewer)
    assert client.deploy("plain", model="pricing", champion=1).runtime == "native"
    deployed = client.deploy("fast", model="pricing", champion=1, runtime="onnx")
    assert deployed.runtime == "onnx"
    assert client.get_deployment("fast").runtime == "onnx"
    with pytest.raises(InvalidInput, match="export_onnx=True") as refused:
        client.deploy("fast", model="pricing", champion=1, canary=2, canary_share=0.1,
                      runtime="onnx")  # fmt: skip
    assert refused.value.field == "runtime"
    assert refused.value.details["version"] == 2
    assert "models:/pricing/2 (its canary" in refused.value.message
    assert client.get_deployment("fast").revision == 1  # nothing written
    events = client.list_events(subject_type="deployment", subject_id="fast").items
    assert [e.payload["runtime"] for e in events] == ["onnx"]


@pytest.mark.parametrize("value", ["tpu", "ONNX", ""])
def test_a_bad_runtime_is_refused_naming_the_field(client: Client, value: str) -> None:
    with pytest.raises(InvalidInput, match="'native' or 'onnx'") as refused:
        client.deploy("x", model="pricing", champion=1, runtime=value)
    assert refused.value.field == "runtime"
