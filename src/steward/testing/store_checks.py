"""The store conformance suite: what every metadata-store backend must do, as plain functions.

Each check is ``check_<behaviour>(services: Services) -> None``: it drives the store through the
services that use it (registry, tracking, audit, tokens; ``services.store`` and
``services.artifacts`` for what only the store can show), and raises ``AssertionError`` naming
what differed. A check needs a migrated store; it may share it with other checks, because it
names everything it creates uniquely and looks only at the ledger events it appended. Two
checks (``check_tampered_event_is_detected``, ``check_deleted_event_is_detected``) change the
``events`` table behind the store's back through ``services.store.engine``, so they need the
SQL store, and they put the rows back before they return; several checks write from threads.

Two ways in:

- ``check_metadata_store(factory)`` runs every check, each on a fresh ``Services`` from
  ``factory()``, and raises on the first failure;
- ``@parametrize_with_store_checks({"sqlite": make_sqlite, ...})`` gives one pytest item per
  (backend, check). A factory's parameters are names of pytest fixtures (``tmp_path``, or a
  fixture of yours yielding a database URL); ``run_store_check(store_factory, check, request)``
  resolves them, builds the services, runs the check and closes them::

      @parametrize_with_store_checks({"sqlite": sqlite_services})
      def test_store_conformance(store_factory, check, request):
          run_store_check(store_factory, check, request)

``expected_failures={"check_x": "reason"}`` marks a check as a strict xfail for a backend that
does not support it yet.
"""

from __future__ import annotations

import base64
import inspect
import pickle
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update

from steward.domain.entities import (
    Event,
    GitInfo,
    Lineage,
    ModelVersion,
    RunArtifact,
)
from steward.domain.enums import Flavor, Role, RunStatus
from steward.domain.experiments import (
    Aggregation,
    Decision,
    DecisionAction,
    Experiment,
    ExperimentMetric,
    ExperimentState,
    MetricDefinition,
    MetricRole,
    MetricSource,
)
from steward.domain.incidents import IncidentState
from steward.domain.ledger import GENESIS_HASH, event_hash
from steward.domain.monitoring import (
    Alert,
    AlertRule,
    AlertState,
    Comparison,
    MonitorSpec,
    MonitorWindow,
    Severity,
    WindowStatus,
)
from steward.domain.signature import ColumnSpec, Signature
from steward.errors import (
    AlreadyExists,
    Conflict,
    InvalidInput,
    NotFound,
    StewardError,
    Unauthenticated,
)
from steward.schemas.auth import TokenCreate
from steward.schemas.registry import ModelCreate, ModelUpdate, VersionCreate, VersionUpdate
from steward.schemas.serving import DeploymentSpec
from steward.schemas.tracking import LogBatch, MetricIn, RunCreate, RunEnd
from steward.store.sql.tables import Base
from steward.wiring import Services

StoreCheck = Callable[[Services], None]
StoreFactory = Callable[..., Services]

ACTOR = "conformance"


# assertions --------------------------------------------------------------------------------
def _eq(actual: object, expected: object, what: str) -> None:
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def _true(condition: object, what: str) -> None:
    if not condition:
        raise AssertionError(what)


class _Caught:
    value: StewardError | None = None


@contextmanager
def _raises(kind: type[StewardError], what: str) -> Iterator[_Caught]:
    caught = _Caught()
    try:
        yield caught
    except kind as exc:
        caught.value = exc
        return
    except StewardError as exc:
        raise AssertionError(
            f"{what}: expected {kind.__name__}, got {type(exc).__name__}: {exc}"
        ) from exc
    raise AssertionError(f"{what}: expected {kind.__name__}, nothing was raised")


def _utc(value: datetime | None, what: str) -> None:
    _true(value is not None, f"{what} is missing")
    assert value is not None
    _true(
        value.tzinfo is not None and value.utcoffset() == timedelta(0),
        f"{what} must be timezone-aware UTC, got {value!r}",
    )


