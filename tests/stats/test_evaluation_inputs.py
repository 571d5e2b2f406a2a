"""Invalid input raises InvalidInput naming the argument and what to do; nothing yields NaN."""

import numpy as np
import pytest

from steward.errors import InvalidInput
from steward.stats.evaluation import evaluate_classifier, evaluate_regressor

Y = np.array([0, 1, 0, 1, 1, 0])
P = np.array([0.2, 0.8, 0.4, 0.6, 0.9, 0.1])


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"y_pred": Y[:5]}, "y_pred", "has 5 rows but 'y_true' has 6"),
        ({"scores": P[:4]}, "scores", "must have shape (6,) or (6, 2)"),
        ({"scores": np.ones((6, 3)) / 3}, "scores", "must have shape"),
        ({"y_true": np.array([0, 1, 0, np.nan, 1, 0])}, "y_true", "NaN or infinite"),
        ({"y_true": np.array([0, 1, None, 1, 1, 0], dtype=object)}, "y_true", "missing"),
        ({"y_pred": np.array([0, 1, 0, np.inf, 1, 0])}, "y_pred", "NaN or infinite"),
        ({"scores": np.array([0.2, np.nan, 0.4, 0.6, 0.9, 0.1])}, "scores", "NaN"),
        ({"scores": P * 2}, "scores", "not decision scores or logits"),
        ({"scores": P - 0.5}, "scores", "probabilities in [0, 1]"),
        ({"scores": np.column_stack([P, P])}, "scores", "must sum to 1"),
        ({"positive_class": 2}, "positive_class", "not one of the classes"),
        ({"classes": [0, 2]}, "y_true", "holds 1, which is not one of the classes"),
        ({"classes": [0, 1, 1]}, "classes", "lists a class twice"),
        ({"y_true": Y[:1], "y_pred": Y[:1], "scores": P[:1]}, "y_true", "At least 2 rows"),
        ({"y_true": np.zeros(6), "y_pred": np.zeros(6), "scores": None}, "classes",
         "Only one class"),
        ({"y_pred": np.array(["a", "b", "a", "b", "a", "b"])}, "classes", "cannot be ordered"),
        ({"y_true": np.array([[0, 1]] * 6)}, "y_true", "must be 1-D"),
        ({"groups": {"sex": ["F", "M"]}}, "groups.sex", "has 2 rows"),
        ({"groups": ["F", "M", "F", "M", "F", "M"]}, "groups", "must map a column name"),
        ({"groups": {"g": [[1], [2], [1], [2], [1], [2]], "h": [1, 2]}}, "groups.h", "rows"),
        ({"confidence": 1.5}, "confidence", "between 0 and 1"),
        ({"confidence": "high"}, "confidence", "a number"),
        ({"resamples": 5}, "resamples", "0 (no intervals) or an integer from 10"),
        ({"resamples": 2.5}, "resamples", "integer"),
        ({"seed": -1}, "seed", "non-negative"),
        ({"reliability_bins": 0}, "reliability_bins", "from 1 to 1000"),
    ],
)  # fmt: skip
def test_invalid_classifier_input_names_the_argument(kwargs, field, words) -> None:
    call = {"y_true": Y, "y_pred": Y, "scores": P, **kwargs}
    with pytest.raises(InvalidInput) as info:
        evaluate_classifier(call.pop("y_true"), call.pop("y_pred"), call.pop("scores"), **call)
    assert info.value.field == field
    assert info.value.details["field"] == field
    assert words in info.value.message


def test_positive_class_is_for_binary_only() -> None:
    y = np.array([0, 1, 2, 0, 1, 2])
    with pytest.raises(InvalidInput) as info:
        evaluate_classifier(y, y, positive_class=1)
    assert info.value.field == "positive_class"


def test_multiclass_needs_one_probability_column_per_class() -> None:
    y = np.array([0, 1, 2, 0, 1, 2])
    with pytest.raises(InvalidInput) as info:
        evaluate_classifier(y, y, np.full(6, 0.5))
    assert info.value.field == "scores"
    assert "(6, 3)" in info.value.message


def test_unhashable_labels_are_refused() -> None:
    y = np.empty(3, dtype=object)
    y[:] = [[1], [2], [1]]
    with pytest.raises(InvalidInput) as info:
        evaluate_classifier(y, np.array([0, 1, 0]), classes=[0, 1])
    assert info.value.field == "y_true"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"y_pred": [1.0, 2.0]}, "y_pred"),
        ({"y_true": [1.0, np.nan, 3.0]}, "y_true"),
        ({"y_pred": [1.0, np.inf, 3.0]}, "y_pred"),
        ({"y_true": ["a", "b", "c"]}, "y_true"),
        ({"y_true": [1.0], "y_pred": [1.0]}, "y_true"),
        ({"resamples": -1}, "resamples"),
        ({"confidence": 0.0}, "confidence"),
    ],
)
def test_invalid_regressor_input_names_the_argument(kwargs, field) -> None:
    call = {"y_true": [1.0, 2.0, 3.0], "y_pred": [1.5, 2.0, 2.5], **kwargs}
    with pytest.raises(InvalidInput) as info:
        evaluate_regressor(call.pop("y_true"), call.pop("y_pred"), **call)
    assert info.value.field == field


def test_invalid_input_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="At least 2 rows"):
        evaluate_regressor([1.0], [1.0])
