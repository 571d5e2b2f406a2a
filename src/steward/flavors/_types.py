"""Plain data shared by the flavor backends; no third-party imports so it stays cheap."""

from __future__ import annotations

from dataclasses import dataclass

from steward.domain.enums import Flavor
from steward.domain.signature import Signature

# Conventional artifact names, one per flavor; a packaged model stores its primary file under it.
MODEL_FILES: dict[Flavor, str] = {
    Flavor.SKLEARN: "model.skops",
    Flavor.ONNX: "model.onnx",
    Flavor.PYTHON: "model.pkl",
}

FLAVOR_LABELS: dict[Flavor, str] = {
    Flavor.SKLEARN: "skops (scikit-learn) file",
    Flavor.ONNX: "ONNX model",
    Flavor.PYTHON: "pickle file",
}


@dataclass(frozen=True)
class PackagedModel:
    """A model turned into named files, ready to upload as a version's artifacts."""

    flavor: Flavor
    files: dict[str, bytes]  # name -> content, e.g. {"model.skops": ..., "model.onnx": ...}
    primary_file: str
    signature: Signature | None
