import os

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from steward.domain.enums import Flavor
from steward.errors import InvalidInput, NotFound, PermissionDenied
from steward.flavors import load_model, package_model


def _iris_frame() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


def _fitted_pipeline() -> tuple[object, pd.DataFrame]:
    X, y = _iris_frame()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    return model, X


def _load(packaged, **kwargs):
    return load_model(
        packaged.flavor,
        packaged.files,
        signature=packaged.signature,
        registered_trusted=False,
        allow_trusted=False,
        **kwargs,
    )


def test_sklearn_round_trip_with_every_input_shape() -> None:
    model, X = _fitted_pipeline()
    packaged = package_model(model, sample_input=X)
    assert packaged.flavor is Flavor.SKLEARN
    assert packaged.primary_file == "model.skops"
    assert set(packaged.files) == {"model.skops"}
    loaded = _load(packaged)
    expected = model.predict(X)
    assert loaded.flavor is Flavor.SKLEARN
    np.testing.assert_array_equal(loaded.predict(X), expected)
    np.testing.assert_array_equal(loaded.predict(X.to_numpy()), expected)
    np.testing.assert_array_equal(loaded.predict(X.to_dict(orient="records")), expected)
    np.testing.assert_array_equal(loaded.predict(X.to_dict(orient="list")), expected)
    np.testing.assert_array_equal(loaded.predict(X.to_numpy().tolist()), expected)
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))
    # One row as a 1-D array and as a dict of scalars.
    np.testing.assert_array_equal(loaded.predict(X.to_numpy()[0]), expected[:1])
    np.testing.assert_array_equal(loaded.predict(X.iloc[0].to_dict()), expected[:1])


def test_sklearn_columns_are_reordered_by_signature() -> None:
    model, X = _fitted_pipeline()
    loaded = _load(package_model(model, sample_input=X))
    shuffled = X[list(reversed(X.columns))]
    np.testing.assert_array_equal(loaded.predict(shuffled), model.predict(X))


def test_sklearn_signature_from_dataframe() -> None:
    model, X = _fitted_pipeline()
    signature = package_model(model, sample_input=X).signature
    assert signature is not None
    assert signature.input_names == list(X.columns)
    assert {c.dtype for c in signature.inputs} == {"float64"}
    outputs = {c.name: c for c in signature.outputs}
    assert outputs["prediction"].dtype == "int64"
    assert outputs["prediction"].shape == [-1]
    assert outputs["probabilities"].shape == [-1, 3]
    assert outputs["probabilities"].dtype == "float64"


def test_sklearn_ndarray_model_gets_generic_names() -> None:
    X, y = load_diabetes(return_X_y=True)
    model = LinearRegression().fit(X, y)
    packaged = package_model(model, sample_input=X)
    assert packaged.signature is not None
    assert packaged.signature.input_names == [f"x{i}" for i in range(X.shape[1])]
    assert [c.name for c in packaged.signature.outputs] == ["prediction"]
    loaded = _load(packaged)
    np.testing.assert_allclose(loaded.predict(X), model.predict(X))
    rows = [dict(zip(packaged.signature.input_names, row, strict=True)) for row in X[:7]]
    np.testing.assert_allclose(loaded.predict(rows), model.predict(X[:7]))
    assert not loaded.has_predict_proba
    with pytest.raises(InvalidInput) as info:
        loaded.predict_proba(X)
    assert info.value.field == "predict_proba"


def test_sklearn_without_signature_uses_feature_names() -> None:
    model, X = _fitted_pipeline()
    packaged = package_model(model)
    assert packaged.signature is None
    loaded = _load(packaged)
    np.testing.assert_array_equal(loaded.predict(X.to_numpy()), model.predict(X))
    with pytest.raises(InvalidInput) as info:
        loaded.predict(X.drop(columns=["petal width (cm)"]))
    assert info.value.field == "petal width (cm)"