# fixtures built through the services -------------------------------------------------------
def _name(prefix: str) -> str:
    """A model name no other check (or earlier run on a shared store) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _tip(services: Services) -> int:
    page = services.audit.list_events(newest_first=True, limit=1)
    return page.items[0].seq if page.items else 0


def _events_since(services: Services, seq: int) -> list[Event]:
    events: list[Event] = []
    token: str | None = None
    while True:
        page = services.audit.list_events(after_seq=seq, limit=500, page_token=token)
        events.extend(page.items)
        token = page.next_page_token
        if token is None:
            return events


def _expect_events(
    services: Services, since: int, expected: list[tuple[str, str, str]], what: str
) -> list[Event]:
    """The events after ``since`` are exactly ``expected`` (kind, subject_type, subject_id)."""
    events = _events_since(services, since)
    _eq([(e.kind, e.subject_type, e.subject_id) for e in events], expected, f"events of {what}")
    _eq([e.seq for e in events], list(range(since + 1, since + 1 + len(events))), "event seqs")
    for event in events:
        _eq(event.actor, ACTOR, f"actor of {event.kind}")
    return events


def _register(
    services: Services, name: str, *, metrics: dict[str, float] | None = None, **extra: Any
) -> ModelVersion:
    ref = services.registry.upload_artifact(pickle.dumps(("model", uuid.uuid4().hex)))
    body = VersionCreate(
        flavor=Flavor.PYTHON, files={"model.pkl": ref}, metrics=metrics or {}, **extra
    )
    return services.registry.create_version(ACTOR, name, body)


def _model(services: Services, name: str, **fields: Any) -> None:
    services.registry.create_model(ACTOR, ModelCreate(name=name, **fields))


def _encode_token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


# models ------------------------------------------------------------------------------------
def check_model_round_trip(services: Services) -> None:
    """Every field of a model, unicode and large values included, comes back as written."""
    name = _name("round-trip")
    big_tags = {f"tag-{i:03d}": "ü" * 4000 for i in range(50)}
    body = ModelCreate(
        name=name,
        owner="Zoë Ødegård",
        team="risk — crédit",
        risk_tier=1,
        use_case="scoring 信用 ✓",
        description="描述 🚀 " * 500,
        tags={"ключ": "значение", "emoji": "🚀", "empty": "", **big_tags},
        card={"intended_use": "Prêts à la consommation", "limitations": "—"},
    )
    since = _tip(services)
    created = services.registry.create_model(ACTOR, body)
    fetched = services.registry.get_model(name)
    _eq(fetched, created, "get_model after create_model")
    for field in ("name", "owner", "team", "risk_tier", "use_case", "description", "tags", "card"):
        _eq(getattr(fetched, field), getattr(body, field), f"model.{field}")
    _eq(fetched.created_by, ACTOR, "model.created_by")
    _eq(fetched.latest_version, None, "latest_version of a model without versions")
    _eq(fetched.aliases, {}, "aliases of a new model")
    (event,) = _expect_events(services, since, [("model.created", "model", name)], "create_model")
    _eq(
        event.payload,
        {"name": name, "owner": body.owner, "team": body.team, "risk_tier": 1, "tags": body.tags},
        "model.created payload",
    )

    since = _tip(services)
    update = ModelUpdate(description="nouvelle", tags={"only": "this"}, card={"limitations": "x"})
    updated = services.registry.update_model(ACTOR, name, update)
    fetched = services.registry.get_model(name)
    _eq(fetched, updated, "get_model after update_model")
    _eq(fetched.description, "nouvelle", "updated description")
    _eq(fetched.tags, {"only": "this"}, "tags are replaced by an update")
    _eq(fetched.card, {"intended_use": "Prêts à la consommation", "limitations": "x"}, "card merge")
    _eq(fetched.owner, body.owner, "owner not in the update is unchanged")
    _eq(fetched.created_at, created.created_at, "created_at after an update")
    _true(fetched.updated_at >= created.updated_at, "updated_at moves forward")
    (event,) = _expect_events(services, since, [("model.updated", "model", name)], "update_model")
    _eq(event.payload["changed"], ["card", "description", "tags"], "model.updated changed")


def check_duplicate_model_name(services: Services) -> None:
    """A second model with a taken name is AlreadyExists; the first is untouched."""
    name = _name("duplicate")
    _model(services, name, owner="first")
    since = _tip(services)
    with _raises(AlreadyExists, "create_model with a taken name") as caught:
        _model(services, name, owner="second")
    assert caught.value is not None
    _eq(caught.value.details.get("field"), "name", "AlreadyExists names the field")
    _eq(services.registry.get_model(name).owner, "first", "owner of the original model")
    _expect_events(services, since, [], "a refused duplicate")

    raced = _name("duplicate-race")
    barrier = threading.Barrier(4, timeout=60)

    def create(owner: str) -> str:
        barrier.wait()
        try:
            _model(services, raced, owner=owner)
        except AlreadyExists:
            return "refused"
        return "created"

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(create, ["a", "b", "c", "d"]))
    _eq(sorted(outcomes), ["created", "refused", "refused", "refused"], "racing creations")
    _expect_events(services, since, [("model.created", "model", raced)], "racing creations")


def check_unknown_is_not_found(services: Services) -> None:
    """Unknown models, versions, aliases and runs raise NotFound and record nothing."""
    name = _name("known")
    _model(services, name)
    missing = _name("missing")
    since = _tip(services)
    reg = services.registry
    with _raises(NotFound, "get_model of an unknown model"):
        reg.get_model(missing)
    with _raises(NotFound, "latest version of a model without versions"):
        reg.get_version(f"models:/{name}/latest")
    _register(services, name)
    since = _tip(services)
    tracking, tokens, nobody = services.tracking, services.tokens, str(uuid.uuid4())
    one_point = LogBatch(metrics=[MetricIn(key="a", value=1.0)])
    cases: list[tuple[str, Callable[[], object]]] = [
        ("get_version of an unknown model", lambda: reg.get_version(f"models:/{missing}/1")),
        ("get_version of an unknown version", lambda: reg.get_version(f"models:/{name}/2")),
        ("get_version of an unknown alias", lambda: reg.get_version(f"models:/{name}@nope")),
        ("update_model of an unknown model",
         lambda: reg.update_model(ACTOR, missing, ModelUpdate(description="x"))),
        ("create_version on an unknown model", lambda: _register(services, missing)),
        ("update_version of an unknown version",
         lambda: reg.update_version(ACTOR, name, 9, VersionUpdate(description="x"))),
        ("set_alias to an unknown version", lambda: reg.set_alias(ACTOR, name, "champion", 7)),
        ("set_alias on an unknown model", lambda: reg.set_alias(ACTOR, missing, "champion", 1)),
        ("delete_alias of an unknown alias", lambda: reg.delete_alias(ACTOR, name, "nope")),
        ("list_versions of an unknown model", lambda: reg.list_versions(model=missing)),
        ("get_run of an unknown run", lambda: tracking.get_run(nobody)),
        ("log_batch to an unknown run", lambda: tracking.log_batch(ACTOR, nobody, one_point)),
        ("end_run of an unknown run", lambda: tracking.end_run(ACTOR, nobody, RunEnd())),
        ("metric_history of an unknown run", lambda: tracking.metric_history(nobody, "a")),
        ("revoke of an unknown token", lambda: tokens.revoke_token(ACTOR, nobody)),
    ]  # fmt: skip
    for what, call in cases:
        with _raises(NotFound, what):
            call()
    _eq(services.registry.get_model(name).latest_version, 1, "latest_version after refusals")
    _expect_events(services, since, [], "refused writes")


# versions ----------------------------------------------------------------------------------
def check_version_numbering(services: Services) -> None:
    """Versions of a model are numbered 1..n, per model; latest resolves to n."""
    name, other = _name("numbering"), _name("numbering-other")
    _model(services, name)
    _model(services, other)
    numbers = [_register(services, name).version for _ in range(5)]
    _eq(numbers, [1, 2, 3, 4, 5], "version numbers")
    _eq(_register(services, other).version, 1, "first version of another model")
    _eq(services.registry.get_model(name).latest_version, 5, "model.latest_version")
    _eq(services.registry.get_version(f"models:/{name}/latest").version, 5, "models:/NAME/latest")
    for number in numbers:
        _eq(services.registry.get_version(f"models:/{name}/{number}").version, number, "get")
    listed = services.registry.list_versions(model=name).items
    _eq([v.version for v in listed], [5, 4, 3, 2, 1], "list_versions order (newest first)")
    _eq({v.model_name for v in listed}, {name}, "list_versions(model=) stays in its model")


def _parquet(columns: dict[str, list[Any]]) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.table(columns), out)
    return out.getvalue()


def check_version_round_trip(services: Services) -> None:
    """Signature, lineage, metrics, large params, tags and files come back as registered."""
    name = _name("version-fields")
    _model(services, name)
    run = services.tracking.create_run(ACTOR, RunCreate(name="train", project=name))
    reg = services.registry
    files = {
        "model.pkl": reg.upload_artifact(pickle.dumps({"weights": [0.5] * 10})),
        "extra/config.json": reg.upload_artifact('{"ü": 1}'.encode()),
    }
    sample = reg.upload_artifact(_parquet({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "x"]}))
    params = {f"param_{i:04d}": f"value {i} é" for i in range(2000)}
    params["huge"] = "x" * 200_000
    body = VersionCreate(
        flavor=Flavor.PYTHON,
        files=files,
        primary_file="model.pkl",
        signature=Signature(
            inputs=[
                ColumnSpec(name="âge", dtype="float64"),
                ColumnSpec(name="income", dtype="int64", shape=[-1, 3]),
                ColumnSpec(name="city", dtype="string"),
            ],
            outputs=[ColumnSpec(name="score", dtype="float32", shape=[-1, 1])],
        ),
        metrics={"auc": 0.9123456789012345, "loss": 1e-12, "neg": -3.5, "big": 1e300, "n": 3},
        params=params,
        tags={"stage": "candidate", "Ω": "√2"},
        lineage=Lineage(
            git=GitInfo(commit="a" * 40, dirty=False, branch="main", remote="git@host:x/y.git"),
            training_data="sha256:" + "1" * 64,
            evaluation_data="sha256:" + "2" * 64,
            environment={"python": "3.11.9", "packages": {"numpy": "2.0"}, "n": [1, 2.5, None]},
            command="python train.py --lr 0.1 --name 'é'",
            run_id=run.id,
            external={"mlflow_run_id": "abc123"},
        ),
        reference_sample=sample,
        description="première version ✓",
        trusted=True,
    )
    since = _tip(services)
    created = reg.create_version(ACTOR, name, body)
    fetched = reg.get_version(f"models:/{name}/1")
    _eq(fetched, created, "get_version after create_version")
    for field in ("files", "signature", "metrics", "params", "tags", "lineage",
                  "reference_sample", "description", "trusted"):  # fmt: skip
        _eq(getattr(fetched, field), getattr(body, field), f"version.{field}")
    _true(fetched.reference_profile is not None, "a reference profile built at registration")
    _eq(fetched.primary_file, "model.pkl", "primary_file")
    _eq(fetched.flavor, Flavor.PYTHON, "flavor")
    _eq(fetched.created_by, ACTOR, "version.created_by")
    _eq(fetched.uri, f"models:/{name}/1", "uri")
    _eq(fetched.lineage.run_id, run.id, "lineage.run_id")
    (event,) = _expect_events(
        services, since, [("version.registered", "model_version", f"models:/{name}/1")], "register"
    )
    _eq(event.payload["files"], {k: v.digest for k, v in files.items()}, "payload files")
    _eq(event.payload["metrics"], body.metrics, "payload metrics")
    _eq(event.payload["run_id"], run.id, "payload run_id")
    _eq(event.payload["git_commit"], "a" * 40, "payload git_commit")
    filtered = reg.list_versions(f"run_id = '{run.id}'").items
    _eq([(v.model_name, v.version) for v in filtered], [(name, 1)], "filter by run_id")

    since = _tip(services)
    changes = VersionUpdate(description="v1 ✓✓", metrics={"auc": 0.95, "new": 1.0}, tags={"a": "b"})
    updated = reg.update_version(ACTOR, name, 1, changes)
    fetched = reg.get_version(f"models:/{name}/1")
    _eq(fetched, updated, "get_version after update_version")
    _eq(fetched.metrics, {**body.metrics, "auc": 0.95, "new": 1.0}, "metrics merge on update")
    _eq(fetched.tags, {"a": "b"}, "tags are replaced on update")
    _eq(fetched.description, "v1 ✓✓", "description update")
    _eq(fetched.params, params, "params unchanged by an update")
    _expect_events(
        services, since, [("version.updated", "model_version", f"models:/{name}/1")], "update"
    )


def check_filters(services: Services) -> None:
    """Filters on metrics, tags, owner, team, tier, status, version and name select exactly."""
    prefix = _name("flt")
    alpha, beta, gamma = f"{prefix}-alpha", f"{prefix}-beta", f"{prefix}-gamma"
    _model(services, alpha, owner="alice", team="risk", risk_tier=1, tags={"domain": "credit"})
    _model(services, beta, owner="bob", team="risk", risk_tier=2, tags={"domain": "fraud"})
    _model(services, gamma, owner="alice", team="growth", risk_tier=3, tags={"domain": "credit"})
    _register(services, alpha, metrics={"auc": 0.75})
    _register(services, alpha, metrics={"auc": 0.85}, tags={"stage": "candidate"})
    _register(services, beta, metrics={"auc": 0.95, "loss": 0.1})
    _register(services, gamma, metrics={"loss": 0.3}, tags={"stage": "done"})
    with services.store.write(ACTOR) as tx:
        tx.update_version(beta, 1, {"status": "production"})
        tx.record("version.updated", "model_version", f"models:/{beta}/1", {"status": "production"})

    scope = f"name like '{prefix}-%'"

    def models(flt: str) -> list[str]:
        return [m.name for m in services.registry.list_models(f"{scope} and {flt}").items]

    def versions(flt: str) -> list[tuple[str, int]]:
        page = services.registry.list_versions(f"{scope} and {flt}")
        return [(v.model_name, v.version) for v in page.items]

    _eq(models("owner = 'alice'"), [alpha, gamma], "models owner = 'alice'")
    _eq(models("team = 'risk'"), [alpha, beta], "models team = 'risk'")
    _eq(models("tier <= 2"), [alpha, beta], "models tier <= 2")
    _eq(models("risk_tier = 3"), [gamma], "models risk_tier = 3")
    _eq(models("tags.domain = 'credit'"), [alpha, gamma], "models tags.domain = 'credit'")
    _eq(models("tags.domain != 'credit'"), [beta], "models tags.domain != 'credit'")
    _eq(models(f"name like '{prefix}-b%'"), [beta], "models name like")
    _eq(models("owner = 'nobody'"), [], "models owner = 'nobody'")
    _eq(versions("metrics.auc > 0.8"), [(alpha, 2), (beta, 1)], "metrics.auc > 0.8")
    _eq(versions("metrics.auc >= 0.75"), [(alpha, 2), (alpha, 1), (beta, 1)], "auc >= 0.75")
    _eq(versions("metrics.loss < 0.2"), [(beta, 1)], "metrics.loss < 0.2")
    _eq(versions("tags.stage = 'candidate'"), [(alpha, 2)], "tags.stage = 'candidate'")
    _eq(versions("status = 'production'"), [(beta, 1)], "status = 'production'")
    _eq(versions("status = 'registered'"), [(alpha, 2), (alpha, 1), (gamma, 1)], "status")
    _eq(versions("owner = 'alice'"), [(alpha, 2), (alpha, 1), (gamma, 1)], "versions by owner")
    _eq(versions("team = 'growth'"), [(gamma, 1)], "versions by team")
    _eq(versions("tier = 2"), [(beta, 1)], "versions by tier")
    _eq(versions("version = 2"), [(alpha, 2)], "versions by number")
    _eq(
        versions("metrics.auc > 0.8 and team = 'risk' and tier <= 1"),
        [(alpha, 2)],
        "conditions joined by AND",
    )
    _eq(
        [(v.model_name, v.version) for v in services.registry.list_versions(
            "metrics.auc > 0.5", model=alpha).items],
        [(alpha, 2), (alpha, 1)],
        "list_versions(filter, model=)",
    )  # fmt: skip
    refused = [
        ("models", "metrics.auc > 0.8"),
        ("versions", "params.lr = '0.1'"),
        ("versions", "bogus = 1"),
        ("versions", "metrics.auc >"),
        ("versions", "metrics.auc = 'high'"),
        ("models", "tier = 'one'"),
    ]
    for what, flt in refused:
        with _raises(InvalidInput, f"{what} filter {flt!r}"):
            if what == "models":
                services.registry.list_models(flt)
            else:
                services.registry.list_versions(flt)


def check_pagination(services: Services) -> None:
    """Page tokens walk models, versions, runs and events, every item exactly once, in order."""
    prefix = _name("page")
    names = [f"{prefix}-{i:02d}" for i in range(7)]
    for name in reversed(names):
        _model(services, name)
    scope = f"name like '{prefix}-%'"

    def walk(fetch: Callable[[str | None], Any]) -> list[list[Any]]:
        pages, token = [], None
        for _ in range(100):
            page = fetch(token)
            pages.append(page.items)
            token = page.next_page_token
            if token is None:
                return pages
        raise AssertionError("pagination did not end after 100 pages")

    pages = walk(lambda t: services.registry.list_models(scope, limit=3, page_token=t))
    _eq([[m.name for m in p] for p in pages], [names[0:3], names[3:6], names[6:]], "model pages")
    pages = walk(lambda t: services.registry.list_models(scope, limit=7, page_token=t))
    _eq([len(p) for p in pages], [7], "one full page has no next_page_token")

    for _ in range(5):
        _register(services, names[0])
    pages = walk(lambda t: services.registry.list_versions(model=names[0], limit=2, page_token=t))
    _eq([[v.version for v in p] for p in pages], [[5, 4], [3, 2], [1]], "version pages")

    project = _name("page-project")
    run_ids = {services.tracking.create_run(ACTOR, RunCreate(project=project)).id for _ in range(5)}
    pages = walk(lambda t: services.tracking.list_runs(project=project, limit=2, page_token=t))
    seen = [r.id for p in pages for r in p]
    _eq([len(p) for p in pages], [2, 2, 1], "run page sizes")
    _eq(sorted(seen), sorted(run_ids), "runs across pages, each once")

    since = _tip(services) - 5
    pages = walk(lambda t: services.audit.list_events(after_seq=since, limit=2, page_token=t))
    _eq([e.seq for p in pages for e in p], list(range(since + 1, since + 6)), "event pages")
    with _raises(InvalidInput, "limit=0"):
        services.registry.list_models(scope, limit=0)


def check_metric_search(services: Services) -> None:
    """A search on one metric lists like any other: by model name, newest version first, page
    by page, with a model filter, and it follows metrics updated after registration."""
    prefix = _name("msearch")
    key = prefix.replace("-", "_")  # a metric no other check writes
    names = [f"{prefix}-{c}" for c in "cab"]  # registered out of name order
    for name in names:
        _model(services, name)
    for i in range(3):
        for name in names:
            _register(services, name, metrics={key: 0.5 + 0.1 * i})
    every = [(name, v) for name in sorted(names) for v in (3, 2, 1)]

    def found(flt: str, **kwargs: Any) -> list[tuple[str, int]]:
        pages, token = [], None
        while True:
            page = services.registry.list_versions(flt, limit=2, page_token=token, **kwargs)
            pages += [(v.model_name, v.version) for v in page.items]
            token = page.next_page_token
            if token is None:
                return pages

    _eq(found(f"metrics.{key} > 0"), every, "one metric, all versions, in pages of 2")
    # The same filter with a second condition takes the general query: the same answer.
    _eq(found(f"metrics.{key} > 0 and version >= 1"), every, "one metric and a field")
    _eq(found(f"metrics.{key} >= 0.6"), [x for x in every if x[1] >= 2], "a metric range")
    _eq(found(f"metrics.{key} > 0", model=names[0]), [(names[0], v) for v in (3, 2, 1)],
        "one metric, one model")  # fmt: skip
    _eq(found(f"metrics.{key} > 1"), [], "no match")
    services.registry.update_version(ACTOR, names[1], 1, VersionUpdate(metrics={key: 2.0}))
    _eq(found(f"metrics.{key} > 1"), [(names[1], 1)], "a metric updated after registration")


def check_bad_page_token(services: Services) -> None:
    """A page token the server did not issue is InvalidInput on every list."""
    listings: list[tuple[str, Callable[[str], object]]] = [
        ("list_models", lambda t: services.registry.list_models(page_token=t)),
        ("list_versions", lambda t: services.registry.list_versions(page_token=t)),
        ("list_runs", lambda t: services.tracking.list_runs(page_token=t)),
        ("list_events", lambda t: services.audit.list_events(page_token=t)),
    ]
    tokens = ["not a token", "%%%", _encode_token("-3"), _encode_token("abc"),
              _encode_token(str(10**25)), _encode_token(str(2**63))]  # fmt: skip
    for token in tokens:
        for what, call in listings:
            with _raises(InvalidInput, f"{what} with page_token {token!r}") as caught:
                call(token)
            assert caught.value is not None
            _eq(caught.value.details.get("field"), "page_token", "InvalidInput field")


# aliases -----------------------------------------------------------------------------------
def check_aliases(services: Services) -> None:
    """Aliases are set, moved and deleted; each event names the version pointed at before."""
    name = _name("alias")
    _model(services, name)
    for _ in range(3):
        _register(services, name)
    reg = services.registry
    since = _tip(services)
    alias = reg.set_alias(ACTOR, name, "champion", 1)
    _eq((alias.model_name, alias.alias, alias.version), (name, "champion", 1), "set alias")
    _eq(alias.updated_by, ACTOR, "alias.updated_by")
    reg.set_alias(ACTOR, name, "champion", 3)
    reg.set_alias(ACTOR, name, "challenger", 1)
    reg.set_alias(ACTOR, name, "champion", 3)
    _eq(reg.get_version(f"models:/{name}@champion").version, 3, "models:/NAME@champion")
    _eq(reg.get_version(f"models:/{name}@challenger").version, 1, "models:/NAME@challenger")
    _eq(reg.get_model(name).aliases, {"champion": 3, "challenger": 1}, "model.aliases")
    _eq(reg.get_version(f"models:/{name}/3").aliases, ["champion"], "version 3 aliases")
    _eq(reg.get_version(f"models:/{name}/2").aliases, [], "version 2 aliases")
    reg.delete_alias(ACTOR, name, "champion")
    with _raises(NotFound, "a deleted alias"):
        reg.get_version(f"models:/{name}@champion")
    _eq(reg.get_model(name).aliases, {"challenger": 1}, "aliases after a delete")
    events = _expect_events(
        services, since,
        [("alias.set", "model", name)] * 4 + [("alias.deleted", "model", name)],
        "alias moves",
    )  # fmt: skip
    _eq(
        [e.payload for e in events],
        [
            {"alias": "champion", "version": 1, "previous_version": None},
            {"alias": "champion", "version": 3, "previous_version": 1},
            {"alias": "challenger", "version": 1, "previous_version": None},
            {"alias": "champion", "version": 3, "previous_version": 3},
            {"alias": "champion", "previous_version": 3},
        ],
        "alias event payloads",
    )
    since = _tip(services)
    with _raises(NotFound, "deleting an alias twice"):
        reg.delete_alias(ACTOR, name, "champion")
    for bad in ("Champion", "latest", "12", "has space"):
        with _raises(InvalidInput, f"alias name {bad!r}"):
            reg.set_alias(ACTOR, name, bad, 1)
    _expect_events(services, since, [], "refused alias changes")


def check_concurrent_alias_moves(services: Services) -> None:
    """Threads creating and moving aliases at once: each move is an event naming the one before."""
    name = _name("alias-race")
    _model(services, name)
    for _ in range(3):
        _register(services, name)
    since = _tip(services)
    workers, rounds = 4, 5
    barrier = threading.Barrier(workers, timeout=60)

    def mover(worker: int) -> None:
        for i in range(rounds):
            barrier.wait()  # each round starts together; its first move creates "new-<i>"
            services.registry.set_alias(ACTOR, name, f"new-{i}", 1 + worker % 3)
            services.registry.set_alias(ACTOR, name, "live", 1 + (worker + i) % 3)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(mover, w) for w in range(workers)]:
            future.result()
    moves = workers * rounds * 2
    events = _expect_events(services, since, [("alias.set", "model", name)] * moves, "moves")
    last: dict[str, int | None] = {}
    for event in events:
        alias = event.payload["alias"]
        _eq(event.payload["previous_version"], last.get(alias), f"previous_version of {alias}")
        last[alias] = event.payload["version"]
    _eq(services.registry.get_model(name).aliases, last, "aliases after the race")
    _true(services.audit.verify().ok, "the ledger verifies after concurrent moves")


def check_concurrent_writers(services: Services) -> None:
    """Threads writing unrelated things at once: every write is one event, the chain holds."""
    prefix = _name("race")
    run = services.tracking.create_run(ACTOR, RunCreate(project=prefix))
    since = _tip(services)

    def write(i: int) -> None:
        if i % 2:
            _model(services, f"{prefix}-{i:03d}")
        else:
            batch = LogBatch(metrics=[MetricIn(key="k", value=float(i), step=i)])
            services.tracking.log_batch(ACTOR, run.id, batch)

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(write, range(48)))
    events = _events_since(services, since)
    _eq([e.seq for e in events], list(range(since + 1, since + 49)), "seqs of concurrent writes")
    _eq(sorted(e.kind for e in events), ["model.created"] * 24 + ["run.logged"] * 24, "kinds")
    _eq(len(services.tracking.metric_history(run.id, "k")), 24, "points of concurrent batches")
    report = services.audit.verify()
    _true(report.ok, f"the ledger verifies after concurrent writes: {report}")


# runs --------------------------------------------------------------------------------------
def check_runs_and_log_batch(services: Services) -> None:
    """Batches keep every point, the latest value per key, and history in step order."""
    project = _name("runs")
    tracking = services.tracking
    since = _tip(services)
    run = tracking.create_run(
        ACTOR, RunCreate(name="entraînement", project=project, params={"lr": 0.1}, tags={"k": "v"})
    )
    _eq((run.status, run.params, run.tags), (RunStatus.RUNNING, {"lr": "0.1"}, {"k": "v"}), "run")
    _eq(tracking.get_run(run.id), run, "get_run after create_run")
    base = datetime(2024, 5, 1, tzinfo=UTC)
    steps = [(i * 37) % 100 for i in range(100)]  # 0..99, shuffled
    batch = [
        MetricIn(key=key, value=step * scale, step=step, timestamp=base + timedelta(seconds=step))
        for key, scale in (("loss", -1.0), ("acc", 0.01), ("ключ", 2.0))
        for step in steps
    ]  # fmt: skip
    _eq(tracking.log_batch(ACTOR, run.id, LogBatch(metrics=batch)), 300, "points written")
    _eq(tracking.get_run(run.id).metrics, {"loss": -99.0, "acc": 0.99, "ключ": 198.0}, "latest")
    history = tracking.metric_history(run.id, "loss")
    _eq([p.step for p in history], list(range(100)), "metric_history is ordered by step")
    _eq([p.value for p in history], [-float(s) for s in range(100)], "metric_history values")
    _eq(history[7].timestamp, base + timedelta(seconds=7), "metric point timestamp")

    older = [MetricIn(key="loss", value=5.0, step=s, timestamp=base) for s in range(10, 13)]
    tracking.log_batch(
        ACTOR, run.id, LogBatch(metrics=older, params={"epochs": 3}, tags={"k2": "w"})
    )
    fetched = tracking.get_run(run.id)
    _eq(fetched.metrics["loss"], -99.0, "an older step does not move the latest value")
    _eq(fetched.params, {"lr": "0.1", "epochs": "3"}, "params merged")
    _eq(fetched.tags, {"k": "v", "k2": "w"}, "tags merged")
    history = tracking.metric_history(run.id, "loss")
    _eq(len(history), 103, "every point is kept")
    _eq([p.step for p in history], sorted(p.step for p in history), "history stays in step order")

    ties = [
        MetricIn(key="loss", value=1.0, step=500, timestamp=base + timedelta(hours=2)),
        MetricIn(key="loss", value=2.0, step=500, timestamp=base + timedelta(hours=1)),
    ]
    tracking.log_batch(ACTOR, run.id, LogBatch(metrics=ties))
    _eq(tracking.get_run(run.id).metrics["loss"], 1.0, "same step: the later timestamp wins")
    mid = _tip(services)
    with _raises(Conflict, "changing a logged param"):
        tracking.log_batch(
            ACTOR, run.id,
            LogBatch(metrics=[MetricIn(key="loss", value=0.0, step=900)], params={"lr": "0.2"}),
        )  # fmt: skip
    _eq(len(tracking.metric_history(run.id, "loss")), 105, "a refused batch writes no points")
    _expect_events(services, mid, [], "a refused batch")
    _eq(tracking.metric_history(run.id, "never-logged"), [], "history of an unknown key")

    ended = tracking.end_run(ACTOR, run.id, RunEnd(status=RunStatus.FAILED))
    _eq(ended.status, RunStatus.FAILED, "end_run status")
    _true(ended.ended_at is not None and ended.ended_at >= ended.started_at, "ended_at")
    other = tracking.create_run(ACTOR, RunCreate(project=project))
    tracking.log_batch(ACTOR, other.id, LogBatch(metrics=[MetricIn(key="loss", value=0.5)]))
    hits = tracking.list_runs("metrics.loss < 0.9", project=project).items
    _eq([r.id for r in hits], [other.id], "list_runs by latest metric (<)")
    hits = tracking.list_runs("metrics.loss >= 1", project=project).items
    _eq([r.id for r in hits], [run.id], "list_runs by latest metric (>=)")
    listed = tracking.list_runs(project=project).items
    _eq([r.id for r in listed], [other.id, run.id], "list_runs newest first")
    events = _expect_events(
        services, since,
        [("run.started", "run", run.id)] + [("run.logged", "run", run.id)] * 3
        + [("run.ended", "run", run.id), ("run.started", "run", other.id),
           ("run.logged", "run", other.id)],
        "run tracking",
    )  # fmt: skip
    _eq(events[1].payload["points"], 300, "run.logged points")
    _eq(events[1].payload["keys"], ["acc", "loss", "ключ"], "run.logged keys")
    _eq(events[4].payload, {"status": "failed"}, "run.ended payload")


def check_run_artifacts(services: Services) -> None:
    """Run artifacts are content-addressed, replaced by path, and escaping paths are refused."""
    run = services.tracking.create_run(ACTOR, RunCreate(project=_name("artifacts")))
    since = _tip(services)
    services.tracking.log_artifact(ACTOR, run.id, "plots/roc ü.png", b"first")
    updated = services.tracking.log_artifact(ACTOR, run.id, "plots/roc ü.png", b"second!")
    digest = services.artifacts.put_bytes(b"second!").digest
    expected = [RunArtifact(path="plots/roc ü.png", digest=digest, size=7)]
    _eq(updated.artifacts, expected, "run artifacts")
    _eq(services.artifacts.get_bytes(digest), b"second!", "artifact bytes")
    _expect_events(services, since, [("run.artifact", "run", run.id)] * 2, "log_artifact")
    since = _tip(services)
    for path in ("../x", "/etc/passwd", "a/../../b", "C:\\x", ""):
        with _raises(InvalidInput, f"artifact path {path!r}"):
            services.tracking.log_artifact(ACTOR, run.id, path, b"x")
    _eq(len(services.tracking.get_run(run.id).artifacts), 1, "refused paths add nothing")
    _expect_events(services, since, [], "refused artifact paths")


# time --------------------------------------------------------------------------------------
def check_timestamps_are_utc(services: Services) -> None:
    """Every timestamp the store returns is timezone-aware UTC and the instant written."""
    before = datetime.now(UTC) - timedelta(seconds=5)
    name = _name("utc")
    _model(services, name)
    version = _register(services, name)
    services.registry.set_alias(ACTOR, name, "champion", 1)
    run = services.tracking.create_run(ACTOR, RunCreate(project=name))
    india = timezone(timedelta(hours=5, minutes=30))
    given = datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=india)
    services.tracking.log_batch(
        ACTOR, run.id, LogBatch(metrics=[MetricIn(key="m", value=1.0, timestamp=given)])
    )
    ended = services.tracking.end_run(ACTOR, run.id, RunEnd())
    created = services.tokens.create_token(
        ACTOR, TokenCreate(name=name, role=Role.VIEWER, expires_in_days=1)
    )
    after = datetime.now(UTC) + timedelta(seconds=5)
    model = services.registry.get_model(name)
    version = services.registry.get_version(version.uri)
    with services.store.read() as rx:
        alias = rx.get_alias(name, "champion")
    _true(alias is not None, "the alias is stored")
    assert alias is not None
    stamps = {
        "model.created_at": model.created_at,
        "model.updated_at": model.updated_at,
        "version.created_at": version.created_at,
        "alias.updated_at": alias.updated_at,
        "run.started_at": ended.started_at,
        "run.ended_at": ended.ended_at,
        "token.created_at": created.token.created_at,
    }
    for what, stamp in stamps.items():
        _utc(stamp, what)
        assert stamp is not None
        _true(before <= stamp <= after, f"{what} {stamp} is not the time of the write")
    _eq(model.aliases, {"champion": 1}, "aliases after the write")
    (point,) = services.tracking.metric_history(run.id, "m")
    _utc(point.timestamp, "metric point timestamp")
    _eq(point.timestamp, given, "metric timestamp is the same instant")
    _eq(point.timestamp.hour, 6, "metric timestamp converted to UTC")
    (token,) = [t for t in services.tokens.list_tokens() if t.id == created.token.id]
    _utc(token.expires_at, "token.expires_at")
    assert token.expires_at is not None
    _true(
        abs(token.expires_at - token.created_at - timedelta(days=1)) < timedelta(seconds=1),
        "token expiry is a day after creation",
    )
    for event in services.audit.list_events(newest_first=True, limit=8).items:
        _utc(event.occurred_at, f"event {event.seq} occurred_at")
        _true(before <= event.occurred_at <= after, f"event {event.seq} occurred_at is now")
    since = services.audit.list_events(since=before, until=after, subject_id=name).items
    _true(len(since) >= 2, "list_events(since=, until=) with aware datetimes")


# the ledger --------------------------------------------------------------------------------
def check_ledger_chain(services: Services) -> None:
    """Each write appends exactly its events, chained by hash, and the chain verifies."""
    name = _name("ledger")
    tracking, reg = services.tracking, services.registry
    since = _tip(services)
    _model(services, name)
    reg.update_model(ACTOR, name, ModelUpdate(team="t"))
    version = _register(services, name)
    reg.update_version(ACTOR, name, 1, VersionUpdate(metrics={"auc": 0.5}))
    reg.set_alias(ACTOR, name, "champion", 1)
    reg.delete_alias(ACTOR, name, "champion")
    run = tracking.create_run(ACTOR, RunCreate(project=name))
    tracking.log_batch(ACTOR, run.id, LogBatch(metrics=[MetricIn(key="a", value=1.0)] * 3))
    tracking.log_artifact(ACTOR, run.id, "a.txt", b"a")
    tracking.end_run(ACTOR, run.id, RunEnd())
    token = services.tokens.create_token(ACTOR, TokenCreate(name=name, role=Role.ADMIN))
    services.tokens.revoke_token(ACTOR, token.token.id)
    events = _expect_events(
        services, since,
        [("model.created", "model", name), ("model.updated", "model", name),
         ("version.registered", "model_version", version.uri),
         ("version.updated", "model_version", version.uri),
         ("alias.set", "model", name), ("alias.deleted", "model", name),
         ("run.started", "run", run.id), ("run.logged", "run", run.id),
         ("run.artifact", "run", run.id), ("run.ended", "run", run.id),
         ("token.created", "token", token.token.id), ("token.revoked", "token", token.token.id)],
        "one of each write",
    )  # fmt: skip
    prev_hash = GENESIS_HASH
    if since > 0:
        prev_hash = services.audit.list_events(after_seq=since - 1, limit=1).items[0].hash
    for event in events:
        _eq(event.prev_hash, prev_hash, f"prev_hash of event {event.seq}")
        recomputed = event_hash(
            seq=event.seq, id=event.id, occurred_at=event.occurred_at, actor=event.actor,
            kind=event.kind, subject_type=event.subject_type, subject_id=event.subject_id,
            payload=event.payload, prev_hash=event.prev_hash,
        )  # fmt: skip
        _eq(event.hash, recomputed, f"hash of event {event.seq}")
        prev_hash = event.hash
    _eq(len({e.id for e in events}), len(events), "event ids are unique")
    report = services.audit.verify()
    _true(report.ok, f"the ledger verifies: {report}")
    _eq(report.events_checked, _tip(services), "verify checks every event")
    _eq(report.first_broken_seq, None, "first_broken_seq of a sound chain")
    kinds = services.audit.list_events(kind="alias.set", subject_id=name).items
    _eq([e.payload["alias"] for e in kinds], ["champion"], "list_events(kind=, subject_id=)")


def _three_events(services: Services) -> list[Event]:
    since = _tip(services)
    names = [_name("tamper") for _ in range(3)]
    for name in names:
        _model(services, name, owner="alice")
    return _expect_events(services, since, [("model.created", "model", n) for n in names], "3")


def check_tampered_event_is_detected(services: Services) -> None:
    """An event row changed behind the store's back is the first broken seq verify reports."""
    events = _three_events(services)
    target = events[1]
    table = Base.metadata.tables["events"]
    for column, value in (("payload", {**target.payload, "owner": "mallory"}), ("actor", "x")):
        with services.store.engine.begin() as connection:
            connection.execute(
                update(table).where(table.c.seq == target.seq).values({column: value})
            )
        try:
            report = services.audit.verify()
            _eq(report.ok, False, f"verify after changing {column}")
            _eq(report.first_broken_seq, target.seq, f"first_broken_seq after changing {column}")
            _eq(report.events_checked, target.seq - 1, "events checked before the break")
            _true(report.reason, "verify gives a reason")
        finally:
            original = target.payload if column == "payload" else target.actor
            with services.store.engine.begin() as connection:
                connection.execute(
                    update(table).where(table.c.seq == target.seq).values({column: original})
                )
        _true(services.audit.verify().ok, f"verify after restoring {column}")


