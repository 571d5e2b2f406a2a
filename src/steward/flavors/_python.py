"""Arbitrary Python objects, pickled: loaded only when both registration and loader trust them."""

from __future__ import annotations

import pickle
import pickletools
from typing import Any

import numpy as np

from steward.domain.signature import Signature
from steward.errors import InvalidInput, PermissionDenied
from steward.flavors._inputs import to_frame
from steward.flavors._signature import infer_signature


def dump(model: object) -> bytes:
    try:
        return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise InvalidInput(
            f"The model of type {type(model).__name__} cannot be pickled: {exc}. "
            "Define its class at module level (not inside a function) so it can be saved.",
            field="model",
        ) from exc


def check(content: bytes) -> str | None:
    """Why ``content`` is not a pickle, or None; walks the opcodes without executing them."""
    try:
        for _ in pickletools.genops(content):
            pass
    except (ValueError, EOFError) as exc:
        return f"not a pickle stream ({exc})"
    return None


def ensure_trusted(*, registered_trusted: bool, allow_trusted: bool) -> None:
    """Unpickling runs code from the file; refuse unless the registrant and this side agree."""
    if not registered_trusted:
        raise PermissionDenied(
            "This python-flavor model was not registered as trusted, so Steward will not "
            "unpickle it. Register it again with trusted=True if you trust its source.",
            details={"refused_by": "registration"},
        )
    if not allow_trusted:
        raise PermissionDenied(
            "This server or client does not load trusted (pickled) python-flavor models. "
            "Pass allow_trusted=True, or set STEWARD_ALLOW_TRUSTED_MODELS=true, to allow it.",
            details={"refused_by": "loader"},
        )


def load(content: bytes, *, registered_trusted: bool, allow_trusted: bool) -> Any:
    ensure_trusted(registered_trusted=registered_trusted, allow_trusted=allow_trusted)
    return pickle.loads(content)  # both sides opted in above


class PythonPredictor:
    """Passes a DataFrame, like MLflow's pyfunc, so models can select columns by name.

    Estimators fitted on plain arrays (``n_features_in_`` without ``feature_names_in_``) get
    an array instead, as they would warn about unexpected feature names.
    """

    def __init__(self, model: Any, signature: Signature | None) -> None:
        self._model = model
        self._specs = signature.inputs if signature and signature.inputs else None
        self._names = [c.name for c in self._specs] if self._specs else None
        self._wants_array = hasattr(model, "n_features_in_") and not hasattr(
            model, "feature_names_in_"
        )

    def _input(self, data: object) -> Any:
        frame = to_frame(data, self._names, self._specs)
        return frame.to_numpy() if self._wants_array else frame

    @property
    def classes(self) -> list[Any] | None:
        """The class labels in the order of predict_proba's columns, when the model says."""
        found = getattr(self._model, "classes_", None)
        return None if found is None else list(found)

    @property
    def has_proba(self) -> bool:
        return callable(getattr(self._model, "predict_proba", None))

    def predict(self, data: object) -> np.ndarray[Any, Any]:
        return np.asarray(self._model.predict(self._input(data)))

    def predict_proba(self, data: object) -> np.ndarray[Any, Any]:
        return np.asarray(self._model.predict_proba(self._input(data)))

    def predict_with_proba(
        self, data: object
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
        x = self._input(data)
        labels = np.asarray(self._model.predict(x))
        return labels, np.asarray(self._model.predict_proba(x)) if self.has_proba else None


def signature_for(model: object, sample: object) -> Signature:
    names = getattr(model, "feature_names_in_", None)
    feature_names = [str(n) for n in names] if names is not None else None
    return infer_signature(sample, feature_names, lambda sig: PythonPredictor(model, sig))
