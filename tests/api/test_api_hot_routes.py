"""The hot lane (`steward.api.hot_routes`) answers exactly as FastAPI's routes do.

Each request goes to the app as served (hot lane first) and to the same app's FastAPI stack
alone; the answers must match. The app is served both ways it can be: through ASGI, and by a
real server as `steward server` runs it, where the protocol writes the lane's answers itself
(`StewardApi.direct_route`). The lane must also really answer the plain cases itself (else
the comparison would pass by always falling back), and leave every refusal it cannot
reproduce exactly to FastAPI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send
from tests.api.conftest import ApiEnv, build_env, seed, serve_live
from tests.conftest import make_services

from steward.api import hot_routes
from steward.api.app import StewardApi
from steward.domain.entities import ArtifactRef
from steward.domain.enums import Role
from steward.schemas.auth import TokenCreate
from steward.schemas.registry import VersionCreate
from steward.schemas.tracking import RunCreate
from steward.store.artifacts.store import FsspecArtifactStore
from steward.store.base import ReadWouldWait
from steward.testing.postgres import temporary_schema

V1 = "/api/v1"


class Lanes:
    """The app as served (``served``: through ASGI, or by a live server whose protocol writes
    the lane's answers), FastAPI alone on the same app, and counts of fallbacks and of answers
    the protocol wrote itself."""

    def __init__(self, api: ApiEnv, served: httpx.Client, way: str) -> None:
        app = api.app
        assert isinstance(app, StewardApi)
        self.api = api
        self.way = way
        self.fallbacks = self.direct = 0
        fastapi_alone = functools.partial(FastAPI.__call__, app)

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            self.fallbacks += 1
            await fastapi_alone(scope, receive, send)

        def counted_direct_route(scope: Scope) -> Any:
            handler = StewardApi.direct_route(app, scope)
            self.direct += handler is not None
            return handler

        app._hot.app = counted
        app.direct_route = counted_direct_route  # type: ignore[method-assign]
        self.served = served
        self.plain = TestClient(fastapi_alone, raise_server_exceptions=False)
        for role in ("viewer", "developer"):  # tokens verified once, as a caller's first call
            self.served.get(f"{V1}/models", headers=api.headers(role))
        self.fallbacks = self.direct = 0

    def answered_directly(self, calls: int) -> bool:
        """Whether the protocol wrote the answers of the last ``calls`` hot calls itself (as it
        must when served live) or none of them (through ASGI)."""
        return self.direct == (calls if self.way == "direct" else 0)

    def both(self, method: str, url: str, who: str | None = "developer", **kw: Any) -> Any:
        served = self.served.request(method, url, headers=self.api.headers(who), **kw)
        plain = self.plain.request(method, url, headers=self.api.headers(who), **kw)
        return served, plain


@pytest.fixture(scope="module")
def live_url(api: ApiEnv) -> Iterator[str]:
    yield from serve_live(api.app)


@pytest.fixture(params=["asgi", "direct"])
def lanes(api: ApiEnv, request: pytest.FixtureRequest) -> Iterator[Lanes]:
    original = api.app._hot.app  # type: ignore[attr-defined]
    if request.param == "asgi":
        yield Lanes(api, api.http, "asgi")
    else:
        with httpx.Client(base_url=request.getfixturevalue("live_url")) as live:
            yield Lanes(api, live, "direct")
    api.app._hot.app = original  # type: ignore[attr-defined]
    del api.app.direct_route  # type: ignore[attr-defined]


def _version_body(digest: str, **extra: Any) -> dict[str, Any]:
    return {"flavor": "sklearn", "files": {"model.skops": {"digest": digest, "size": 1}}, **extra}


def test_hot_calls_are_answered_by_the_lane(lanes: Lanes, api: ApiEnv) -> None:
    files = api.services.registry.get_version("models:/known/1").files
    body = {"flavor": "sklearn", "files": {k: v.model_dump() for k, v in files.items()}}
    created = lanes.served.post(
        f"{V1}/models/known/versions", json={**body, "metrics": {"auc": 0.7}},
        headers=api.headers("developer"),
    )  # fmt: skip
    assert created.status_code == 201, created.text
    number = created.json()["version"]
    assert api.services.registry.get_version(f"models:/known/{number}").metrics == {"auc": 0.7}

    moved = lanes.served.put(
        f"{V1}/models/known/aliases/hot", json={"version": number},
        headers=api.headers("developer"),
    )  # fmt: skip
    assert moved.status_code == 200
    assert moved.json()["version"] == number
    assert moved.json()["updated_by"] == "token:developer"

    points = [{"key": "loss", "value": 0.5, "step": i} for i in range(3)]
    columns = {"key": ["loss", "acc"], "value": [0.25, 0.9], "step": [3, 3]}
    tracking = api.services.tracking
    run = tracking.create_run("setup", RunCreate(name=f"hot-{lanes.way}")).id
    logged = lanes.served.post(
        f"{V1}/runs/{run}/batch", json={"metrics": points, "metric_columns": columns},
        headers=api.headers("developer"),
    )  # fmt: skip
    assert logged.json() == {"points": 5}
    assert [(p.step, p.value) for p in tracking.metric_history(run, "acc")] == [(3, 0.9)]
    assert [(p.step, p.value) for p in tracking.metric_history(run, "loss")] == [
        (0, 0.5), (1, 0.5), (2, 0.5), (3, 0.25),
    ]  # fmt: skip

    page = lanes.served.get(
        f"{V1}/versions", params={"filter": "metrics.auc > 0.5", "limit": 1},
        headers=api.headers("viewer"),
    )  # fmt: skip
    assert page.status_code == 200
    assert len(page.json()["items"]) == 1
    assert page.json()["next_page_token"] is not None
    assert lanes.fallbacks == 0
    assert lanes.answered_directly(4)
    events = api.services.audit.list_events(actor="token:developer", newest_first=True).items
    assert [e.kind for e in events[:3]] == ["run.logged", "alias.set", "version.registered"]


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"filter": "metrics.auc > 0.5"},
        {"model": "known", "limit": "1"},
        {"filter": "metrics.auc >"},  # the service refuses it
        {"model": "no-such-model"},
    ],
)
def test_search_answers_match(lanes: Lanes, query: dict[str, str]) -> None:
    served, plain = lanes.both("GET", f"{V1}/versions", "viewer", params=query)
    assert (served.status_code, served.json()) == (plain.status_code, plain.json())
    assert served.headers["content-type"] == plain.headers["content-type"]
    assert lanes.fallbacks == 0


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/models/no-such-model/versions", "version"),  # 404 from the service
        ("PUT", "/models/known/aliases/champion", {"version": 999}),  # no such version
        ("PUT", "/models/known/aliases/Bad%20Alias", {"version": 1}),  # invalid alias name
        ("PUT", "/models/no-such-model/aliases/champion", {"version": 1}),
        ("POST", "/runs/no-such-run/batch", {"metrics": [{"key": "a", "value": 1.0}]}),
    ],
)
def test_service_refusals_match(
    lanes: Lanes, api: ApiEnv, method: str, path: str, body: Any
) -> None:
    if body == "version":
        body = _version_body(api.ids["digest"])
    served, plain = lanes.both(method, V1 + path, json=body)
    assert served.status_code >= 400
    assert (served.status_code, served.json()) == (plain.status_code, plain.json())
    assert lanes.fallbacks == 0


_NUL_SECOND_KEY = [{"key": "a", "value": 1.0}, {"key": "a\x00", "value": 1.0}]


@pytest.mark.parametrize(
    ("who", "method", "path", "kw"),
    [
        (None, "PUT", "/models/known/aliases/champion", {"json": {"version": 1}}),
        ("garbage", "PUT", "/models/known/aliases/champion", {"json": {"version": 1}}),
        ("basic", "PUT", "/models/known/aliases/champion", {"json": {"version": 1}}),
        ("viewer", "PUT", "/models/known/aliases/champion", {"json": {"version": 1}}),
        ("expired", "GET", "/versions", {}),
        ("revoked", "PUT", "/models/known/aliases/champion", {"json": {"version": 1}}),
        ("developer", "PUT", "/models/known/aliases/champion", {"content": b"{not json"}),
        ("developer", "PUT", "/models/known/aliases/champion", {"json": {"version": "one"}}),
        ("developer", "PUT", "/models/known/aliases/champion", {"json": [1]}),
        ("developer", "PUT", "/models/known/aliases/champion", {"json": {"version": 1, "x": 1}}),
        ("developer", "POST", "/models/known/versions", {"json": {"files": {}}}),
        ("developer", "POST", f"/runs/{'{run}'}/batch", {"json": {"metrics": "many"}}),
        ("developer", "POST", f"/runs/{'{run}'}/batch", {"json": {"metrics": _NUL_SECOND_KEY}}),
        (
            "developer",
            "POST",
            f"/runs/{'{run}'}/batch",
            {"json": {"metric_columns": {"key": ["a", "b"], "value": [1.0]}}},
        ),
        ("developer", "PUT", "/models/kn%00own/aliases/champion", {"json": {"version": 1}}),
        ("viewer", "GET", "/versions?limit=0", {}),
        ("viewer", "GET", "/versions?limit=abc", {}),
        ("viewer", "GET", "/versions?limit=10001", {}),
        ("viewer", "GET", "/versions?model=a%00b", {}),
        ("viewer", "GET", "/versions?limit=5&limit=6", {}),
    ],
)
def test_refusals_left_to_fastapi_match(
    lanes: Lanes, api: ApiEnv, who: str, method: str, path: str, kw: dict[str, Any]
) -> None:
    path = path.replace("{run}", api.ids["run"])
    if "content" in kw:
        kw = {**kw, "headers_extra": {"content-type": "application/json"}}
    extra = kw.pop("headers_extra", {})
    served = lanes.served.request(method, V1 + path, headers={**api.headers(who), **extra}, **kw)
    plain = lanes.plain.request(method, V1 + path, headers={**api.headers(who), **extra}, **kw)
    assert served.status_code == plain.status_code
    assert json.loads(served.content) == json.loads(plain.content)
    if path.endswith("limit=5&limit=6"):
        assert served.status_code == 200
    else:
        assert 400 <= served.status_code < 500
    assert lanes.fallbacks == 1


def _first_call_token(api: ApiEnv, name: str, role: Role) -> dict[str, str]:
    """The headers of a token no call has used yet, so no cache holds it."""
    secret = api.services.tokens.create_token("setup", TokenCreate(name=name, role=role)).secret
    assert api.services.tokens.authenticate_cached(secret) is None
    return {"authorization": f"Bearer {secret}"}


def test_a_callers_first_call_is_answered_by_the_lane(lanes: Lanes, api: ApiEnv) -> None:
    """A token the cache does not hold (a caller's first call, or its first after a pause) is
    read in a worker, and the lane answers; the token is cached from then on."""
    headers = _first_call_token(api, "first-call", Role.DEVELOPER)
    files = api.services.registry.get_version("models:/known/1").files
    body = {"flavor": "sklearn", "files": {k: v.model_dump() for k, v in files.items()}}
    created = lanes.served.post(f"{V1}/models/known/versions", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["created_by"] == "token:first-call"
    assert lanes.fallbacks == 0
    secret = headers["authorization"].removeprefix("Bearer ")
    assert api.services.tokens.authenticate_cached(secret) is not None


def test_a_first_call_without_the_role_is_refused_by_fastapi(lanes: Lanes, api: ApiEnv) -> None:
    headers = _first_call_token(api, "first-viewer", Role.VIEWER)
    url = f"{V1}/models/known/aliases/champion"
    served = lanes.served.put(url, json={"version": 1}, headers=headers)
    plain = lanes.plain.put(url, json={"version": 1}, headers=headers)
    assert served.status_code == plain.status_code == 403
    assert served.json() == plain.json()
    assert lanes.fallbacks == 1


def test_a_token_check_failing_unexpectedly_is_answered_by_fastapi(
    lanes: Lanes, api: ApiEnv, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """FastAPI answers the error with the 500 envelope, then raises it again for the server to
    log: where the protocol writes the answer, the lane keeps it and logs the error."""
    headers = _first_call_token(api, f"first-broken-{lanes.way}", Role.VIEWER)

    def broken(_: str | None) -> Any:
        raise RuntimeError("a bug")

    async def broken_on_loop(_: str | None) -> Any:
        raise RuntimeError("a bug")

    # A token is read in a worker, or on the event loop where the store reads there.
    monkeypatch.setattr(api.services.tokens, "authenticate", broken)
    monkeypatch.setattr(api.services.tokens, "authenticate_on_loop", broken_on_loop)
    with caplog.at_level(logging.ERROR, logger="steward.api.hot_routes"):
        served = lanes.served.get(f"{V1}/versions", headers=headers)
    assert served.status_code == 500
    assert served.json()["error"]["code"] == "internal"
    assert "a bug" not in served.text
    assert lanes.fallbacks == 1
    assert lanes.answered_directly(1)
    logged = [r for r in caplog.records if r.name == "steward.api.hot_routes"]
    assert [str(r.exc_info[1]) for r in logged if r.exc_info] == (
        ["a bug"] if lanes.way == "direct" else []
    )


def test_a_body_sent_without_json_content_type_goes_to_fastapi(lanes: Lanes, api: ApiEnv) -> None:
    served = lanes.served.put(
        f"{V1}/models/known/aliases/champion", content=b'{"version": 1}',
        headers={**api.headers("developer"), "content-type": "text/plain"},
    )  # fmt: skip
    assert lanes.fallbacks == 1
    assert served.status_code in (200, 422)


def test_a_bug_in_a_hot_call_answers_the_500_envelope(
    lanes: Lanes, api: ApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> bytes:
        raise RuntimeError("a bug")

    async def broken_on_loop(*_: Any, **__: Any) -> bytes:
        raise RuntimeError("a bug")

    # A search runs in a worker, or on the event loop where the store reads there (PostgreSQL).
    monkeypatch.setattr(api.services.registry, "list_versions_json", broken)
    monkeypatch.setattr(api.services.registry, "list_versions_json_on_loop", broken_on_loop)
    served = lanes.served.get(f"{V1}/versions", headers=api.headers("viewer"))
    assert served.status_code == 500
    assert served.json()["error"]["code"] == "internal"
    assert "a bug" not in served.text
    assert lanes.fallbacks == 0


class SearchLanes:
    """Which way each search the lane answered went: awaited on the loop, or in a worker."""

    def __init__(self, api: ApiEnv, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ways: list[str] = []
        registry = api.services.registry
        in_worker, on_loop = registry.list_versions_json, registry.list_versions_json_on_loop

        def worker(*args: Any, **kw: Any) -> bytes:
            self.ways.append("worker")
            return in_worker(*args, **kw)

        async def loop(*args: Any, **kw: Any) -> bytes:
            self.ways.append("loop")
            return await on_loop(*args, **kw)

        monkeypatch.setattr(registry, "list_versions_json", worker)
        monkeypatch.setattr(registry, "list_versions_json_on_loop", loop)


# Searches, and whether the lane awaits each on the loop where the store reads there.
_SEARCHES = [
    ("/versions?filter=metrics.auc%20%3E%200.5&limit=1", True),
    ("/versions?model=known", True),
    ("/versions?model=no-such-model", True),
    ("/versions?filter=metrics.auc%20%3E", True),
    ("/versions?limit=500", True),
    ("/versions?limit=501", False),  # a page too large to turn into JSON on the loop
]


def test_a_search_on_postgresql_is_awaited_on_the_loop(
    lanes: Lanes, api: ApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the served lane awaits a search's read on the event loop (no worker), on
    SQLite it runs in a worker; either way the answer is FastAPI's, refusals included."""
    postgres = api.services.store.dialect == "postgresql"
    for path, awaited in _SEARCHES:
        searches = SearchLanes(api, monkeypatch)
        served = lanes.served.get(V1 + path, headers=api.headers("viewer"))
        on_the_lane = list(searches.ways)
        plain = lanes.plain.get(V1 + path, headers=api.headers("viewer"))
        assert (served.status_code, served.json()) == (plain.status_code, plain.json()), path
        assert on_the_lane == (["loop"] if postgres and awaited else ["worker"]), path
    assert lanes.fallbacks == 0


def test_a_search_the_loop_cannot_read_goes_to_a_worker(
    lanes: Lanes, api: ApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_connection(*_: Any, **__: Any) -> list[bytes]:
        raise ReadWouldWait("no connection of the event loop came free")

    monkeypatch.setattr(api.services.store, "list_versions_json_on_loop", no_connection)
    monkeypatch.setattr(api.services.store, "reads_on_loop", lambda: True)
    searches = SearchLanes(api, monkeypatch)
    served, plain = lanes.both("GET", f"{V1}/versions?model=known", who="viewer")
    assert served.status_code == 200
    assert served.json() == plain.json()
    assert searches.ways[:2] == ["loop", "worker"]
    assert lanes.fallbacks == 0


class LoopRuns:
    """What `HotRoutes._on_the_loop` did with each call: its answer's status, or None when it
    left the call to a worker thread."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, on_refusal: Callable[[], None] | None = None
    ) -> None:
        self.outcomes: list[int | None] = []
        original = hot_routes.HotRoutes._on_the_loop

        async def spied(routes: hot_routes.HotRoutes, call: Any) -> Any:
            answer = await original(routes, call)
            self.outcomes.append(None if answer is None else answer.status)
            if answer is None and on_refusal is not None:
                on_refusal()
            return answer

        monkeypatch.setattr(hot_routes.HotRoutes, "_on_the_loop", spied)


def _warm_token(api: ApiEnv) -> None:
    """The lane answers callers whose token was verified moments ago (FastAPI verifies it)."""
    api.http.get(f"{V1}/models", headers=api.headers("developer"))


def _register_known(api: ApiEnv) -> Any:
    files = api.services.registry.get_version("models:/known/1").files
    body = {"flavor": "sklearn", "files": {k: v.model_dump() for k, v in files.items()}}
    return api.http.post(f"{V1}/models/known/versions", json=body, headers=api.headers("developer"))


def test_small_writes_run_on_the_event_loop_where_they_cannot_wait(
    api: ApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    _warm_token(api)
    runs = LoopRuns(monkeypatch)
    created = _register_known(api)
    assert created.status_code == 201, created.text
    moved = api.http.put(
        f"{V1}/models/known/aliases/loop", json={"version": created.json()["version"]},
        headers=api.headers("developer"),
    )  # fmt: skip
    assert moved.status_code == 200, moved.text
    if api.services.store.dialect == "sqlite":
        assert runs.outcomes == [201, 200]  # both answered on the loop
    else:
        # A registration whose model's number and ledger tip the server knows (it made the
        # last write) ends in one statement, awaited on the loop; an alias move reads first
        # and goes to a worker without trying the loop.
        assert runs.outcomes == [201]
        assert (
            api.services.registry.get_version("models:/known/latest").version
            == (created.json()["version"])
        )
    missing = api.http.put(
        f"{V1}/models/no-such-model/aliases/loop", json={"version": 1},
        headers=api.headers("developer"),
    )  # fmt: skip
    assert missing.status_code == 404  # a refusal answered on the loop is the same envelope
    assert missing.json()["error"]["code"] == "not_found"


@contextlib.contextmanager
def _postgres_api(
    database: str, tmp_path_factory: pytest.TempPathFactory, tag: str
) -> Iterator[tuple[ApiEnv, str]]:
    """A seeded app of its own on PostgreSQL (its lifespan started), its token warm, and the
    URL of its schema."""
    home = tmp_path_factory.mktemp(tag)
    with temporary_schema(database, tag=tag) as url:
        for api in build_env(home, database={"url": url}):
            seed(api)
            _warm_token(api)
            yield api, url


@pytest.mark.postgres
def test_a_registration_another_server_made_stale_runs_again_in_a_worker(
    postgres_database: str,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with _postgres_api(postgres_database, tmp_path_factory, "stale") as (api, url):
        other = make_services(api.services.settings.home, url)  # another server process
        try:
            runs = LoopRuns(monkeypatch)
            first = _register_known(api)
            version = api.services.registry.get_version("models:/known/1")
            body = VersionCreate(flavor="sklearn", files=version.files)
            assert other.registry.create_version("other", "known", body).version == 3
            second = _register_known(api)  # built on v2 as the last: refused, run again
        finally:
            other.close()
        assert [first.status_code, second.status_code] == [201, 201], second.text
        assert [first.json()["version"], second.json()["version"]] == [2, 4]
        assert runs.outcomes == [201, None]  # the second went to a worker
        assert api.services.audit.verify().ok


@pytest.mark.postgres
def test_a_held_write_failing_unexpectedly_is_answered_as_any_internal_error(
    postgres_database: str,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with _postgres_api(postgres_database, tmp_path_factory, "heldbug") as (api, _):
        runs = LoopRuns(monkeypatch)

        async def broken(*_: Any) -> None:
            raise RuntimeError("a bug with a secret in it")

        monkeypatch.setattr(api.services.store, "commit_held", broken)
        answered = _register_known(api)
        assert answered.status_code == 500
        assert answered.json()["error"]["code"] == "internal"
        assert "secret" not in answered.text
        assert runs.outcomes == [500]  # answered on the loop, not run again in a worker
        assert api.services.registry.list_versions(model="known").items[0].version == 1


@pytest.mark.postgres
def test_on_postgresql_a_first_calls_token_is_read_on_the_loop(
    postgres_database: str,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with _postgres_api(postgres_database, tmp_path_factory, "firstcall") as (api, _):
        headers = _first_call_token(api, "first-on-pg", Role.DEVELOPER)

        def in_a_worker(_: str | None) -> Any:
            raise AssertionError("the token was read in a worker thread")

        monkeypatch.setattr(api.services.tokens, "authenticate", in_a_worker)
        runs = LoopRuns(monkeypatch)
        files = api.services.registry.get_version("models:/known/1").files
        body = {"flavor": "sklearn", "files": {k: v.model_dump() for k, v in files.items()}}
        created = api.http.post(f"{V1}/models/known/versions", json=body, headers=headers)
        assert created.status_code == 201, created.text
        assert created.json()["created_by"] == "token:first-on-pg"
        assert runs.outcomes == [201]  # and the registration was awaited on the loop too


@pytest.fixture(scope="module")
def sqlite_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    for env in build_env(tmp_path_factory.mktemp("sqlite-api")):
        seed(env)
        yield env


def test_a_write_finding_sqlite_locked_waits_in_a_worker_not_on_the_loop(
    sqlite_api: ApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another connection holds the write lock: the registration is refused on the loop with
    nothing written, waits in a worker until the lock is released (0.3 s after the refusal),
    and meanwhile the loop answers other requests (0.1 s after the refusal). Timed from the
    refusal, not from the request, so a slow machine cannot release the lock before it."""
    api = sqlite_api
    _warm_token(api)
    assert api.http.get("/health").status_code == 200  # FastAPI's first call builds its schemas
    database = api.services.store.engine.url.database
    other = sqlite3.connect(str(database), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process's write, say
    refused: list[float] = []
    health: list[tuple[int, float]] = []
    timers: list[threading.Timer] = []

    def check_health() -> None:
        answer = api.http.get("/health")
        health.append((answer.status_code, time.monotonic() - refused[0]))

    def on_refusal() -> None:
        refused.append(time.monotonic())
        timers.extend([threading.Timer(0.1, check_health),
                       threading.Timer(0.3, lambda: other.execute("ROLLBACK"))])  # fmt: skip
        for timer in timers:
            timer.start()

    runs = LoopRuns(monkeypatch, on_refusal)
    created = _register_known(api)
    for timer in timers:
        timer.join()
    other.close()
    assert created.status_code == 201, created.text
    assert runs.outcomes == [None]  # refused on the loop, nothing written there
    assert time.monotonic() - refused[0] >= 0.25  # it waited for the lock, in a worker
    ((status, answered_after),) = health
    assert status == 200
    assert answered_after < 0.25  # the loop answered while the write waited
    number = created.json()["version"]
    assert api.services.registry.get_version(f"models:/known/{number}").version == number
    assert api.services.audit.verify().ok


def test_only_registrations_of_a_few_local_bytes_are_run_on_the_loop(api: ApiEnv) -> None:
    services = api.services
    ref = services.registry.upload_artifact(b"x" * 10)
    small = VersionCreate(flavor="python", files={"model.pkl": ref})
    assert hot_routes._small_local_registration(services, small)
    big_ref = ArtifactRef(digest=ref.digest, size=hot_routes._INLINE_FILE_BYTES + 1)
    big = VersionCreate(flavor="python", files={"model.pkl": big_ref})
    assert not hot_routes._small_local_registration(services, big)
    sampled = VersionCreate(flavor="python", files={"model.pkl": ref}, reference_sample=ref)
    assert not hot_routes._small_local_registration(services, sampled)
    remote = FsspecArtifactStore("memory://hot-routes-test", max_bytes=1024)
    elsewhere = dataclasses.replace(services, artifacts=remote)
    assert not hot_routes._small_local_registration(elsewhere, small)


def test_fastapis_routes_still_see_a_trusted_proxys_forwarded_headers(
    live_url: str, api: ApiEnv
) -> None:
    """Served as `steward server` serves it, uvicorn's proxy-headers middleware is off (it
    would hide the app's direct routes from the protocol); the app applies ``X-Forwarded-*``
    from the loopback proxy to what FastAPI answers itself, here a redirect's address."""
    forwarded = {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.7"}
    with httpx.Client(base_url=live_url) as client:
        plain = client.get(f"{V1}/models/", headers=api.headers("viewer"))
        proxied = client.get(f"{V1}/models/", headers={**api.headers("viewer"), **forwarded})
    assert plain.status_code == proxied.status_code == 307
    assert plain.headers["location"] == f"{live_url}{V1}/models"
    assert proxied.headers["location"] == f"{live_url.replace('http', 'https', 1)}{V1}/models"
