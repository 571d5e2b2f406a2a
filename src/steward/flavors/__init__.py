"""Package model artifacts safely and load them back, whatever their flavor.

This module only re-exports; the backends (numpy, scikit-learn, skops, onnxruntime) load on
first use, so ``import steward.flavors`` stays cheap.
"""

from steward.flavors._api import FileSource, load_model, package_model, validate_artifact
from steward.flavors._loaded import LoadedModel
from steward.flavors._types import MODEL_FILES, PackagedModel

__all__ = [
    "MODEL_FILES",
    "FileSource",
    "LoadedModel",
    "PackagedModel",
    "load_model",
    "package_model",
    "validate_artifact",
]