def check_deleted_event_is_detected(services: Services) -> None:
    """A deleted event row breaks the chain at the event after it, and verify says which."""
    events = _three_events(services)
    target = events[1]
    table = Base.metadata.tables["events"]
    with services.store.engine.begin() as connection:
        row = connection.execute(select(table).where(table.c.seq == target.seq)).mappings().one()
        saved = dict(row)
        connection.execute(delete(table).where(table.c.seq == target.seq))
    try:
        report = services.audit.verify()
        _eq(report.ok, False, "verify after deleting an event")
        _eq(report.first_broken_seq, target.seq + 1, "first_broken_seq after a deletion")
        _eq(report.events_checked, target.seq - 1, "events checked before the gap")
        _true(str(target.seq) in (report.reason or ""), f"reason names event {target.seq}")
    finally:
        with services.store.engine.begin() as connection:
            connection.execute(insert(table).values(saved))
    _true(services.audit.verify().ok, "verify after restoring the deleted event")


# tokens ------------------------------------------------------------------------------------
def check_tokens(services: Services) -> None:
    """Tokens authenticate by secret until they expire or are revoked; only a hash is stored."""
    tokens = services.tokens
    since = _tip(services)
    name = _name("token")
    created = tokens.create_token(ACTOR, TokenCreate(name=name, role=Role.DEVELOPER))
    _true(created.secret.startswith("stw_") and len(created.secret) > 40, "secret format")
    token = tokens.authenticate(created.secret)
    _eq((token.id, token.name, token.role, token.revoked), (created.token.id, name,
        Role.DEVELOPER, False), "authenticated token")  # fmt: skip
    _eq(token.expires_at, None, "a token without expiry")
    for secret in (None, "", "stw_wrong", created.secret + "x"):
        with _raises(Unauthenticated, f"authenticate({secret!r})"):
            tokens.authenticate(secret)
    with services.store.read() as rx:
        _true(rx.find_token_by_hash(created.secret) is None, "the secret itself is not stored")

    short = tokens.create_token(
        ACTOR, TokenCreate(name=f"{name}-short", role=Role.VIEWER, expires_in_days=1e-7)
    )  # about 9 ms
    time.sleep(0.05)
    with _raises(Unauthenticated, "an expired token") as caught:
        tokens.authenticate(short.secret)
    _true("expired" in str(caught.value), "the error says the token expired")

    revoked = tokens.revoke_token(ACTOR, created.token.id)
    _eq(revoked.revoked, True, "revoke_token result")
    with _raises(Unauthenticated, "a revoked token"):
        tokens.authenticate(created.secret)
    listed = {t.id: t for t in tokens.list_tokens()}
    _eq(listed[created.token.id].revoked, True, "list_tokens shows the revocation")
    _eq(listed[short.token.id].revoked, False, "other tokens are not revoked")
    events = _expect_events(
        services, since,
        [("token.created", "token", created.token.id), ("token.created", "token", short.token.id),
         ("token.revoked", "token", created.token.id)],
        "token writes",
    )  # fmt: skip
    _eq(events[0].payload, {"name": name, "role": "developer", "expires_at": None}, "payload")
    _true(created.secret not in str([e.payload for e in events]), "no secret in the ledger")


