import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from steward.domain.enums import Flavor
from steward.errors import InvalidInput, PermissionDenied
from steward.flavors import load_model, package_model


class SumModel:
    """A plain Python model: the weighted sum of its input columns."""

    def __init__(self, weights: list[float]) -> None:
        self.weights = np.asarray(weights)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(frame, dtype=float) @ self.weights


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [10.0, 20.0, 30.0]})


def test_python_flavor_needs_trusted_to_package() -> None:
    with pytest.raises(InvalidInput) as info:
        package_model(SumModel([1.0, 2.0]))
    assert info.value.field == "trusted"
    assert "pickle" in info.value.message


@pytest.mark.parametrize(
    ("registered", "allowed", "refused_by"),
    [(False, True, "registration"), (True, False, "loader"), (False, False, "registration")],
)
def test_python_flavor_refused_unless_both_sides_trust(registered, allowed, refused_by) -> None:
    packaged = package_model(SumModel([1.0, 2.0]), trusted=True)

    def never_read(name: str) -> bytes:
        raise AssertionError("the pickle must not even be fetched")

    for files in (packaged.files, never_read):
        with pytest.raises(PermissionDenied) as info:
            load_model(
                Flavor.PYTHON,
                files,
                signature=None,
                registered_trusted=registered,
                allow_trusted=allowed,
            )
        assert info.value.details["refused_by"] == refused_by
    if refused_by == "loader":
        assert "STEWARD_ALLOW_TRUSTED_MODELS" in info.value.message


def test_python_flavor_round_trip_when_both_trust() -> None:
    model = SumModel([1.0, 2.0])
    frame = _frame()
    packaged = package_model(model, trusted=True, sample_input=frame)
    assert packaged.flavor is Flavor.PYTHON
    assert set(packaged.files) == {"model.pkl"}
    assert packaged.signature is not None
    assert packaged.signature.input_names == ["a", "b"]
    loaded = load_model(
        Flavor.PYTHON,
        packaged.files,
        signature=packaged.signature,
        registered_trusted=True,
        allow_trusted=True,
    )
    expected = model.predict(frame)
    np.testing.assert_allclose(loaded.predict(frame), expected)
    np.testing.assert_allclose(loaded.predict(frame.to_numpy()), expected)
    np.testing.assert_allclose(loaded.predict(frame.to_dict(orient="records")), expected)
    # Columns are put in signature order before the model sees them.
    np.testing.assert_allclose(loaded.predict(frame[["b", "a"]]), expected)


def test_sklearn_estimator_may_be_pickled_on_purpose() -> None:
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    packaged = package_model(model, flavor="python", trusted=True, sample_input=X)
    assert packaged.flavor is Flavor.PYTHON
    loaded = load_model(
        "python",
        packaged.files,
        signature=packaged.signature,
        registered_trusted=True,
        allow_trusted=True,
    )
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))


def test_python_object_claimed_as_sklearn_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        package_model(SumModel([1.0]), flavor="sklearn")
    assert info.value.field == "flavor"


def test_object_without_predict_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        package_model(object())
    assert info.value.field == "model"


def test_export_onnx_refused_for_python_flavor() -> None:
    with pytest.raises(InvalidInput) as info:
        package_model(SumModel([1.0]), trusted=True, export_onnx=True)
    assert info.value.field == "export_onnx"
