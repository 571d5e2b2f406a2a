"""Work out what ``package_model`` was given, without importing any ML library.

An object can only be a scikit-learn estimator or an ``onnx.ModelProto`` if that library is
already imported, so checking ``sys.modules`` first keeps detection free for other inputs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from steward.domain.enums import Flavor
from steward.errors import InvalidInput

SUFFIX_FLAVORS = {
    ".skops": Flavor.SKLEARN,
    ".onnx": Flavor.ONNX,
    ".pkl": Flavor.PYTHON,
    ".pickle": Flavor.PYTHON,
}

_ACCEPTED = (
    "a scikit-learn estimator, an ONNX model (bytes, a .onnx path or an onnx.ModelProto), "
    "a .skops file, or an object with a predict method (flavor='python', trusted=True)"
)


@dataclass(frozen=True)
class Source:
    """A model to package: either serialized ``content`` or a live ``obj``."""

    flavor: Flavor
    name: str  # a file name, or a type name for live objects
    content: bytes | None = None
    obj: object | None = None
    from_path: bool = False

    @property
    def label(self) -> str:
        """How messages refer to the source: "The file 'model.onnx'" or "The given bytes"."""
        return f"The file '{self.name}'" if self.from_path else f"The given {self.name}"


def as_flavor(value: Flavor | str | None) -> Flavor | None:
    if value is None or isinstance(value, Flavor):
        return value
    try:
        return Flavor(str(value).lower())
    except ValueError:
        known = ", ".join(f.value for f in Flavor)
        raise InvalidInput(
            f"Unknown flavor '{value}'; use one of: {known}.", field="flavor"
        ) from None


def sniff(content: bytes) -> Flavor:
    """Guess a flavor from magic bytes: skops files are zips, pickles start with PROTO."""
    if content.startswith(b"PK\x03\x04"):
        return Flavor.SKLEARN
    if content[:1] == b"\x80":
        return Flavor.PYTHON
    return Flavor.ONNX


def detect(model: object) -> Source:
    if isinstance(model, (str, PathLike)):
        return _from_path(Path(model))
    if isinstance(model, (bytes, bytearray, memoryview)):
        content = bytes(model)
        return Source(sniff(content), "bytes", content=content)
    if _is_onnx_proto(model):
        return Source(Flavor.ONNX, "onnx.ModelProto", obj=model)
    if _is_sklearn(model):
        return Source(Flavor.SKLEARN, type(model).__name__, obj=model)
    if callable(getattr(model, "predict", None)):
        return Source(Flavor.PYTHON, type(model).__name__, obj=model)
    raise InvalidInput(
        f"Cannot package an object of type {type(model).__name__}; pass {_ACCEPTED}.",
        field="model",
    )


def _from_path(path: Path) -> Source:
    if not path.is_file():
        raise InvalidInput(
            f"The file '{path}' does not exist or is not a file; pass the path of a saved model.",
            field="model",
        )
    content = path.read_bytes()
    flavor = SUFFIX_FLAVORS.get(path.suffix.lower()) or sniff(content)
    return Source(flavor, path.name, content=content, from_path=True)


def _is_sklearn(model: object) -> bool:
    # Every estimator class subclasses sklearn.base.BaseEstimator, so it is imported if any is.
    base = sys.modules.get("sklearn.base")
    return base is not None and isinstance(model, base.BaseEstimator)


def _is_onnx_proto(model: object) -> bool:
    onnx = sys.modules.get("onnx")
    return onnx is not None and isinstance(model, onnx.ModelProto)