STORE_CHECKS: list[StoreCheck] = [
    check_model_round_trip,
    check_duplicate_model_name,
    check_unknown_is_not_found,
    check_version_numbering,
    check_version_round_trip,
    check_filters,
    check_pagination,
    check_metric_search,
    check_bad_page_token,
    check_aliases,
    check_concurrent_alias_moves,
    check_concurrent_writers,
    check_runs_and_log_batch,
    check_run_artifacts,
    check_timestamps_are_utc,
    check_ledger_chain,
    check_tampered_event_is_detected,
    check_deleted_event_is_detected,
    check_tokens,
]


# running the suite -------------------------------------------------------------------------
def check_metadata_store(
    factory: Callable[[], Services], *, expected_failures: Mapping[str, str] | None = None
) -> None:
    """Run every check on fresh services from ``factory``; raise on the first unexpected result."""
    expected = dict(expected_failures or {})
    for check in STORE_CHECKS:
        services = factory()
        try:
            check(services)
        except AssertionError:
            if check.__name__ not in expected:
                raise
        else:
            if check.__name__ in expected:
                raise AssertionError(
                    f"{check.__name__} passed but is listed as an expected failure "
                    f"({expected[check.__name__]})"
                )
        finally:
            services.close()


def parametrize_with_store_checks(
    factories: Mapping[str, StoreFactory],
    *,
    expected_failures: Mapping[str, Mapping[str, str]] | None = None,
) -> pytest.MarkDecorator:
    """``pytest.mark.parametrize("store_factory, check", ...)``, ids ``<backend>-<check>``.

    ``expected_failures`` maps a backend name to ``{"check_x": "reason"}``; those items are
    strict xfails, so they fail once the backend passes them.
    """
    params = []
    for backend, factory in factories.items():
        xfails = (expected_failures or {}).get(backend, {})
        for check in STORE_CHECKS:
            reason = xfails.get(check.__name__)
            marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
            params.append(
                pytest.param(factory, check, id=f"{backend}-{check.__name__}", marks=marks)
            )
    return pytest.mark.parametrize(("store_factory", "check"), params)


