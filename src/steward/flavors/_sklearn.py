"""scikit-learn models stored as skops files, loaded without running untrusted code."""

from __future__ import annotations

import zipfile
from typing import Any

import numpy as np
import skops.io as sio
from sklearn import get_config, set_config
from sklearn.base import BaseEstimator, is_classifier
from sklearn.utils import get_tags

from steward.domain.signature import Signature
from steward.errors import InvalidInput, PermissionDenied
from steward.flavors._inputs import numeric_matrix, to_frame, uniform_dtype
from steward.flavors._signature import infer_signature

# Types from these packages are data and estimators, not code an attacker chooses.
ALLOWED_MODULES = frozenset({"sklearn", "numpy", "scipy", "builtins", "collections"})

# Callables inside allowed modules that could still reach the file system or run code if an
# estimator (say a FunctionTransformer) referenced them; refused even though their module passes.
DENIED_TYPES = frozenset(
    {
        "builtins.eval", "builtins.exec", "builtins.compile", "builtins.__import__",
        "builtins.open", "builtins.getattr", "builtins.setattr", "builtins.delattr",
        "builtins.globals", "builtins.locals", "builtins.vars", "builtins.input",
        "builtins.breakpoint", "builtins.exit", "builtins.quit", "builtins.help",
        "numpy.load", "numpy.save", "numpy.savez", "numpy.savetxt", "numpy.fromfile",
        "numpy.memmap", "numpy.loadtxt", "numpy.genfromtxt",
    }
)  # fmt: skip


# Classifiers whose ``predict`` is, by construction, the class of the largest
# ``predict_proba`` column (argmax of the same decision values, or of the probabilities
# themselves). For them the gateway makes one model call per request instead of two. The one
# divergence: a binary LogisticRegression or MLPClassifier whose decision value is within
# ~1e-16 of 0 has a probability that rounds to exactly 0.5, where argmax picks the first class.
_PROBA_DECIDES = frozenset(
    {
        "LogisticRegression", "LogisticRegressionCV", "RandomForestClassifier",
        "ExtraTreesClassifier", "DecisionTreeClassifier", "ExtraTreeClassifier",
        "GradientBoostingClassifier", "HistGradientBoostingClassifier", "GaussianNB",
        "MultinomialNB", "BernoulliNB", "ComplementNB", "CategoricalNB", "MLPClassifier",
        "CalibratedClassifierCV", "LinearDiscriminantAnalysis", "QuadraticDiscriminantAnalysis",
    }
)  # fmt: skip


def is_estimator(model: object) -> bool:
    return isinstance(model, BaseEstimator)


def dump(model: object) -> bytes:
    content: bytes = sio.dumps(model)
    return content


def check(content: bytes) -> str | None:
    """Why ``content`` is not a readable skops file, or None when it is."""
    try:
        sio.get_untrusted_types(data=content)
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return None


def _is_allowed(type_name: str) -> bool:
    return type_name.split(".", 1)[0] in ALLOWED_MODULES and type_name not in DENIED_TYPES


def accepted_types(content: bytes, name: str) -> list[str]:
    """The file's non-default types, all of them allowlisted; PermissionDenied otherwise."""
    untrusted = sio.get_untrusted_types(data=content)
    refused = sorted(t for t in untrusted if not _is_allowed(t))
    if refused:
        allowed = ", ".join(sorted(ALLOWED_MODULES))
        raise PermissionDenied(
            f"The skops file '{name}' contains types outside the allowlist ({allowed}): "
            f"{', '.join(refused)}. Steward does not load them because loading could run "
            "their code. Rebuild the model from standard scikit-learn components, or "
            "register it with flavor='python' and trusted=True.",
            details={"types": refused},
        )
    return list(untrusted)


def load(content: bytes, name: str) -> Any:
    trusted = accepted_types(content, name)
    try:
        return sio.loads(content, trusted=trusted)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
        raise InvalidInput(
            f"The file '{name}' is not a valid skops file: {exc}. Register the model again.",
            field="artifact",
        ) from exc


def feature_names(model: object) -> list[str] | None:
    names = getattr(model, "feature_names_in_", None)
    return [str(n) for n in names] if names is not None else None


def n_features(model: object, sample: object | None) -> int | None:
    count = getattr(model, "n_features_in_", None)
    if count is not None:
        return int(count)
    if sample is not None:
        return int(to_frame(sample).shape[1])
    return None