def test_missing_column_names_the_field() -> None:
    model, X = _fitted_pipeline()
    loaded = _load(package_model(model, sample_input=X))
    rows = X.drop(columns=["sepal length (cm)"]).to_dict(orient="records")
    with pytest.raises(InvalidInput) as info:
        loaded.predict(rows)
    assert info.value.field == "sepal length (cm)"
    assert "missing column 'sepal length (cm)'" in info.value.message


def test_uncastable_value_names_the_column() -> None:
    model, X = _fitted_pipeline()
    loaded = _load(package_model(model, sample_input=X))
    rows = X.head(2).to_dict(orient="records")
    rows[1]["sepal width (cm)"] = "wide"
    with pytest.raises(InvalidInput) as info:
        loaded.predict(rows)
    assert info.value.field == "sepal width (cm)"


def test_wrong_width_matrix_is_refused() -> None:
    model, X = _fitted_pipeline()
    loaded = _load(package_model(model, sample_input=X))
    with pytest.raises(InvalidInput) as info:
        loaded.predict(X.to_numpy()[:, :3])
    assert info.value.field == "data"


def test_unknown_input_type_is_refused() -> None:
    model, X = _fitted_pipeline()
    loaded = _load(package_model(model, sample_input=X))
    with pytest.raises(InvalidInput) as info:
        loaded.predict(42)
    assert info.value.field == "data"


def test_skops_with_disallowed_type_is_refused() -> None:
    # os.system would run shell commands at predict time; its type is outside the allowlist.
    dangerous = make_pipeline(FunctionTransformer(os.system), LogisticRegression())
    content = sio.dumps(dangerous)
    with pytest.raises(PermissionDenied) as info:
        load_model(
            Flavor.SKLEARN,
            {"model.skops": content},
            signature=None,
            registered_trusted=True,
            allow_trusted=True,
        )
    assert "posix.system" in info.value.message or "nt.system" in info.value.message
    assert info.value.details["types"]


def test_allowed_numpy_function_loads() -> None:
    X, y = load_iris(return_X_y=True)
    model = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=500))
    model.fit(X, y)
    loaded = _load(package_model(model))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_skops_path_is_packaged_and_validated(tmp_path) -> None:
    model, X = _fitted_pipeline()
    path = tmp_path / "iris.skops"
    path.write_bytes(sio.dumps(model))
    packaged = package_model(path, sample_input=X)
    assert packaged.flavor is Flavor.SKLEARN
    assert packaged.signature is not None
    np.testing.assert_array_equal(_load(packaged).predict(X), model.predict(X))


def test_skops_file_claimed_as_onnx_is_refused(tmp_path) -> None:
    model, _ = _fitted_pipeline()
    path = tmp_path / "model.skops"
    path.write_bytes(sio.dumps(model))
    with pytest.raises(InvalidInput) as info:
        package_model(path, flavor="onnx")
    assert info.value.field == "flavor"
    assert "'model.skops'" in info.value.message
    assert "flavor='onnx'" in info.value.message


def test_non_skops_file_claimed_as_sklearn_is_refused(tmp_path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"definitely not a zip")
    with pytest.raises(InvalidInput) as info:
        package_model(path, flavor=Flavor.SKLEARN)
    assert info.value.field == "flavor"
    assert "model.bin" in info.value.message


def test_estimator_claimed_as_onnx_suggests_export() -> None:
    model, _ = _fitted_pipeline()
    with pytest.raises(InvalidInput) as info:
        package_model(model, flavor="onnx")
    assert info.value.field == "flavor"
    assert "export_onnx=True" in info.value.message


def test_unknown_flavor_string() -> None:
    model, _ = _fitted_pipeline()
    with pytest.raises(InvalidInput) as info:
        package_model(model, flavor="tensorflow")
    assert info.value.field == "flavor"


