"""PUT /deployments/{name} with a runtime: accepted, shown by the reads, refused in the one
envelope (a bad value, or "onnx" for a version without an ONNX export), on every backend."""

from __future__ import annotations

from typing import Any

import pytest
from tests.api.conftest import ApiEnv
from tests.api.test_api_errors import assert_envelope
from tests.store.test_deployment_feed import release

from steward.api.app import API_PREFIX

URL = f"{API_PREFIX}/deployments"


@pytest.fixture(scope="module")
def released(api: ApiEnv) -> ApiEnv:
    """Model ``rt``: v1 in production with its ONNX export, v2 approved without one."""
    release(api.services, "rt", [True, False])
    return api


def _put(api: ApiEnv, name: str, body: dict[str, Any]) -> Any:
    return api.http.put(f"{URL}/{name}", json={"model": "rt", **body}, headers=api.headers("admin"))


def test_the_runtime_is_stored_and_read_back(released: ApiEnv) -> None:
    answer = _put(released, "rt-onnx", {"champion": 1, "runtime": "onnx"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["runtime"] == "onnx"
    default = _put(released, "rt-native", {"champion": 1})
    assert default.json()["runtime"] == "native"
    listed = released.http.get(URL, params={"model": "rt"}, headers=released.headers("viewer"))
    assert {d["name"]: d["runtime"] for d in listed.json()} == {
        "rt-native": "native", "rt-onnx": "onnx",
    }  # fmt: skip


@pytest.mark.parametrize("value", ["tpu", 1, None])
def test_a_bad_runtime_is_422_naming_the_field(released: ApiEnv, value: Any) -> None:
    error = assert_envelope(
        _put(released, "rt-bad", {"champion": 1, "runtime": value}), 422, "invalid_input", "runtime"
    )
    assert "runtime" in error["message"]


def test_onnx_without_an_export_is_422_naming_the_version(released: ApiEnv) -> None:
    body = {"champion": 1, "shadow": 2, "runtime": "onnx"}
    error = assert_envelope(_put(released, "rt-shadow", body), 422, "invalid_input", "runtime")
    assert error["details"]["version"] == 2
    assert "export_onnx=True" in error["message"]
    missing = released.http.get(f"{URL}/rt-shadow", headers=released.headers("viewer"))
    assert missing.status_code == 404  # nothing was written
