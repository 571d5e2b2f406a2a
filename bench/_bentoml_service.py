"""The serving benchmark's BentoML peer (run by ``bentoml serve`` from a separate venv).

    BENCH_MODEL=model.pkl bentoml serve _bentoml_service:Classifier --host H --port P

One worker, one API: ``POST /predict`` with ``{"instances": [[20 floats], ...]}`` answers the
pickled scikit-learn estimator's ``predict`` (BentoML's own JSON and numpy IO descriptors).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import bentoml
import numpy as np


@bentoml.service(workers=1)
class Classifier:
    def __init__(self) -> None:
        self.model = pickle.loads(Path(os.environ["BENCH_MODEL"]).read_bytes())

    @bentoml.api
    def predict(self, instances: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(instances))
