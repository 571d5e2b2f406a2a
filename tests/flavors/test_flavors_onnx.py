import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from steward.domain.enums import Flavor
from steward.errors import InvalidInput
from steward.flavors import load_model, package_model, validate_artifact


def _load(flavor, files, signature=None, prefer=None):
    return load_model(
        flavor,
        files,
        signature=signature,
        registered_trusted=False,
        allow_trusted=False,
        prefer=prefer,
    )


def _exported_iris():
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    return model, X, package_model(model, export_onnx=True, sample_input=X)


def test_export_onnx_classifier_matches_sklearn() -> None:
    model, X, packaged = _exported_iris()
    assert set(packaged.files) == {"model.skops", "model.onnx"}
    assert packaged.primary_file == "model.skops"
    loaded = _load(packaged.flavor, packaged.files, packaged.signature, prefer=Flavor.ONNX)
    assert loaded.flavor is Flavor.ONNX
    labels = loaded.predict(X)
    assert labels.shape == (len(X),)
    assert np.mean(labels == model.predict(X)) > 0.98
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), atol=1e-4)
    # The same inputs in other shapes go through the signature's column order.
    np.testing.assert_array_equal(loaded.predict(X.to_dict(orient="records")), labels)
    np.testing.assert_array_equal(loaded.predict(X.to_numpy()), labels)


def test_export_onnx_regressor_matches_sklearn() -> None:
    X, y = load_diabetes(return_X_y=True)
    model = LinearRegression().fit(X, y)
    packaged = package_model(model, export_onnx=True)
    loaded = _load("sklearn", packaged.files, prefer="onnx")
    assert loaded.flavor is Flavor.ONNX
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-3, atol=1e-2)
    assert not loaded.has_predict_proba


def test_export_failure_names_export_onnx() -> None:
    class Custom(RegressorMixin, BaseEstimator):
        def fit(self, X, y):
            self.n_features_in_ = np.asarray(X).shape[1]
            return self

        def predict(self, X):
            return np.zeros(len(X))

    X, y = load_diabetes(return_X_y=True)
    with pytest.raises(InvalidInput) as info:
        package_model(Custom().fit(X, y), export_onnx=True)
    assert info.value.field == "export_onnx"
    assert "skl2onnx could not convert Custom" in info.value.message


def test_onnx_bytes_round_trip_and_session_signature(tmp_path) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    onnx_bytes = package_model(model, export_onnx=True).files["model.onnx"]

    for source in (onnx_bytes, _write(tmp_path / "rf.onnx", onnx_bytes)):
        packaged = package_model(source)
        assert packaged.flavor is Flavor.ONNX
        assert packaged.signature is not None
        assert packaged.signature.inputs[0].name == "X"
        assert packaged.signature.inputs[0].shape == [-1, X.shape[1]]
        assert [c.name for c in packaged.signature.outputs] == ["label", "probabilities"]
        loaded = _load(Flavor.ONNX, packaged.files)
        assert np.mean(loaded.predict(X) == model.predict(X)) > 0.98
        np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), atol=1e-4)
        assert loaded.predict(X[0]).shape == (1,)


def test_onnx_model_proto_with_sample_signature() -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(X.to_numpy(), y)
    proto = onnx.load_model_from_string(package_model(model, export_onnx=True).files["model.onnx"])
    packaged = package_model(proto, sample_input=X)
    assert packaged.signature is not None
    assert packaged.signature.input_names == list(X.columns)
    assert [c.name for c in packaged.signature.outputs] == ["prediction", "probabilities"]
    loaded = _load(Flavor.ONNX, packaged.files, packaged.signature)
    rows = X.to_dict(orient="records")
    assert np.mean(loaded.predict(rows) == model.predict(X.to_numpy())) > 0.98
    with pytest.raises(InvalidInput) as info:
        loaded.predict(X.drop(columns=["petal length (cm)"]))
    assert info.value.field == "petal length (cm)"


def test_onnx_file_claimed_as_sklearn_is_refused(tmp_path) -> None:
    _, _, packaged = _exported_iris()
    path = _write(tmp_path / "model.onnx", packaged.files["model.onnx"])
    with pytest.raises(InvalidInput) as info:
        package_model(path, flavor="sklearn")
    assert info.value.field == "flavor"
    assert "'model.onnx'" in info.value.message


def test_garbage_onnx_file_is_refused(tmp_path) -> None:
    path = _write(tmp_path / "model.onnx", b"\x00\x01 not onnx at all")
    with pytest.raises(InvalidInput) as info:
        package_model(path, flavor="onnx")
    assert info.value.field == "flavor"
    assert "is not a valid ONNX model" in info.value.message
    with pytest.raises(InvalidInput) as info:
        package_model(path)
    assert info.value.field == "model"


def test_validate_artifact() -> None:
    _, _, packaged = _exported_iris()
    validate_artifact(Flavor.SKLEARN, "model.skops", packaged.files["model.skops"])
    validate_artifact(Flavor.SKLEARN, "model.onnx", packaged.files["model.onnx"])
    validate_artifact(Flavor.ONNX, "model.onnx", packaged.files["model.onnx"])
    for flavor, name, content in [
        (Flavor.ONNX, "model.onnx", packaged.files["model.skops"]),
        (Flavor.SKLEARN, "model.skops", packaged.files["model.onnx"]),
        (Flavor.ONNX, "model.skops", packaged.files["model.skops"]),
        (Flavor.PYTHON, "model.pkl", b"not a pickle"),
    ]:
        with pytest.raises(InvalidInput) as info:
            validate_artifact(flavor, name, content)
        assert info.value.field == "artifact"
        assert f"'{name}'" in info.value.message


def test_onnx_per_column_inputs() -> None:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0.5, 0.1, 0.2, 0.9]})
    y = 2 * frame["a"] - frame["b"]
    from sklearn.compose import ColumnTransformer

    model = make_pipeline(
        ColumnTransformer([("num", "passthrough", ["a", "b"])]), LinearRegression()
    ).fit(frame, y)
    proto = to_onnx(
        model,
        initial_types=[("a", FloatTensorType([None, 1])), ("b", FloatTensorType([None, 1]))],
    )
    packaged = package_model(proto.SerializeToString())
    assert packaged.signature is not None
    assert packaged.signature.input_names == ["a", "b"]
    loaded = _load(Flavor.ONNX, packaged.files)
    np.testing.assert_allclose(loaded.predict(frame), model.predict(frame), atol=1e-4)
    np.testing.assert_allclose(
        loaded.predict({"a": 1.0, "b": 0.5}), model.predict(frame.head(1)), atol=1e-4
    )


def _write(path, content: bytes):
    path.write_bytes(content)
    return path
