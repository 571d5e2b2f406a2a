import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("numpy", "pandas", "sklearn", "skops", "onnx", "onnxruntime", "pyarrow")


def _modules_after_import(module: str) -> set[str]:
    src = Path(__file__).resolve().parents[2] / "src"
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(src)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return set(result.stdout.split())


def test_import_steward_flavors_is_light() -> None:
    loaded = _modules_after_import("steward.flavors")
    assert "steward.flavors" in loaded
    assert not loaded & set(HEAVY)
