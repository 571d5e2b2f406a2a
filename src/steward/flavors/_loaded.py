"""The loaded-model facade: one interface over every flavor's predictor.

This module stays free of numpy at runtime (types only) so that ``steward.flavors`` can
re-export ``LoadedModel`` without paying for numpy on import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from steward.errors import InvalidInput

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from steward.domain.enums import Flavor
    from steward.domain.signature import Signature


class Predictor(Protocol):
    """What each flavor backend provides; it owns converting ``data`` to its model's input."""

    @property
    def has_proba(self) -> bool: ...

    def predict(self, data: object) -> NDArray[Any]: ...

    def predict_proba(self, data: object) -> NDArray[Any]: ...

    def predict_with_proba(self, data: object) -> tuple[NDArray[Any], NDArray[Any] | None]: ...


class LoadedModel:
    """A model ready to predict, whatever its flavor.

    ``data`` may be a pandas DataFrame, a numpy array (1-D is one row), a list of dicts (rows),
    a dict of columns (or of scalars: one row) or a list of lists; columns follow the
    signature's input order when the signature is known.
    """

    def __init__(self, flavor: Flavor, signature: Signature | None, predictor: Predictor) -> None:
        self._flavor = flavor
        self._signature = signature
        self._predictor = predictor

    @property
    def flavor(self) -> Flavor:
        """The flavor actually running (``onnx`` when an sklearn version was loaded as ONNX)."""
        return self._flavor

    @property
    def signature(self) -> Signature | None:
        return self._signature

    @property
    def classes(self) -> list[Any] | None:
        """Class labels in predict_proba's column order, when the model exposes them
        (scikit-learn's ``classes_``); None for ONNX and regressors."""
        found: list[Any] | None = getattr(self._predictor, "classes", None)
        return found

    @property
    def accepts_missing(self) -> bool | None:
        """Whether the model takes missing values (NaN) in its inputs: False when it is known
        to refuse them (a scikit-learn estimator whose tags say so, which would raise deep
        inside ``predict``), None when unknown (ONNX, Python models)."""
        found: bool | None = getattr(self._predictor, "accepts_missing", None)
        return found

    @property
    def has_predict_proba(self) -> bool:
        return self._predictor.has_proba

    def predict(self, data: object) -> NDArray[Any]:
        return self._predictor.predict(data)

    def predict_proba(self, data: object) -> NDArray[Any]:
        if not self._predictor.has_proba:
            raise InvalidInput(
                f"This {self._flavor.value} model does not provide probabilities; "
                "call predict() instead.",
                field="predict_proba",
            )
        return self._predictor.predict_proba(data)

    def predict_with_proba(self, data: object) -> tuple[NDArray[Any], NDArray[Any] | None]:
        """``predict`` and, when the model has them, ``predict_proba`` in one pass: the input
        converted once and, where the flavor allows, one model call (the serving hot path)."""
        return self._predictor.predict_with_proba(data)

    def __repr__(self) -> str:
        inputs = self._signature.input_names if self._signature else "unknown"
        return f"LoadedModel(flavor={self._flavor.value!r}, inputs={inputs})"