def run_store_check(
    store_factory: StoreFactory, check: StoreCheck, request: pytest.FixtureRequest
) -> None:
    """Call ``store_factory`` with the fixtures its parameters name, run ``check``, close."""
    names = inspect.signature(store_factory).parameters
    services = store_factory(**{n: request.getfixturevalue(n) for n in names})
    try:
        check(services)
    finally:
        services.close()


__all__ = [
    "STORE_CHECKS",
    "StoreCheck",
    "StoreFactory",
    "check_metadata_store",
    "parametrize_with_store_checks",
    "run_store_check",
]


# monitoring, alerts and incidents ----------------------------------------------------------
# Appended after the runner: these checks join STORE_CHECKS at the end of this section.
_T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _deployment(services: Services, prefix: str) -> tuple[str, str]:
    """A model whose v1 is in production and a deployment serving it: (model, deployment)."""
    model = _name(prefix)
    _model(services, model, owner="Zoë Ødegård")
    _register(services, model)
    uri = f"models:/{model}/1"
    with services.store.write(ACTOR) as tx:  # no gate needed: only the store is under test
        tx.update_version(model, 1, {"status": "production"})
        tx.record("version.updated", "model_version", uri, {"status": "production"})
    deployment = f"{model}-live"
    services.deployments.deploy(ACTOR, deployment, DeploymentSpec(model=model, champion=1))
    return model, deployment


def _window(model: str, deployment: str, hour: int, **fields: Any) -> MonitorWindow:
    """The window of traffic ending ``hour`` hours after _T0."""
    end = _T0 + timedelta(hours=hour)
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()), "deployment": deployment, "model_name": model,
        "start": end - timedelta(hours=1), "end": end, "computed_at": end + timedelta(seconds=5),
        "status": WindowStatus.OK, "rows": 1000 + hour, "versions": [1],
        "metrics": {"drift.share_drifted": hour / 10, "slo.p95_ms": 12.5},
        "report": {"drift": {"âge": {"hist": list(range(50)), "note": "décalage ✓"}}},
    }  # fmt: skip
    return MonitorWindow(**{**values, **fields})


_RULE = AlertRule(
    name="drift-share", metric="drift.share_drifted", op=Comparison.GE, threshold=0.3,
    severity=Severity.HIGH,
)  # fmt: skip


def _alert(window: MonitorWindow, rule: AlertRule = _RULE, **fields: Any) -> Alert:
    value = window.metrics.get(rule.metric, 1.0)
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()), "deployment": window.deployment, "model_name": window.model_name,
        "rule": rule, "state": AlertState.FIRING, "severity": rule.severity, "value": value,
        "last_value": value, "window_id": window.id, "fired_at": window.computed_at,
    }  # fmt: skip
    return Alert(**{**values, **fields})


def _incident_values(model: str, deployment: str | None, title: str) -> dict[str, Any]:
    return {
        "model_name": model, "deployment": deployment, "title": title,
        "severity": Severity.HIGH, "opened_at": datetime.now(UTC),
    }  # fmt: skip


def check_monitor_round_trip(services: Services) -> None:
    """A monitor spec is stored per deployment, its revision counts the changes, and each
    change records monitor.configured / monitor.deleted."""
    model, deployment = _deployment(services, "monitor")
    store = services.store
    with store.read() as rx:
        _eq(rx.get_monitor(deployment), None, "get_monitor of a deployment without one")
    spec = MonitorSpec(
        interval_s=600, window_s=1800, thresholds={"âge": 0.2, "income": 0.1},
        rules=[_RULE, AlertRule(name="p95", metric="slo.p95_ms", op=Comparison.GT,
                                threshold=250, for_windows=3)],
    )  # fmt: skip
    since = _tip(services)
    at = datetime.now(UTC)
    with store.write(ACTOR) as tx:
        first = tx.put_monitor(deployment, spec.model_dump(mode="json"), at)
    _eq((first.deployment, first.spec, first.revision), (deployment, spec, 1), "put_monitor")
    _eq((first.updated_at, first.updated_by), (at, ACTOR), "who and when of put_monitor")
    changed = spec.model_copy(update={"enabled": False, "min_rows": 500})
    with store.write(ACTOR) as tx:
        second = tx.put_monitor(deployment, changed.model_dump(), at + timedelta(seconds=1))
    _eq((second.spec, second.revision), (changed, 2), "put_monitor again bumps the revision")
    with store.read() as rx:
        fetched = rx.get_monitor(deployment)
        listed = {m.deployment: m for m in rx.list_monitors()}
    _eq(fetched, second, "get_monitor after put_monitor")
    _eq(listed.get(deployment), second, "list_monitors holds the deployment's monitor")
    assert fetched is not None
    _utc(fetched.updated_at, "monitor.updated_at")
    with store.write(ACTOR) as tx:
        tx.delete_monitor(deployment)
    with store.read() as rx:
        _eq(rx.get_monitor(deployment), None, "get_monitor after delete_monitor")
    events = _expect_events(
        services, since,
        [("monitor.configured", "deployment", deployment)] * 2
        + [("monitor.deleted", "deployment", deployment)],
        "monitor writes",
    )  # fmt: skip
    _eq(
        events[0].payload,
        {"model": model, "revision": 1, "spec": spec.model_dump(mode="json")},
        "monitor.configured payload",
    )
    _eq(events[2].payload, {"model": model, "revision": 2}, "monitor.deleted payload")

    since = _tip(services)
    bad_specs = [
        ({**spec.model_dump(mode="json"), "interval_s": 1}, "spec.interval_s"),
        ({**spec.model_dump(), "rules": [_RULE.model_copy(update={"threshold": float("nan")})]},
         "spec.rules.0.threshold"),
    ]  # fmt: skip
    for bad, field in bad_specs:
        with _raises(InvalidInput, f"put_monitor({field}=...)") as caught, store.write(ACTOR) as tx:
            tx.put_monitor(deployment, bad, at)
        assert caught.value is not None
        _eq(caught.value.details.get("field"), field, "InvalidInput names the field")
    with _raises(NotFound, "delete_monitor without a monitor"), store.write(ACTOR) as tx:
        tx.delete_monitor(deployment)
    _expect_events(services, since, [], "refused monitor writes")
    with store.write(ACTOR) as tx:
        again = tx.put_monitor(deployment, spec.model_dump(), at)
    _eq(again.revision, 1, "a monitor configured again after a deletion starts at revision 1")


