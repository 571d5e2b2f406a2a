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
from steward.domain.ledger import GENESIS_HASH, event_hash
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
    sample = reg.upload_artifact(b"a,b\n1,2\n")
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
