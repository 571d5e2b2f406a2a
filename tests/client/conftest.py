"""The SDK under test, once per backend: embedded (in-process) and over HTTP to a real server.

Every test in tests/client takes ``client`` and runs in each mode against a fresh store, so the
two backends are held to one behaviour (STYLE §7). When ``STEWARD_TEST_POSTGRES_URL`` names a
PostgreSQL server, the embedded mode also runs on PostgreSQL ("postgres" mode), on the fresh
per-test schema that tests/conftest.py's ``postgres_url`` fixture provides.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from steward.api.app import create_app
from steward.cli.server import api_uvicorn_options
from steward.client import Client
from steward.domain.enums import Role
from steward.schemas.auth import TokenCreate
from steward.settings import Settings
from steward.wiring import Services

MODES = ["embedded", "http", *(["postgres"] if os.environ.get("STEWARD_TEST_POSTGRES_URL") else [])]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """uvicorn serving ``create_app(settings)`` in a background thread on 127.0.0.1."""

    def __init__(self, settings: Settings) -> None:
        self.services = Services.from_settings(settings)
        self.app = create_app(settings, services=self.services)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        options = {**api_uvicorn_options(settings), "log_level": "warning"}  # as `steward server`
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, lifespan="on", **options
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def token(self, role: Role = Role.ADMIN, name: str | None = None) -> str:
        body = TokenCreate(name=name or f"test-{role.value}", role=role)
        return self.services.tokens.create_token("test-setup", body).secret

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.services.close()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(Settings(home=tmp_path / "server")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(mode: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Client]:
    if mode == "http":
        server: LiveServer = request.getfixturevalue("live_server")
        sdk = Client(url=server.url, token=server.token())
    elif mode == "postgres":
        url = request.getfixturevalue("postgres_url")
        sdk = Client(settings=Settings(home=tmp_path / "home", database={"url": url}))
    else:
        sdk = Client(home=tmp_path / "home")
    try:
        yield sdk
    finally:
        sdk.close()


@pytest.fixture
def reviewer(
    mode: str, client: Client, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Client]:
    """A second person on the same store as ``client``: an approver token named ``reviewer``
    over HTTP, the actor ``reviewer`` in embedded mode (STEWARD_ACTOR)."""
    if mode == "http":
        server: LiveServer = request.getfixturevalue("live_server")
        sdk = Client(url=server.url, token=server.token(Role.APPROVER, name="reviewer"))
    elif mode == "postgres":
        url = request.getfixturevalue("postgres_url")
        settings = Settings(
            url=None, home=tmp_path / "home", database={"url": url}, actor="reviewer"
        )
        sdk = Client(settings=settings)
    else:
        sdk = Client(settings=Settings(url=None, home=tmp_path / "home", actor="reviewer"))
    try:
        yield sdk
    finally:
        sdk.close()