def check_monitoring_unknown_is_not_found(services: Services) -> None:
    """Unknown deployments, windows, alerts, incidents and models raise NotFound naming how to
    list them, and record nothing."""
    model, deployment = _deployment(services, "monitor-missing")
    window = _window(model, deployment, 1)
    store, missing, nobody = services.store, _name("missing"), str(uuid.uuid4())
    with store.write(ACTOR) as tx:
        tx.add_window(window)
    since = _tip(services)
    reads: list[tuple[str, Callable[[Any], object], str]] = [
        ("get_monitor", lambda s: s.get_monitor(missing), "steward deployments"),
        ("list_windows", lambda s: s.list_windows(missing), "steward deployments"),
        ("get_window", lambda s: s.get_window(nobody), "steward monitor windows"),
        ("get_incident", lambda s: s.get_incident(987_654_321), "steward incident list"),
    ]
    writes: list[tuple[str, Callable[[Any], object], str]] = [
        ("put_monitor", lambda s: s.put_monitor(missing, {}, _T0), "steward deployments"),
        ("delete_monitor", lambda s: s.delete_monitor(missing), "steward deployments"),
        ("add_window", lambda s: s.add_window(_window(model, missing, 1, model_name=model)),
         "steward deployments"),
        ("add_alert of an unknown window",
         lambda s: s.add_alert(_alert(window, window_id=nobody)), "steward monitor windows"),
        ("update_alert", lambda s: s.update_alert(nobody, {"last_value": 1.0}),
         "steward alert list"),
        ("update_incident",
         lambda s: s.update_incident(987_654_321, {"title": "x"}, kind="incident.noted",
                                     payload={}), "steward incident list"),
        ("create_incident of an unknown model",
         lambda s: s.create_incident(_incident_values(missing, None, "x")), "steward models"),
        ("create_incident on an unknown deployment",
         lambda s: s.create_incident(_incident_values(model, missing, "x")),
         "steward deployments"),
    ]  # fmt: skip
    for what, call, hint in reads:
        with _raises(NotFound, what) as caught, store.read() as rx:
            call(rx)
        _true(hint in str(caught.value), f"the NotFound of {what} says `{hint}`")
    for what, call, hint in writes:
        with _raises(NotFound, what) as caught, store.write(ACTOR) as tx:
            call(tx)
        _true(hint in str(caught.value), f"the NotFound of {what} says `{hint}`")
    with store.write(ACTOR) as tx:
        alert = tx.add_alert(_alert(window))
    since = _tip(services)
    with _raises(NotFound, "update_alert to an unknown incident"), store.write(ACTOR) as tx:
        tx.update_alert(alert.id, {"incident_id": 987_654_321})
    with store.read() as rx:
        _eq(rx.active_incident(missing), None, "active_incident of an unknown model")
        _eq(rx.list_alerts(incident_id=987_654_321), [], "list_alerts of an unknown incident")
    _expect_events(services, since, [], "refused monitoring writes")


def check_monitor_windows(services: Services) -> None:
    """Windows come back as written, newest (latest end) first, bounded by since <= end <
    until and by limit; monitor.window records the numbers but not the report."""
    model, deployment = _deployment(services, "windows")
    windows = {hour: _window(model, deployment, hour) for hour in (3, 1, 4, 0, 2)}
    store = services.store
    since = _tip(services)
    with store.write(ACTOR) as tx:
        for window in windows.values():
            _eq(tx.add_window(window), window, "add_window returns the window")
    events = _expect_events(
        services, since, [("monitor.window", "deployment", deployment)] * 5, "add_window"
    )
    first = windows[3]
    _eq(
        events[0].payload,
        {"window_id": first.id, "model": model,
         **first.model_dump(mode="json", include={"start", "end", "status", "rows", "metrics"})},
        "monitor.window payload",
    )  # fmt: skip

    def hours(**bounds: Any) -> list[int]:
        with store.read() as rx:
            found = rx.list_windows(deployment, **bounds)
        return [int((w.end - _T0) / timedelta(hours=1)) for w in found]

    _eq(hours(), [4, 3, 2, 1, 0], "list_windows, newest first")
    _eq(hours(limit=2), [4, 3], "list_windows(limit=2)")
    _eq(hours(since=_T0 + timedelta(hours=2)), [4, 3, 2], "list_windows(since=): end >= since")
    _eq(hours(until=_T0 + timedelta(hours=2)), [1, 0], "list_windows(until=): end < until")
    india = timezone(timedelta(hours=5, minutes=30))
    bounded = hours(since=(_T0 + timedelta(hours=1)).astimezone(india),
                    until=_T0 + timedelta(hours=3), limit=5)  # fmt: skip
    _eq(bounded, [2, 1], "list_windows(since=, until=) with aware datetimes of any zone")
    with store.read() as rx:
        fetched = rx.get_window(first.id)
    _eq(fetched, first, "get_window after add_window")
    for what, stamp in (("start", fetched.start), ("end", fetched.end)):
        _utc(stamp, f"window.{what}")

    since = _tip(services)
    failed = _window(model, deployment, 5, status=WindowStatus.FAILED, rows=0, metrics={},
                     report={"score": float("nan"), "nested": [float("inf"), 1.5]},
                     error="reference sample missing")  # fmt: skip
    with store.write(ACTOR) as tx:
        stored = tx.add_window(failed)
    with store.read() as rx:
        fetched = rx.get_window(failed.id)
    _eq(fetched.report, {"score": None, "nested": [None, 1.5]}, "NaN and inf in a report")
    _eq(fetched, stored, "add_window returns the window as stored")
    _eq((fetched.status, fetched.error), (WindowStatus.FAILED, failed.error), "failed window")
    since = _tip(services)
    refused: list[tuple[type[StewardError], MonitorWindow, str]] = [
        (InvalidInput, _window(model, deployment, 6, metrics={"drift.x": float("nan")}),
         "a NaN metric"),
        (InvalidInput, _window(model, deployment, 6, model_name=_name("other")),
         "another model than the deployment's"),
        (AlreadyExists, _window(model, deployment, 6, id=first.id), "a taken window id"),
    ]  # fmt: skip
    for kind, window, what in refused:
        with _raises(kind, f"add_window with {what}"), store.write(ACTOR) as tx:
            tx.add_window(window)
    _eq(hours(), [5, 4, 3, 2, 1, 0], "refused windows are not stored")
    _expect_events(services, since, [], "refused windows")


def _with_window(services: Services, prefix: str) -> tuple[str, str, MonitorWindow]:
    """A deployment with one monitor window stored: (model, deployment, window)."""
    model, deployment = _deployment(services, prefix)
    window = _window(model, deployment, 5)
    with services.store.write(ACTOR) as tx:
        tx.add_window(window)
    return model, deployment, window


_P95 = AlertRule(name="p95", metric="slo.p95_ms", op=Comparison.GT, threshold=10)


def check_alert_lifecycle(services: Services) -> None:
    """An alert fires, updates, joins an incident and resolves, each change but an update
    recording its event; a rule has one firing alert at a time per deployment."""
    model, deployment, window = _with_window(services, "alerts")
    store = services.store
    since = _tip(services)
    with store.write(ACTOR) as tx:
        drift = tx.add_alert(_alert(window))
    with _raises(Conflict, "a second firing alert of one rule"), store.write(ACTOR) as tx:
        tx.add_alert(_alert(window))
    with store.write(ACTOR) as tx:
        updated = tx.update_alert(drift.id, {"last_value": 0.9})
        incident = tx.create_incident(_incident_values(model, deployment, "drift"))
        joined = tx.update_alert(drift.id, {"incident_id": incident.id})
        resolved = tx.update_alert(drift.id, {"state": AlertState.RESOLVED})
    _eq(updated, drift.model_copy(update={"last_value": 0.9}), "update_alert(last_value)")
    _eq(joined.incident_id, incident.id, "update_alert(incident_id)")
    _eq(resolved.state, AlertState.RESOLVED, "update_alert(state=resolved)")
    _utc(resolved.resolved_at, "resolving without resolved_at resolves it now")
    with store.read() as rx:
        _eq(rx.list_alerts(deployment=deployment), [resolved], "the alert as stored")
    events = _expect_events(
        services, since,
        [("alert.fired", "deployment", deployment),
         ("incident.opened", "incident", str(incident.id)),
         ("alert.joined", "deployment", deployment),
         ("alert.resolved", "deployment", deployment)],
        "alert writes",
    )  # fmt: skip
    _eq(
        events[0].payload,
        {"alert_id": drift.id, "model": model, "rule": "drift-share",
         "metric": "drift.share_drifted", "op": ">=", "threshold": 0.3, "value": drift.value,
         "severity": "high", "window_id": window.id},
        "alert.fired payload",
    )  # fmt: skip
    _eq(events[2].payload, {"alert_id": drift.id, "incident_id": incident.id, "model": model,
        "rule": "drift-share"}, "alert.joined payload")  # fmt: skip
    _eq(events[3].payload["last_value"], 0.9, "alert.resolved payload")

    since = _tip(services)
    refusals: list[tuple[type[StewardError], dict[str, Any]]] = [
        (Conflict, {"state": AlertState.FIRING}),
        (InvalidInput, {"value": 3.0}),
        (InvalidInput, {"last_value": float("inf")}),
        (InvalidInput, {"state": "snoozed"}),
    ]
    for kind, values in refusals:
        with _raises(kind, f"update_alert({values})"), store.write(ACTOR) as tx:
            tx.update_alert(drift.id, values)
    _expect_events(services, since, [], "refused alert updates")
    with store.write(ACTOR) as tx:  # resolved: the rule may fire again
        tx.add_alert(_alert(window, incident_id=incident.id))
    _expect_events(
        services, since,
        [("alert.fired", "deployment", deployment), ("alert.joined", "deployment", deployment)],
        "add_alert of an alert already in an incident",
    )  # fmt: skip


def check_alert_filters(services: Services) -> None:
    """list_alerts filters by deployment, model, state and incident, newest fired first."""
    model, deployment, window = _with_window(services, "alert-filters")
    store = services.store
    later = window.computed_at + timedelta(minutes=1)
    with store.write(ACTOR) as tx:
        incident = tx.create_incident(_incident_values(model, deployment, "filters"))
        drift = tx.add_alert(_alert(window, state=AlertState.RESOLVED, resolved_at=later))
        slow = tx.add_alert(_alert(window, _P95, fired_at=later, incident_id=incident.id))

    def ids(**filters: Any) -> list[str]:
        with store.read() as rx:
            return [a.id for a in rx.list_alerts(**filters)]

    _eq(ids(deployment=deployment), [slow.id, drift.id], "list_alerts, newest first")
    _eq(ids(model_name=model, state=AlertState.FIRING), [slow.id], "list_alerts(state=firing)")
    _eq(ids(deployment=deployment, state=AlertState.RESOLVED), [drift.id], "state=resolved")
    _eq(ids(incident_id=incident.id), [slow.id], "list_alerts(incident_id=)")
    _eq(ids(deployment=deployment, limit=1), [slow.id], "list_alerts(limit=1)")
    _eq(ids(model_name=_name("nobody")), [], "list_alerts of another model")
    with store.read() as rx:
        stored = rx.list_alerts(deployment=deployment)
    _eq(stored, [slow, drift], "alerts come back as added")
    for alert in stored:
        _utc(alert.fired_at, "alert.fired_at")


