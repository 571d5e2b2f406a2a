"""``LoadedModel.accepts_missing``: whether a model takes NaN, known at load time."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from steward.domain.enums import Flavor
from steward.flavors import LoadedModel, load_model, package_model
from steward.flavors._sklearn import accepts_missing

RNG = np.random.default_rng(5)
X = pd.DataFrame(RNG.normal(size=(60, 3)), columns=["a", "b", "c"])
Y = (X["a"] + X["b"] > 0).astype(int)


def _loaded(model: Any, prefer: Flavor | None = None) -> LoadedModel:
    packaged = package_model(model.fit(X, Y), export_onnx=prefer is Flavor.ONNX, sample_input=X)
    return load_model(
        packaged.flavor,
        packaged.files,
        signature=packaged.signature,
        registered_trusted=False,
        allow_trusted=False,
        prefer=prefer,
    )


@pytest.mark.parametrize(
    ("model", "accepts"),
    [
        (LogisticRegression(), False),
        (HistGradientBoostingClassifier(max_iter=5), True),
        (RandomForestClassifier(n_estimators=3), True),
        # A pipeline's own tags say False whatever it holds: its steps decide.
        (make_pipeline(StandardScaler(), LogisticRegression()), False),
        (make_pipeline(SimpleImputer(), LogisticRegression()), True),
        (make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=5)), True),
        (GridSearchCV(HistGradientBoostingClassifier(max_iter=5), {}, cv=2), True),
        (GridSearchCV(LogisticRegression(), {}, cv=2), False),
        # Which columns reach which estimator is not worked out: unknown, never refused.
        (
            make_pipeline(
                ColumnTransformer([("s", SimpleImputer(), ["a"])], remainder="passthrough"),
                LogisticRegression(),
            ),
            None,
        ),
    ],
)
def test_scikit_learn_tags_decide(model: Any, accepts: bool | None) -> None:
    loaded = _loaded(model)
    assert loaded.accepts_missing is accepts
    if accepts:  # the answer is true: predict takes NaN
        row = X.head(2).copy()
        row.iloc[0, 1] = np.nan
        assert len(loaded.predict(row)) == 2
    elif accepts is False:
        row = X.head(1).copy()
        row.iloc[0, 1] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            loaded.predict(row)


def test_a_function_transformer_step_passes_the_question_on() -> None:
    model = make_pipeline(FunctionTransformer(), LogisticRegression())
    assert _loaded(model).accepts_missing is False


def test_passthrough_steps_are_skipped() -> None:
    steps = make_pipeline("passthrough", SimpleImputer(), LogisticRegression())
    assert accepts_missing(steps) is True
    assert accepts_missing(make_pipeline("passthrough", LogisticRegression())) is False


def test_onnx_is_unknown() -> None:
    loaded = _loaded(make_pipeline(StandardScaler(), LogisticRegression()), prefer=Flavor.ONNX)
    assert loaded.flavor is Flavor.ONNX
    assert loaded.accepts_missing is None
