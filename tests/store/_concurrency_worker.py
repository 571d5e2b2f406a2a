"""Child of test_store_concurrency: one of several processes writing to one store at once.

argv: DATABASE_URL HOME MODEL RUN_ID WORKER ITERATIONS POINTS. Prints "READY", waits for a line on
stdin (so all workers start together), then per iteration registers a version, logs a batch to
its run and moves the alias "live"; prints the number of writes as JSON at the end.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import steward.registry.service
from steward.domain.enums import Flavor
from steward.schemas.registry import VersionCreate
from steward.schemas.tracking import LogBatch, MetricIn
from steward.settings import Settings
from steward.wiring import Services

url, home, model, run_id = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
worker, iterations, points = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])

# The flavor check (which imports pandas) is not what this test is about; skip it to start fast.
steward.registry.service.validate_artifact = lambda flavor, name, content: None
services = Services.from_settings(Settings(home=home, database={"url": url}), migrate=False)
actor = f"worker-{worker}"
print("READY", flush=True)
sys.stdin.readline()
writes = 0
for i in range(iterations):
    ref = services.registry.upload_artifact(pickle.dumps((worker, i)))
    version = services.registry.create_version(
        actor, model, VersionCreate(flavor=Flavor.PYTHON, files={"model.pkl": ref})
    )
    writes += 1
    batch = [MetricIn(key=f"m{k % 5}", value=float(i), step=i) for k in range(points)]
    services.tracking.log_batch(actor, run_id, LogBatch(metrics=batch))
    writes += 1
    target = version.version if (worker + i) % 2 else max(1, version.version - 1)
    services.registry.set_alias(actor, model, "live", target)
    writes += 1
services.close()
print(json.dumps({"worker": worker, "writes": writes}), flush=True)
