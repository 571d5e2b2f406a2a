"""A registration killed (SIGKILL) inside its write transaction leaves no trace but its blob."""

from __future__ import annotations

import pickle
import signal
import sys
from pathlib import Path

import pytest

from steward.domain.enums import Flavor
from steward.errors import NotFound
from steward.schemas.registry import ModelCreate, VersionCreate
from steward.settings import Settings
from steward.wiring import Services

sys.path.insert(0, str(Path(__file__).parent))
from _children import Child

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")


def test_killed_registration_leaves_no_version(backend_url, tmp_path):
    home = tmp_path / "home"
    services = Services.from_settings(Settings(home=home, database={"url": backend_url}))
    try:
        services.registry.create_model("setup", ModelCreate(name="crashy"))
        before = services.audit.verify()
        assert before.ok

        child = Child("_crash_child.py", backend_url, str(home), "crashy")
        digest = child.expect("ARTIFACT").split()[1]
        assert child.expect("READY") == "READY 1"
        assert child.kill() == -signal.SIGKILL

        # The store opens, and nothing of the uncommitted registration is visible.
        assert services.artifacts.exists(digest)  # the upload happened before the transaction
        with pytest.raises(NotFound):
            services.registry.get_version("models:/crashy/1")
        assert services.registry.get_model("crashy").latest_version is None
        assert services.registry.list_versions(model="crashy").items == []
        after = services.audit.verify()
        assert after.ok, after
        assert after.events_checked == before.events_checked
        assert services.audit.list_events(kind="version.registered").items == []

        # A fresh process (new engine, new connections) sees the same, and can register.
        services.close()
        services = Services.from_settings(Settings(home=home, database={"url": backend_url}))
        body = VersionCreate(flavor=Flavor.PYTHON, files={"model.pkl": {"digest": digest,
                             "size": len(pickle.dumps({"crash": "model"}))}})  # fmt: skip
        version = services.registry.create_version("survivor", "crashy", body)
        assert version.version == 1
        assert services.registry.get_version("models:/crashy/latest").id == version.id
        report = services.audit.verify()
        assert report.ok, report
        assert report.events_checked == before.events_checked + 1
        (event,) = services.audit.list_events(kind="version.registered").items
        assert (event.actor, event.payload["version"]) == ("survivor", 1)
    finally:
        services.close()
