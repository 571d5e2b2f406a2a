"""log_model and load_model: package, capture lineage, register, and load back, both modes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from steward.client import Client, load_model, log_model, start_run
from steward.domain.enums import Flavor
from steward.errors import InvalidInput, NotFound, PermissionDenied
from steward.lineage import fingerprint, read_reference_sample


class SumModel:
    """A plain Python model (python flavor: pickled, loads only when trusted on both sides)."""

    def __init__(self, weights: list[float]) -> None:
        self.weights = np.asarray(weights)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(frame, dtype=float) @ self.weights


@pytest.fixture(scope="module")
def training() -> tuple[pd.DataFrame, RandomForestClassifier]:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {"income": rng.normal(50, 10, 300), "age": rng.integers(18, 90, 300).astype(float)}
    )
    target = ((frame["income"] > 50) & (frame["age"] < 60)).astype(int)
    model = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0)
    return frame, model.fit(frame, target)


def test_log_model_records_signature_lineage_and_sample(client: Client, training) -> None:
    frame, model = training
    version = log_model(
        model, "credit", training_data=frame, metrics={"auc": 0.93}, params={"depth": 3},
        team="risk", risk_tier=1, client=client,
    )  # fmt: skip
    assert (version.model_name, version.version, version.flavor) == ("credit", 1, Flavor.SKLEARN)
    assert version.metrics == {"auc": 0.93}
    assert version.params == {"depth": "3"}
    assert client.get_model("credit").risk_tier == 1

    assert version.signature is not None
    assert version.signature.input_names == ["income", "age"]
    assert {c.dtype for c in version.signature.inputs} == {"float64"}

    lineage = version.lineage
    assert lineage.training_data == fingerprint(frame)
    assert lineage.training_data.startswith("sha256:")
    assert lineage.environment["python"]
    assert "scikit-learn" in lineage.environment.get("packages", {})
    assert lineage.command

    assert version.reference_sample is not None
    sample = read_reference_sample(client.download_artifact(version.reference_sample.digest))
    assert list(sample.columns) == ["income", "age"]
    assert len(sample) == len(frame)

    assert client.get_version("models:/credit/1") == version
    event = client.list_events(kind="version.registered").items[-1]
    assert event.subject_id == "models:/credit/1"
    assert event.payload["training_data"] == fingerprint(frame)


def test_load_model_predicts_like_the_original(client: Client, training) -> None:
    frame, model = training
    log_model(model, "credit", training_data=frame, client=client)
    client.set_alias("credit", "champion", 1)
    expected = model.predict(frame)
    for uri in ("models:/credit/1", "models:/credit@champion", "models:/credit/latest"):
        loaded = load_model(uri, client=client)
        assert loaded.flavor is Flavor.SKLEARN
        np.testing.assert_array_equal(loaded.predict(frame), expected)
        np.testing.assert_array_equal(loaded.predict(frame.to_numpy()), expected)
        np.testing.assert_array_equal(loaded.predict(frame.to_dict("records")), expected)
    np.testing.assert_allclose(loaded.predict_proba(frame), model.predict_proba(frame))
    # columns are matched by name, so their order in the caller's frame does not matter
    np.testing.assert_array_equal(loaded.predict(frame[["age", "income"]]), expected)

    with pytest.raises(NotFound):
        load_model("models:/credit/2", client=client)
    with pytest.raises(NotFound):
        load_model("models:/credit@staging", client=client)
    with pytest.raises(InvalidInput) as info:
        load_model("credit:1", client=client)
    assert info.value.field == "uri"


def test_onnx_export_and_prefer_onnx(client: Client, training) -> None:
    frame, model = training
    version = log_model(model, "credit", training_data=frame, export_onnx=True, client=client)
    assert set(version.files) == {"model.skops", "model.onnx"}
    assert version.primary_file == "model.skops"

    native = load_model("models:/credit/1", client=client)
    assert native.flavor is Flavor.SKLEARN
    onnx = load_model("models:/credit/1", prefer="onnx", client=client)
    assert onnx.flavor is Flavor.ONNX
    expected = model.predict(frame)
    np.testing.assert_array_equal(onnx.predict(frame), expected)
    np.testing.assert_array_equal(onnx.predict(frame.to_numpy()), expected)
    np.testing.assert_array_equal(onnx.predict(frame.to_dict("records")), expected)
    np.testing.assert_allclose(
        onnx.predict_proba(frame), model.predict_proba(frame), rtol=1e-4, atol=1e-5
    )


def test_python_flavor_needs_trust_on_both_sides(client: Client) -> None:
    model = SumModel([1.0, 2.0])
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    with pytest.raises(InvalidInput) as info:
        log_model(model, "adder", client=client)
    assert info.value.field == "trusted"

    version = log_model(model, "adder", trusted=True, sample_input=frame, client=client)
    assert version.flavor is Flavor.PYTHON
    assert version.trusted is True
    with pytest.raises(PermissionDenied) as loader:
        load_model("models:/adder/1", allow_trusted=False, client=client)
    assert loader.value.details["refused_by"] == "loader"
    loaded = load_model("models:/adder/1", allow_trusted=True, client=client)
    np.testing.assert_allclose(loaded.predict(frame), model.predict(frame))

    # The same pickle registered without trusted=True never loads, whatever the loader allows.
    files = {n: client.upload_artifact(b) for n, b in client_files(client, version).items()}
    untrusted = client.create_version("adder", flavor="python", files=files, trusted=False)
    with pytest.raises(PermissionDenied) as registration:
        load_model(f"models:/adder/{untrusted.version}", allow_trusted=True, client=client)
    assert registration.value.details["refused_by"] == "registration"
    assert isinstance(registration.value, PermissionError)


def client_files(client: Client, version) -> dict[str, bytes]:
    return {name: client.download_artifact(ref.digest) for name, ref in version.files.items()}


def test_file_that_is_not_its_flavor_is_refused(client: Client) -> None:
    client.create_model("liar")
    ref = client.upload_artifact(b"definitely not a skops zip")
    with pytest.raises(InvalidInput) as info:
        client.create_version("liar", flavor="sklearn", files={"model.skops": ref})
    assert info.value.field == "artifact"
    missing = ref.model_copy(update={"digest": "sha256:" + "0" * 64})
    with pytest.raises(InvalidInput) as gone:
        client.create_version("liar", flavor="sklearn", files={"model.skops": missing})
    assert gone.value.field == "files.model.skops"


def test_log_model_inside_a_run_links_the_run(client: Client, training) -> None:
    frame, model = training
    with start_run("train-credit", params={"depth": 3}, client=client) as run:
        run.log_metric("auc", 0.9)
        version = run.log_model(model, "credit", training_data=frame)
    assert version.lineage.run_id == run.id
    assert client.search_versions(f"run_id = '{run.id}'") == [version]
    assert client.get_run(run.id).metrics == {"auc": 0.9}