def check_incident_numbering(services: Services) -> None:
    """Incidents are numbered by the store one after another, and a model has at most one
    active incident."""
    store = services.store
    models = [_deployment(services, "incident") for _ in range(3)]
    since = _tip(services)
    opened = []
    for number, (model, deployment) in enumerate(models):
        with store.write(ACTOR) as tx:
            values = _incident_values(model, deployment, f"Dérive {number}")
            opened.append(tx.create_incident(values))
    first = opened[0].id
    _eq([i.id for i in opened], [first, first + 1, first + 2], "incident numbers")
    events = _expect_events(
        services, since, [("incident.opened", "incident", str(i.id)) for i in opened], "opened"
    )
    (model, deployment), incident = models[0], opened[0]
    _eq(events[0].payload, {"model": model, "deployment": deployment, "severity": "high",
        "title": "Dérive 0", "owner": "Zoë Ødegård"}, "incident.opened payload")  # fmt: skip
    _eq((incident.state, incident.owner, incident.opened_by), (IncidentState.OPEN,
        "Zoë Ødegård", ACTOR), "defaults of a new incident")  # fmt: skip
    _eq(incident.updated_at, incident.opened_at, "updated_at of a new incident")
    with store.read() as rx:
        _eq(rx.get_incident(incident.id), incident, "get_incident after create_incident")
        _eq(rx.active_incident(model), incident, "active_incident")
        listed = rx.list_incidents(model_name=model)
    _eq(listed, [incident], "list_incidents(model_name=)")
    _utc(listed[0].opened_at, "incident.opened_at")

    since = _tip(services)
    with _raises(Conflict, "a second active incident") as caught, store.write(ACTOR) as tx:
        tx.create_incident(_incident_values(model, None, "again"))
    assert caught.value is not None
    _eq(caught.value.details.get("incident_id"), incident.id, "Conflict names the active one")
    elsewhere = _incident_values(model, models[1][1], "x")
    with _raises(InvalidInput, "on another model's deployment"), store.write(ACTOR) as tx:
        tx.create_incident(elsewhere)
    _expect_events(services, since, [], "refused incidents")


def check_incident_updates(services: Services) -> None:
    """update_incident applies its values and records the event it is given; a resolved
    incident lets the model open another, and cannot be made active again beside it."""
    store = services.store
    model, deployment = _deployment(services, "incident-update")
    with store.write(ACTOR) as tx:
        incident = tx.create_incident(_incident_values(model, deployment, "latence"))
    since = _tip(services)
    with _raises(InvalidInput, "update_incident of a fixed field"), store.write(ACTOR) as tx:
        tx.update_incident(incident.id, {"model_name": "x"}, kind="incident.noted", payload={})
    at = datetime.now(UTC)
    with store.write(ACTOR) as tx:
        mitigated = tx.update_incident(
            incident.id, {"state": IncidentState.MITIGATED, "mitigated_at": at,
                          "postmortem": {"summary": "Résumé ✓"}},
            kind="incident.mitigated", payload={"action": "rollback", "at": at},
        )  # fmt: skip
    _eq((mitigated.state, mitigated.mitigated_at, mitigated.postmortem),
        (IncidentState.MITIGATED, at, {"summary": "Résumé ✓"}), "update_incident")  # fmt: skip
    _true(mitigated.updated_at > incident.updated_at, "updated_at defaults to the update's time")
    with store.read() as rx:
        _eq(rx.get_incident(incident.id), mitigated, "get_incident after update_incident")
        _eq(rx.active_incident(model), mitigated, "a mitigated incident is still active")
    with store.write(ACTOR) as tx:
        tx.update_incident(incident.id, {"state": IncidentState.RESOLVED, "resolved_at": at},
                           kind="incident.resolved", payload={"reason": None})  # fmt: skip
    with store.write(ACTOR) as tx:  # resolved: the model may open another one
        later = tx.create_incident(_incident_values(model, deployment, "later"))
    events = _expect_events(
        services, since,
        [("incident.mitigated", "incident", str(incident.id)),
         ("incident.resolved", "incident", str(incident.id)),
         ("incident.opened", "incident", str(later.id))],
        "incident updates",
    )  # fmt: skip
    _eq(events[0].payload["at"], mitigated.model_dump(mode="json")["mitigated_at"], "payload")
    with _raises(Conflict, "reopening beside an active one"), store.write(ACTOR) as tx:
        tx.update_incident(incident.id, {"state": IncidentState.OPEN}, kind="x.y", payload={})
    with store.read() as rx:
        _eq(rx.active_incident(model), later, "active_incident after a resolution")
        _eq([i.id for i in rx.list_incidents(model_name=model)], [later.id, incident.id],
            "list_incidents, newest first")  # fmt: skip
        _eq([i.id for i in rx.list_incidents(model_name=model, state=IncidentState.RESOLVED)],
            [incident.id], "list_incidents(state=)")  # fmt: skip
        _eq(len(rx.list_incidents(limit=1)), 1, "list_incidents(limit=1)")
        report = rx.verify_ledger()
    _true(report.ok, f"the ledger verifies after incident writes: {report}")


def _race(call: Callable[[int], Any], workers: int) -> list[Any]:
    """``call(0)`` ... ``call(workers - 1)`` from as many threads, released together."""
    barrier = threading.Barrier(workers, timeout=60)

    def run(i: int) -> Any:
        barrier.wait()
        return call(i)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, range(workers)))


def check_concurrent_incidents_and_monitors(services: Services) -> None:
    """Writers racing to open an incident of one model open exactly one; racing on different
    models, they get distinct consecutive numbers; racing to configure a monitor, each gets its
    own revision."""
    store = services.store
    models = [_deployment(services, "incident-race") for _ in range(4)]
    model, deployment = models[0]
    since = _tip(services)

    def open_same(i: int) -> str:
        try:
            with store.write(ACTOR) as tx:
                tx.create_incident(_incident_values(model, deployment, f"race {i}"))
        except Conflict:
            return "refused"
        return "opened"

    def open_own(i: int) -> int:
        with store.write(ACTOR) as tx:
            return tx.create_incident(_incident_values(*models[i + 1], f"own {i}")).id

    def configure(i: int) -> int:
        with store.write(ACTOR) as tx:
            return tx.put_monitor(deployment, {"min_rows": 10 + i}, _T0).revision

    outcomes = sorted(_race(open_same, 4))
    _eq(outcomes, ["opened", "refused", "refused", "refused"], "racing on one model")
    numbers = sorted(_race(open_own, 3))
    _eq(numbers, list(range(numbers[0], numbers[0] + 3)), "racing on different models")
    _eq(sorted(_race(configure, 4)), [1, 2, 3, 4], "racing monitor configurations")
    with store.read() as rx:
        active = rx.active_incident(model)
        monitor = rx.get_monitor(deployment)
    _true(active is not None and active.id == numbers[0] - 1, "the race's incident is active")
    _true(monitor is not None and monitor.revision == 4, "the last configuration is stored")
    kinds = sorted(e.kind for e in _events_since(services, since))
    _eq(kinds, ["incident.opened"] * 4 + ["monitor.configured"] * 4, "events of the races")
    _true(services.audit.verify().ok, "the ledger verifies after the races")


STORE_CHECKS.extend(
    [
        check_monitor_round_trip,
        check_monitoring_unknown_is_not_found,
        check_monitor_windows,
        check_alert_lifecycle,
        check_alert_filters,
        check_incident_numbering,
        check_incident_updates,
        check_concurrent_incidents_and_monitors,
    ]
)


# metric definitions and experiments ----------------------------------------------------------
# Appended after the runner: these checks join STORE_CHECKS at the end of this section.
def _ab_deployment(services: Services, prefix: str) -> tuple[str, str, str]:
    """A model with v1 in production and v2 approved, deployed three ways: (model, a
    champion-only deployment, a deployment splitting units 50/50 between v1 and v2)."""
    model, plain = _deployment(services, prefix)
    _register(services, model)
    with services.store.write(ACTOR) as tx:
        tx.update_version(model, 2, {"status": "approved"})
        tx.record("version.updated", "model_version", f"models:/{model}/2", {"status": "approved"})
    split = f"{model}-ab"
    spec = DeploymentSpec(model=model, champion=1, split={1: 0.5, 2: 0.5}, unit_key="user_id")
    services.deployments.deploy(ACTOR, split, spec)
    return model, plain, split


def _metric(name: str, **fields: Any) -> MetricDefinition:
    values: dict[str, Any] = {
        "name": name, "source": MetricSource.OUTCOME, "event": "purchase",
        "aggregation": Aggregation.SUM, "created_at": datetime.now(UTC), "created_by": ACTOR,
    }  # fmt: skip
    return MetricDefinition(**{**values, **fields})


def _experiment(
    name: str, model: str, deployment: str, metrics: list[str], **fields: Any
) -> Experiment:
    roles = [MetricRole.PRIMARY, MetricRole.SECONDARY, MetricRole.GUARDRAIL]
    items = [
        ExperimentMetric(metric=metric, role=roles[min(i, 2)],
                         tolerance=0.02 if i >= 2 else None)
        for i, metric in enumerate(metrics)
    ]  # fmt: skip
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "name": name, "deployment": deployment, "model_name": model, "control": 1,
        "variants": [1, 2], "weights": {1: 0.5, 2: 0.5}, "salt": deployment, "metrics": items,
        "hypothesis": "Le nouveau modèle convertit mieux ✓", "start": now, "created_at": now,
        "created_by": ACTOR,
    }  # fmt: skip
    return Experiment(**{**values, **fields})


def _define(services: Services, *metrics: MetricDefinition) -> None:
    with services.store.write(ACTOR) as tx:
        for metric in metrics:
            tx.put_metric(metric)


