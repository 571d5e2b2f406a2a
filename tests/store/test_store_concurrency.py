"""Several processes writing to one store at once: no lost event, no gap, no torn alias."""

from __future__ import annotations

import itertools
import json
import sys
import threading
from pathlib import Path

import steward.registry.service
from steward.domain.enums import Flavor
from steward.schemas.registry import ModelCreate, VersionCreate
from steward.schemas.tracking import RunCreate
from steward.settings import Settings
from steward.wiring import Services

sys.path.insert(0, str(Path(__file__).parent))
from _children import Child

WORKERS = 2
ITERATIONS = 15
POINTS = 20  # per batch, over 5 keys


def _all_events(services: Services) -> list:
    events, token = [], None
    while True:
        page = services.audit.list_events(limit=1000, page_token=token)
        events.extend(page.items)
        token = page.next_page_token
        if token is None:
            return events


def test_concurrent_writers_keep_the_ledger_whole(backend_url, tmp_path):
    home = tmp_path / "home"
    services = Services.from_settings(Settings(home=home, database={"url": backend_url}))
    try:
        services.registry.create_model("setup", ModelCreate(name="shared"))
        runs = [
            services.tracking.create_run("setup", RunCreate(project="race")).id
            for _ in range(WORKERS)
        ]
        setup_events = services.audit.verify().events_checked
        assert setup_events == 1 + WORKERS

        children = [
            Child("_concurrency_worker.py", backend_url, str(home), "shared", runs[w], str(w),
                  str(ITERATIONS), str(POINTS))
            for w in range(WORKERS)
        ]  # fmt: skip
        for child in children:
            child.expect("READY")
        for child in children:
            child.send("GO")
        results = [json.loads(child.expect("{", timeout=120)) for child in children]
        for child in children:
            child.wait()
        writes = sum(r["writes"] for r in results)
        assert writes == WORKERS * ITERATIONS * 3

        events = _all_events(services)
        report = services.audit.verify()
        assert report.ok, report
        assert len(events) == report.events_checked == setup_events + writes  # no lost event
        assert [e.seq for e in events] == list(range(1, len(events) + 1))  # no gap
        assert len({e.id for e in events}) == len(events)
        mine = events[setup_events:]
        assert {e.actor for e in mine} == {f"worker-{w}" for w in range(WORKERS)}

        # Every registration got its own number, 1..n, and each has its event.
        versions = services.registry.list_versions(model="shared", limit=1000).items
        registered = WORKERS * ITERATIONS
        assert sorted(v.version for v in versions) == list(range(1, registered + 1))
        assert services.registry.get_model("shared").latest_version == registered
        numbers = [e.payload["version"] for e in mine if e.kind == "version.registered"]
        assert sorted(numbers) == list(range(1, registered + 1))

        # Every point of every batch was kept, and each run's batches were all recorded.
        for run_id in runs:
            assert len(services.tracking.metric_history(run_id, "m0")) == ITERATIONS * POINTS // 5
            logged = [e for e in mine if e.kind == "run.logged" and e.subject_id == run_id]
            assert [e.payload["points"] for e in logged] == [POINTS] * ITERATIONS

        # The alias points at exactly one existing version: the one its last move named, and
        # each move names the version the one before it set (no move was lost or reordered).
        moves = [e.payload for e in mine if e.kind == "alias.set"]
        assert len(moves) == registered
        assert moves[0]["previous_version"] is None
        for before, after in itertools.pairwise(moves):
            assert after["previous_version"] == before["version"]
        live = services.registry.get_version("models:/shared@live")
        assert live.version == moves[-1]["version"]
        assert live.id in {v.id for v in versions}
        assert services.registry.get_model("shared").aliases == {"live": live.version}
        assert [v.version for v in versions if "live" in v.aliases] == [live.version]
    finally:
        services.close()


def test_writers_that_share_no_row_still_chain_one_after_another(
    backend_url, tmp_path, monkeypatch
):
    # Each thread moves an alias of its own, so only the ledger's lock orders them: a tip read
    # on a snapshot older than the lock would chain two events onto one tip (a duplicate seq).
    monkeypatch.setattr(steward.registry.service, "validate_artifact", lambda *_: None)
    home = tmp_path / "home"
    threads, moves = 4, 40
    stores = [
        Services.from_settings(Settings(home=home, database={"url": backend_url}))
        for _ in range(threads)
    ]
    try:
        first = stores[0]
        first.registry.create_model("setup", ModelCreate(name="m"))
        ref = first.registry.upload_artifact(b"\x00")
        for _ in range(2):
            first.registry.create_version(
                "setup", "m", VersionCreate(flavor=Flavor.PYTHON, files={"model.pkl": ref})
            )
        before = first.audit.verify().events_checked
        errors: list[BaseException] = []

        def work(k: int) -> None:
            try:
                for i in range(moves):
                    stores[k].registry.set_alias(f"w{k}", "m", f"a{k}", 1 + i % 2)
            except BaseException as exc:  # collected: an exception in a thread is otherwise lost
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert errors == []
        report = first.audit.verify()
        assert report.ok, report
        assert report.events_checked == before + threads * moves
    finally:
        for services in stores:
            services.close()