class SklearnPredictor:
    """Feeds an estimator a DataFrame when it was fitted on named columns, else an array."""

    def __init__(self, model: Any, signature: Signature | None) -> None:
        self._model = model
        self._names = feature_names(model)
        self._specs = signature.inputs if signature and signature.inputs else None
        if self._specs is not None:
            self._columns: list[str] | None = [c.name for c in self._specs]
        else:
            self._columns = self._names
        self._matrix_dtype = uniform_dtype(self._specs) if self._names is None else None
        # Worked out here, at load time (in a worker thread): the gateway reads it per request.
        self._accepts_missing = accepts_missing(model)
        self._checks_only_its_input = _checks_only_its_input(model)

    @property
    def classes(self) -> list[Any] | None:
        """The class labels in the order of predict_proba's columns, when the model says."""
        found = getattr(self._model, "classes_", None)
        return None if found is None else list(found)

    @property
    def has_proba(self) -> bool:
        return is_classifier(self._model) and hasattr(self._model, "predict_proba")

    @property
    def accepts_missing(self) -> bool | None:
        """Whether ``predict`` takes NaN; None when the estimator does not say."""
        return self._accepts_missing

    def _input(self, data: object) -> Any:
        if self._matrix_dtype is not None and self._columns is not None:
            matrix = numeric_matrix(data, self._columns, self._matrix_dtype)
            if matrix is not None:
                return matrix
        frame = to_frame(data, self._columns, self._specs)
        if self._names is not None:
            return frame
        return frame.to_numpy()  # fitted without names: a frame would trigger a warning

    def predict(self, data: object) -> np.ndarray[Any, Any]:
        return np.asarray(self._call(self._model.predict, self._input(data)))

    def predict_proba(self, data: object) -> np.ndarray[Any, Any]:
        return np.asarray(self._call(self._model.predict_proba, self._input(data)))

    def _call(self, method: Any, x: Any) -> Any:
        """``method(x)``, without scikit-learn's own finiteness check when it could only
        repeat the one made here.

        That check (and the input sniffing around it) cost ~12% of the throughput of a served
        one-row request (measured under load, logistic regression). Only for an estimator that
        validates nothing but its input (not a Pipeline or a meta-estimator, whose inner steps
        check what the previous step made) and a numeric matrix whose values were all found
        finite just now; anything else gets scikit-learn's checks and its errors unchanged.
        """
        if (
            self._checks_only_its_input
            and isinstance(x, np.ndarray)
            and x.dtype.kind == "f"
            and np.isfinite(x).all()
        ):
            # set_config rather than config_context: the same thread-local switch for a fifth
            # of the cost (0.5 against 2.5 µs, measured), which mattered here.
            previous = get_config()["assume_finite"]
            set_config(assume_finite=True)
            try:
                return method(x)
            finally:
                set_config(assume_finite=previous)
        return method(x)

    def predict_with_proba(
        self, data: object
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
        """Labels and probabilities from one input conversion, and one model call when the
        estimator's labels are the argmax of its probabilities."""
        # One call of `_call` for both methods: one finiteness check and one switch.
        found: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None] = self._call(
            self._labels_and_proba, self._input(data)
        )
        return found

    def _labels_and_proba(self, x: Any) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
        if not self.has_proba:
            return np.asarray(self._model.predict(x)), None
        proba = np.asarray(self._model.predict_proba(x))
        if _final_step_name(self._model) in _PROBA_DECIDES and proba.ndim == 2:
            return np.asarray(self._model.classes_).take(proba.argmax(axis=1)), proba
        return np.asarray(self._model.predict(x)), proba


def accepts_missing(model: object) -> bool | None:
    """Whether ``model.predict`` takes NaN in its input, from scikit-learn's ``allow_nan`` input
    tag; None when unknown.

    A meta-estimator's own tags ignore what it wraps (a Pipeline, a search or a calibrated
    classifier says False even around an estimator that takes NaN), so a Pipeline is walked
    step by step, a fitted search asks its best estimator, and other meta-estimators are
    unknown rather than wrongly refused.
    """
    steps = getattr(model, "steps", None)
    if isinstance(steps, list):
        for _, step in steps:
            if step is None or step == "passthrough":
                continue
            verdict = accepts_missing(step)
            if verdict is not True:  # refuses the NaN it is given, or cannot tell
                return verdict
            if type(step).__module__.startswith("sklearn.impute"):
                return True  # the steps after an imputer never see NaN
        return True  # every step takes NaN (and passes it on)
    best = getattr(model, "best_estimator_", None)
    if best is not None:
        return accepts_missing(best)
    if not isinstance(model, BaseEstimator):
        return None
    try:
        if _wraps_estimators(model):
            return None
        return bool(get_tags(model).input_tags.allow_nan)
    except Exception:  # a third-party estimator whose params or tags cannot be read: unknown,
        return None  # and never a reason for a version not to load


def _checks_only_its_input(model: object) -> bool:
    """Whether the estimator's finiteness check is only of the input it is given: a plain
    estimator, not a Pipeline nor an estimator wrapping others."""
    if not isinstance(model, BaseEstimator) or hasattr(model, "steps"):
        return False
    try:
        return not _wraps_estimators(model)
    except Exception:  # params that cannot be read: keep scikit-learn's checks
        return False


def _wraps_estimators(model: BaseEstimator) -> bool:
    def holds(value: object) -> bool:
        if isinstance(value, BaseEstimator):
            return True
        return isinstance(value, list | tuple) and any(holds(v) for v in value)

    return any(holds(v) for v in model.get_params(deep=False).values())


def _final_step_name(model: object) -> str:
    """The class name of the estimator that decides (a Pipeline's last step)."""
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and steps:
        return _final_step_name(steps[-1][1])
    return type(model).__name__


def signature_for(model: object, sample: object) -> Signature:
    return infer_signature(sample, feature_names(model), lambda sig: SklearnPredictor(model, sig))