def check_metric_definitions(services: Services) -> None:
    """A metric comes back as defined; a redefinition keeps who and when it was first defined;
    each change records metric.defined, an unchanged definition records nothing."""
    store, name = services.store, _name("revenue")
    india = timezone(timedelta(hours=5, minutes=30))
    first = _metric(name, description="Revenu par unité — €", aggregation=Aggregation.SUM,
                    covariate="purchase", created_at=datetime.now(india))  # fmt: skip
    since = _tip(services)
    with store.write(ACTOR) as tx:
        stored = tx.put_metric(first)
    with store.read() as rx:
        fetched = rx.get_metric(name)
        listed = {m.name: m for m in rx.list_metrics()}
    _eq(fetched, stored, "get_metric after put_metric")
    _eq(listed.get(name), stored, "list_metrics holds the metric")
    _eq(fetched.model_dump(exclude={"created_at"}), first.model_dump(exclude={"created_at"}),
        "metric fields")  # fmt: skip
    _eq(fetched.created_at, first.created_at, "created_at (any zone, stored as the same instant)")
    _utc(fetched.created_at, "metric.created_at")
    with store.write(ACTOR) as tx:
        _eq(tx.put_metric(first), stored, "put_metric of an unchanged definition")
    changes = {"aggregation": Aggregation.ANY, "covariate": None,
               "created_at": first.created_at + timedelta(hours=1)}  # fmt: skip
    later = first.model_copy(update=changes)
    with store.write(ACTOR) as tx:
        redefined = tx.put_metric(later)
    _eq(redefined.aggregation, Aggregation.ANY, "a redefinition changes the definition")
    _eq((redefined.created_at, redefined.created_by), (stored.created_at, ACTOR),
        "a redefinition keeps when and by whom the metric was first defined")  # fmt: skip
    events = _expect_events(
        services, since, [("metric.defined", "metric", name)] * 2, "put_metric (one unchanged)"
    )
    _eq(
        events[0].payload,
        {"description": first.description, "source": "outcome", "event": "purchase",
         "aggregation": "sum", "covariate": "purchase", "redefined": False},
        "metric.defined payload",
    )  # fmt: skip
    _eq((events[1].payload["aggregation"], events[1].payload["redefined"]), ("any", True),
        "metric.defined payload of a redefinition")  # fmt: skip
    since = _tip(services)
    with _raises(NotFound, "get_metric of an unknown metric") as caught, store.read() as rx:
        rx.get_metric(_name("missing"))
    _true("steward metric" in str(caught.value), "the NotFound says how to define or list them")
    with _raises(InvalidInput, "put_metric with a naive time"), store.write(ACTOR) as tx:
        tx.put_metric(_metric(_name("naive"), created_at=datetime(2026, 1, 1)))
    _expect_events(services, since, [], "refused metric reads and writes")


def check_experiment_round_trip(services: Services) -> None:
    """An experiment comes back as created, listed by deployment and state; update_experiment
    records the kind and payload it is given; a decided experiment stays decided."""
    model, _, deployment = _ab_deployment(services, "experiment")
    metrics = [_name("conversion"), _name("revenue"), _name("latency")]
    _define(services, *(_metric(name) for name in metrics))
    store, name = services.store, _name("checkout")
    since = _tip(services)
    created = _experiment(name, model, deployment, metrics, mde=0.02, planned_units=20_000)
    with store.write(ACTOR) as tx:
        stored = tx.create_experiment(created)
    _eq(stored, created, "create_experiment returns the experiment")
    with store.read() as rx:
        fetched = rx.get_experiment(name)
        by_deployment = rx.list_experiments(deployment=deployment)
        running = [e.name for e in rx.list_experiments(state=ExperimentState.RUNNING)]
        decided = [e.name for e in rx.list_experiments(state=ExperimentState.DECIDED)]
    _eq(fetched, created, "get_experiment after create_experiment")
    _eq(by_deployment, [created], "list_experiments(deployment=)")
    _true(name in running and name not in decided, "list_experiments(state=)")
    for what in ("start", "created_at"):
        _utc(getattr(fetched, what), f"experiment.{what}")
    (event,) = _expect_events(
        services, since, [("experiment.created", "experiment", name)], "create_experiment"
    )
    _eq(
        event.payload,
        {"deployment": deployment, "model": model, "control": 1, "variants": [1, 2],
         "metrics": [m.model_dump(mode="json") for m in created.metrics], "method": "fixed",
         "planned_units": 20_000},
        "experiment.created payload",
    )  # fmt: skip

    since = _tip(services)
    india = timezone(timedelta(hours=5, minutes=30))
    decision = Decision(action=DecisionAction.SHIP, variant=2, reason="v2 wins",
                        decided_at=datetime.now(india), decided_by=ACTOR)  # fmt: skip
    end = datetime.now(UTC)
    fixed = "update_experiment of a fixed field"
    with _raises(InvalidInput, fixed) as caught, store.write(ACTOR) as tx:
        tx.update_experiment(name, {"variants": [1]}, kind="experiment.x", payload={})
    assert caught.value is not None
    _eq(caught.value.details.get("field"), "variants", "InvalidInput names the fixed field")
    with store.write(ACTOR) as tx:
        after = tx.update_experiment(
            name, {"state": ExperimentState.DECIDED, "decision": decision, "end": end},
            kind="experiment.decided", payload={"action": "ship", "variant": 2},
        )  # fmt: skip
    with store.read() as rx:
        fetched = rx.get_experiment(name)
    _eq(fetched, after, "get_experiment after update_experiment")
    _eq((fetched.state, fetched.end), (ExperimentState.DECIDED, end), "state and end")
    assert fetched.decision is not None
    _eq(fetched.decision.decided_at, decision.decided_at, "decided_at, the same instant")
    _utc(fetched.decision.decided_at, "decision.decided_at")
    _eq(fetched.metrics, created.metrics, "the plan is unchanged by a decision")
    with _raises(Conflict, "a decided experiment running again"), store.write(ACTOR) as tx:
        tx.update_experiment(name, {"state": ExperimentState.RUNNING}, kind="x", payload={})
    with _raises(NotFound, "update_experiment of an unknown one"), store.write(ACTOR) as tx:
        tx.update_experiment(_name("missing"), {"hypothesis": "h"}, kind="x", payload={})
    (event,) = _expect_events(
        services, since, [("experiment.decided", "experiment", name)], "update_experiment"
    )
    _eq(event.payload, {"action": "ship", "variant": 2}, "the payload update_experiment is given")


def check_experiment_rules(services: Services) -> None:
    """Unknown deployment or metric: NotFound naming which; a taken name: AlreadyExists; a
    second running experiment on a deployment: Conflict; variants other than the deployment's:
    InvalidInput naming them; a metric a running experiment uses cannot be redefined. Refusals
    record nothing."""
    model, plain, deployment = _ab_deployment(services, "experiment-rules")
    metrics = [_name("conversion"), _name("revenue")]
    _define(services, *(_metric(name) for name in metrics))
    store, name = services.store, _name("rules")
    with store.write(ACTOR) as tx:
        tx.create_experiment(_experiment(name, model, deployment, metrics))
    since = _tip(services)
    unknown = _name("missing")
    refused: list[tuple[type[StewardError], Experiment, str, str]] = [
        (NotFound, _experiment(_name("e"), model, unknown, metrics), "deployment", unknown),
        (NotFound, _experiment(_name("e"), model, deployment, [metrics[0], unknown]),
         "metrics.1.metric", unknown),
        (AlreadyExists, _experiment(name, model, deployment, metrics), "name", name),
        (Conflict, _experiment(_name("e"), model, deployment, metrics), "deployment", name),
        (InvalidInput, _experiment(_name("e"), model, plain, metrics), "deployment", plain),
        (InvalidInput, _experiment(_name("e"), _name("other"), deployment, metrics),
         "model_name", model),
        (InvalidInput, _experiment(_name("e"), model, deployment, metrics, variants=[1, 2, 3]),
         "variants", "[1, 2]"),
        (InvalidInput, _experiment(_name("e"), model, deployment, metrics * 2), "metrics.2.metric",
         metrics[0]),
    ]  # fmt: skip
    for kind, experiment, field, named in refused:
        what = f"create_experiment refused on {field}"
        with _raises(kind, what) as caught, store.write(ACTOR) as tx:
            tx.create_experiment(experiment)
        assert caught.value is not None
        _eq(caught.value.details.get("field"), field, f"{what}: the field")
        _true(named in str(caught.value), f"{what}: the message names {named!r}")
    redefine = "redefining a metric a running experiment uses"
    with _raises(Conflict, redefine) as caught, store.write(ACTOR) as tx:
        tx.put_metric(_metric(metrics[1], aggregation=Aggregation.MEAN))
    _true(name in str(caught.value), "the Conflict names the running experiment")
    _expect_events(services, since, [], "refused experiment writes")
    with store.write(ACTOR) as tx:
        tx.update_experiment(name, {"state": ExperimentState.DECIDED}, kind="experiment.ended",
                             payload={})  # fmt: skip
        tx.put_metric(_metric(metrics[1], aggregation=Aggregation.MEAN))
        second = tx.create_experiment(_experiment(_name("again"), model, deployment, metrics))
    _eq(second.state, ExperimentState.RUNNING, "a new experiment once the first is decided")
    canary = f"{model}-canary"  # a canary deployment: its champion and its canary
    services.deployments.deploy(
        ACTOR, canary, DeploymentSpec(model=model, champion=1, canary=2, canary_share=0.1)
    )
    with store.write(ACTOR) as tx:
        on_canary = tx.create_experiment(
            _experiment(_name("canary"), model, canary, metrics, weights={1: 0.9, 2: 0.1})
        )
    _eq(on_canary.variants, [1, 2], "an experiment on a canary compares champion and canary")


def check_concurrent_experiments(services: Services) -> None:
    """Writers racing to start experiments on one deployment start exactly one; racing to take
    one name on different deployments, exactly one takes it."""
    model, _, deployment = _ab_deployment(services, "experiment-race")
    others = [_ab_deployment(services, "experiment-race")[::2] for _ in range(3)]
    metrics = [_name("conversion")]
    _define(services, _metric(metrics[0]))
    store, taken = services.store, _name("taken")
    since = _tip(services)

    def start(i: int) -> str:
        try:
            with store.write(ACTOR) as tx:
                tx.create_experiment(_experiment(_name(f"race-{i}"), model, deployment, metrics))
        except Conflict:
            return "refused"
        return "started"

    def take(i: int) -> str:
        where_model, where = others[i]
        try:
            with store.write(ACTOR) as tx:
                tx.create_experiment(_experiment(taken, where_model, where, metrics))
        except AlreadyExists:
            return "refused"
        return "created"

    _eq(sorted(_race(start, 4)), ["refused", "refused", "refused", "started"], "one deployment")
    _eq(sorted(_race(take, 3)), ["created", "refused", "refused"], "one name")
    kinds = [e.kind for e in _events_since(services, since)]
    _eq(kinds, ["experiment.created"] * 2, "events of the races")
    with store.read() as rx:
        _eq(len(rx.list_experiments(deployment=deployment, state=ExperimentState.RUNNING)), 1,
            "running experiments on the raced deployment")  # fmt: skip
    _true(services.audit.verify().ok, "the ledger verifies after the races")


STORE_CHECKS.extend(
    [
        check_metric_definitions,
        check_experiment_round_trip,
        check_experiment_rules,
        check_concurrent_experiments,
    ]
)