def test_missing_primary_file_is_not_found() -> None:
    with pytest.raises(NotFound):
        load_model(
            Flavor.SKLEARN, {}, signature=None, registered_trusted=False, allow_trusted=False
        )


def test_callable_file_source() -> None:
    model, X = _fitted_pipeline()
    packaged = package_model(model, sample_input=X)
    loaded = load_model(
        "sklearn",
        packaged.files.__getitem__,
        signature=packaged.signature,
        registered_trusted=False,
        allow_trusted=False,
        prefer=Flavor.ONNX,  # no ONNX export: falls back to skops
    )
    assert loaded.flavor is Flavor.SKLEARN
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_signature_dtypes_for_mixed_frame() -> None:
    frame = pd.DataFrame(
        {
            "age": np.array([30, 40, 50], dtype="int32"),
            "income": [1.0, 2.5, 3.0],
            "city": ["a", "b", "c"],
            "member": [True, False, True],
        }
    )

    model = make_pipeline(
        FunctionTransformer(lambda df: df[["age", "income"]].to_numpy()), LinearRegression()
    )
    model.fit(frame, [1.0, 2.0, 3.0])
    from steward.flavors._sklearn import signature_for

    signature = signature_for(model, frame)
    dtypes = {c.name: c.dtype for c in signature.inputs}
    assert dtypes == {"age": "int32", "income": "float64", "city": "string", "member": "bool"}
    assert signature.outputs[0].dtype == "float64"


# -- scikit-learn's own finiteness check, skipped only where it repeats Steward's ------------


def _array_classifier() -> tuple[LogisticRegression, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=500).fit(X, y), X


def _assume_finite_calls(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record each model call the sklearn flavor makes with scikit-learn's finiteness check
    switched off."""
    from sklearn import set_config

    from steward.flavors import _sklearn

    calls: list[bool] = []

    def recording(**kwargs: bool) -> None:
        if kwargs["assume_finite"]:
            calls.append(True)
        set_config(**kwargs)

    monkeypatch.setattr(_sklearn, "set_config", recording)
    return calls


def test_a_plain_estimator_on_finite_values_answers_as_scikit_learn_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model, X = _array_classifier()
    loaded = _load(package_model(model, sample_input=X[:5]))
    calls = _assume_finite_calls(monkeypatch)
    labels, proba = loaded.predict_with_proba(X[:30])
    assert np.array_equal(labels, model.predict(X[:30]))
    assert np.array_equal(proba, model.predict_proba(X[:30]))
    assert np.array_equal(loaded.predict(X[:3]), model.predict(X[:3]))
    assert calls == [True, True]  # its own check skipped: the values were all finite
    from sklearn import get_config

    assert get_config()["assume_finite"] is False  # and put back after each call


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_values_that_are_not_finite_still_meet_scikit_learns_check(
    monkeypatch: pytest.MonkeyPatch, bad: float
) -> None:
    model, X = _array_classifier()
    loaded = _load(package_model(model, sample_input=X[:5]))
    calls = _assume_finite_calls(monkeypatch)
    row = X[:1].copy()
    row[0, 2] = bad
    with pytest.raises(ValueError, match=r"infinity|NaN"):
        loaded.predict_with_proba(row)
    assert calls == []


def test_a_pipeline_keeps_every_steps_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step can make a non-finite value from finite ones (log of a negative number): the
    next step's check must still refuse it rather than predict from NaN."""
    X, y = load_iris(return_X_y=True)
    model = make_pipeline(FunctionTransformer(np.log), LogisticRegression(max_iter=500))
    model.fit(X + 1, y)
    loaded = _load(package_model(model, sample_input=X[:5] + 1))
    calls = _assume_finite_calls(monkeypatch)
    row = X[:1] + 1
    row[0, 0] = -5.0  # finite, but log(-5) is NaN inside the pipeline
    with np.errstate(invalid="ignore"), pytest.raises(ValueError, match="NaN"):
        loaded.predict_with_proba(row)
    assert calls == []
