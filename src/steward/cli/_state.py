"""The object every command receives: the settings built once, and a Client built on demand."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from steward.client import Client
    from steward.settings import Settings


class State:
    """Settings from flags > environment > steward.toml > defaults; the Client is made lazily
    so that commands which need no store (``settings show``, ``server``) never open one."""

    def __init__(self, settings: Settings, *, debug: bool = False) -> None:
        self.settings = settings
        self.debug = debug
        self._client: Client | None = None

    @classmethod
    def build(cls, *, url: str | None, token: str | None, home: Path | None, debug: bool) -> State:
        from steward.settings import Settings

        overrides: dict[str, Any] = {}
        if url is not None:
            overrides["url"] = url
        if token is not None:
            overrides["token"] = token
        if home is not None:
            overrides["home"] = home
            # --home means the embedded store in that folder, as Client(home=...) does.
            overrides.setdefault("url", None)
        return cls(Settings(**overrides), debug=debug)

    @property
    def client(self) -> Client:
        if self._client is None:
            from steward.client import Client

            self._client = Client(settings=self.settings)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def state(ctx: typer.Context) -> State:
    """The State the root callback stored on the context."""
    root = ctx.find_root()
    if not isinstance(root.obj, State):  # a sub-app invoked on its own, as in some tests
        root.obj = State.build(url=None, token=None, home=None, debug=False)
        root.call_on_close(root.obj.close)
    return root.obj
