"""Child of test_store_crash: starts a registration and stops inside its write transaction.

argv: DATABASE_URL HOME MODEL. Prints "ARTIFACT <digest>" once the file is uploaded, then
"READY <version>" from inside ``store.write()``, once the version's rows have gone to the
database and its ledger event is chained (the ledger's lock held) but before the commit, and
sleeps there until it is killed.
"""

from __future__ import annotations

import pickle
import sys
import time
from pathlib import Path

from steward.domain.enums import Flavor
from steward.schemas.registry import VersionCreate
from steward.settings import Settings
from steward.store.sql import _ledger
from steward.wiring import Services

url, home, model = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
append_events = _ledger.append_events


def append_then_hang(session, actor, pending, **how):
    # The version's inserts ran just before (on PostgreSQL they went with the lock's round
    # trip, whose answer append_events has read: this process's first write predicts no tip):
    # the rows are in the database, uncommitted.
    events = append_events(session, actor, pending, **how)
    for event in events:
        if event.kind == "version.registered":
            print(f"READY {event.payload['version']}", flush=True)
            time.sleep(600)
    return events


_ledger.append_events = append_then_hang
services = Services.from_settings(Settings(home=home, database={"url": url}), migrate=False)
ref = services.registry.upload_artifact(pickle.dumps({"crash": "model"}))
print(f"ARTIFACT {ref.digest}", flush=True)
body = VersionCreate(flavor=Flavor.PYTHON, files={"model.pkl": ref})
services.registry.create_version("crasher", model, body)
print("COMMITTED", flush=True)  # never reached: the parent kills us while we sleep
