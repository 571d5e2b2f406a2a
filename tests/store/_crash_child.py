"""Child of test_store_crash: starts a registration and stops inside its write transaction.

argv: DATABASE_URL HOME MODEL. Prints "ARTIFACT <digest>" once the file is uploaded, then
"READY <version>" from inside ``store.write()``, after the version row is written and its
ledger event recorded but before the commit, and sleeps there until it is killed.
"""

from __future__ import annotations

import pickle
import sys
import time
from pathlib import Path

from steward.domain.enums import Flavor
from steward.schemas.registry import VersionCreate
from steward.settings import Settings
from steward.store.sql.store import SqlWriteSession
from steward.wiring import Services

url, home, model = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
record = SqlWriteSession.record


def record_then_hang(self, kind, subject_type, subject_id, payload=None):
    record(self, kind, subject_type, subject_id, payload)
    if kind == "version.registered":
        version = self.get_version(model, payload["version"])  # the row is there, uncommitted
        print(f"READY {version.version}", flush=True)
        time.sleep(600)


SqlWriteSession.record = record_then_hang  # type: ignore[method-assign]
services = Services.from_settings(Settings(home=home, database={"url": url}), migrate=False)
ref = services.registry.upload_artifact(pickle.dumps({"crash": "model"}))
print(f"ARTIFACT {ref.digest}", flush=True)
body = VersionCreate(flavor=Flavor.PYTHON, files={"model.pkl": ref})
services.registry.create_version("crasher", model, body)
print("COMMITTED", flush=True)  # never reached: the parent kills us while we sleep
