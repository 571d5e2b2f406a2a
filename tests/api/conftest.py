"""An app on a fresh SQLite store with one token per role, and a seeded model, version and run.

API tests use an httpx client on the ASGI app (STYLE §7): ``TestClient`` with
``raise_server_exceptions=False``, so a bug shows up as the 500 a caller would get.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression

from steward.api.app import API_PREFIX, create_app
from steward.cli.server import api_uvicorn_options
from steward.domain.enums import Role
from steward.flavors import package_model
from steward.schemas.auth import TokenCreate
from steward.schemas.registry import ModelCreate, VersionCreate
from steward.schemas.tracking import LogBatch, RunCreate
from steward.settings import Settings
from steward.testing.postgres import temporary_schema
from steward.wiring import Services


@dataclass
class ApiEnv:
    app: FastAPI
    services: Services
    http: TestClient
    tokens: dict[str, str] = field(default_factory=dict)  # role or state -> secret
    ids: dict[str, str] = field(default_factory=dict)  # placeholders for URLs

    def headers(self, who: str | None) -> dict[str, str]:
        if who is None:
            return {}
        if who == "garbage":
            return {"authorization": "Bearer stw_not-a-real-token"}
        if who == "basic":
            return {"authorization": "Basic dXNlcjpwYXNz"}
        return {"authorization": f"Bearer {self.tokens[who]}"}


def build_env(home: Path, **settings: object) -> Iterator[ApiEnv]:
    config = Settings(home=home, **settings)  # type: ignore[arg-type]
    services = Services.from_settings(config)
    app = create_app(config, services=services)
    env = ApiEnv(app, services, TestClient(app, raise_server_exceptions=False))
    for role in Role:
        env.tokens[role.value] = services.tokens.create_token(
            "setup", TokenCreate(name=role.value, role=role)
        ).secret
    expired = services.tokens.create_token(
        "setup", TokenCreate(name="expired", role=Role.ADMIN, expires_in_days=1e-9)
    )
    env.tokens["expired"] = expired.secret
    revoked = services.tokens.create_token(
        "setup", TokenCreate(name="revoked", role=Role.ADMIN)
    )  # never used before it is revoked, so no cache can remember it
    services.tokens.revoke_token("setup", revoked.token.id)
    env.tokens["revoked"] = revoked.secret
    env.ids["revoked_token"] = revoked.token.id
    with env.http:
        yield env
    services.close()


def seed(env: ApiEnv) -> None:
    """Model ``known`` with version 1 (alias ``champion``), and a run with param lr=0.1."""
    services = env.services
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.random(20), "b": rng.random(20)})
    model = LogisticRegression().fit(frame, (frame["a"] > 0.5).astype(int))
    files = {
        name: services.registry.upload_artifact(content)
        for name, content in package_model(model).files.items()
    }
    services.registry.create_model("setup", ModelCreate(name="known"))
    services.registry.create_version(
        "setup", "known", VersionCreate(flavor="sklearn", files=files, metrics={"auc": 0.9})
    )
    services.registry.set_alias("setup", "known", "champion", 1)
    env.ids["digest"] = next(iter(files.values())).digest
    run = services.tracking.create_run("setup", RunCreate(name="seeded", params={"lr": "0.1"}))
    services.tracking.log_batch(
        "setup", run.id, LogBatch.model_validate({"metrics": [{"key": "loss", "value": 1.0}]})
    )
    env.ids["run"] = run.id


BACKENDS = ["sqlite", *(["postgresql"] if os.environ.get("STEWARD_TEST_POSTGRES_URL") else [])]


@pytest.fixture(scope="module", params=BACKENDS)
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiEnv]:
    """One seeded app per test module and backend; tests that write use names of their own.

    On PostgreSQL (when STEWARD_TEST_POSTGRES_URL is set) the app uses a fresh schema in the
    session's scratch database from tests/conftest.py: integer widths and NUL characters
    behave differently there, and the envelope must not.
    """
    home = tmp_path_factory.mktemp("api")
    if request.param == "sqlite":
        yield from _seeded(home)
        return
    database = request.getfixturevalue("postgres_database")
    with temporary_schema(database, tag="api") as url:
        yield from _seeded(home, database={"url": url})


def _seeded(home: Path, **settings: object) -> Iterator[ApiEnv]:
    for env in build_env(home, **settings):
        seed(env)
        yield env


@pytest.fixture(scope="module")
def small_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    """An app whose artifact limit is 1 KiB, for the 413 paths."""
    for env in build_env(tmp_path_factory.mktemp("small"), artifacts={"max_bytes": 1024}):
        run = env.services.tracking.create_run("setup", RunCreate(name="small"))
        env.ids["run"] = run.id
        yield env


def serve_in_thread(app: Any, **config: Any) -> Iterator[str]:
    """``app`` served on 127.0.0.1 by uvicorn in a thread, with ``config``; yields its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def serve_live(app: FastAPI) -> Iterator[str]:
    """``app`` served as `steward server` serves it (the protocol writing the hot routes'
    answers itself). Its lifespan opens this server's event loop's own connections on
    PostgreSQL, beside those of a TestClient's loop (the store keeps them per loop)."""
    options = {**api_uvicorn_options(Settings()), "log_level": "warning"}
    yield from serve_in_thread(app, lifespan="on", **options)


def walk_routes(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """(full path, route) for every APIRoute, through included routers.

    FastAPI >= 0.120 keeps an included router as one ``_IncludedRouter`` entry of ``app.routes``
    (with ``original_router`` and the prefix in ``include_context``) instead of copying its
    routes, so a plain walk of ``app.routes`` would see none of /api/v1.
    """
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from walk_routes(inner.routes, prefix + getattr(context, "prefix", ""))
        elif isinstance(route, APIRoute):
            yield prefix + route.path, route


@pytest.fixture(scope="module")
def api_routes(api: ApiEnv) -> set[tuple[str, str]]:
    """(method, path under /api/v1) of every API route the app serves."""
    return {
        (method, path.removeprefix(API_PREFIX))
        for path, route in walk_routes(api.app.routes)
        if path.startswith(API_PREFIX + "/")
        for method in route.methods
        if method != "HEAD"
    }
