"""The serving benchmark's reference servers: a bare Starlette app, one uvicorn worker.

    python bench/_bare_starlette.py MODE MODEL_FILE PORT

MODE ``sklearn``: ``POST /predict`` with ``{"instances": [[20 floats], ...]}`` parses the JSON
and answers ``{"predictions": model.predict(X)}`` (a pickled scikit-learn estimator, called on
the event loop: no validation, no thread hop, no log, no metrics). MODE ``onnx``: the same
through an onnxruntime session over the model's ONNX export (threads capped as Steward caps
them). MODE ``constant``: reads the body and answers a constant, the HTTP floor.
``GET /health`` answers 200 once the model is loaded.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def build(mode: str, model_file: Path) -> Starlette:
    if mode == "sklearn":
        model = pickle.loads(model_file.read_bytes())

        def predict(x: np.ndarray) -> list[object]:
            return list(model.predict(x).tolist())

    elif mode == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = min(2, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        sess = ort.InferenceSession(
            model_file.read_bytes(), options, providers=["CPUExecutionProvider"]
        )
        input_name = sess.get_inputs()[0].name
        label = sess.get_outputs()[0].name

        def predict(x: np.ndarray) -> list[object]:
            out = sess.run([label], {input_name: x.astype(np.float32)})[0]
            return list(out.tolist())

    elif mode != "constant":
        raise SystemExit(f"unknown mode {mode!r}")

    async def answer(request: Request) -> Response:
        body = await request.body()
        if mode == "constant":
            return Response(b'{"predictions": [0]}', media_type="application/json")
        x = np.asarray(json.loads(body)["instances"], dtype=np.float64)
        content = json.dumps({"predictions": predict(x)})
        return Response(content, media_type="application/json")

    async def health(request: Request) -> Response:
        return Response(b"ok")

    return Starlette(routes=[Route("/predict", answer, methods=["POST"]), Route("/health", health)])


if __name__ == "__main__":
    mode, model_file, port = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    uvicorn.run(
        build(mode, model_file),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
