"""import_from_mlflow against a real MLflow sqlite store built in a temporary directory."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

mlflow = pytest.importorskip("mlflow")  # the optional 'mlflow' extra; skipped without it

from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from steward.client import Client, load_model  # noqa: E402
from steward.domain.enums import Flavor, RunStatus  # noqa: E402
from steward.errors import InvalidInput, PermissionDenied  # noqa: E402
from steward.importers import ImportReport, import_from_mlflow  # noqa: E402
from steward.importers.mlflow import steward_alias, steward_model_name  # noqa: E402

LONG_SERIES = 6_001  # more than one log_batch of 5,000 points


@dataclass(frozen=True)
class Source:
    uri: str
    run_ids: list[str]  # of the two "churn model" versions, in version order
    x: np.ndarray
    predictions: list[np.ndarray]  # of the two churn versions' estimators


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    tmp = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp}/mlflow.db"
    from mlflow.tracking._tracking_service import utils as tracking_utils

    with pytest.MonkeyPatch.context() as mp:
        # set_tracking_uri also writes MLFLOW_TRACKING_URI; restore both afterwards.
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setattr(tracking_utils, "_tracking_uri", None)
        mlflow.set_tracking_uri(uri)
        yield _build_source(tmp, uri)


def _build_source(tmp: Path, uri: str) -> Source:
    ml = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = ml.create_experiment("churn", artifact_location=(tmp / "artifacts").as_uri())
    x, y = load_iris(return_X_y=True)
    run_ids, predictions = [], []
    for i, c in enumerate([0.5, 1.0]):
        with mlflow.start_run(experiment_id=experiment, run_name=f"train-{i}") as run:
            mlflow.log_params({"C": c, "solver": "lbfgs"})
            for step in range(5):
                mlflow.log_metric("loss", 1.0 / (step + 1 + i), step=step)
            mlflow.log_metric("accuracy", 0.9 + i / 100)
            mlflow.set_tag("mlflow.source.git.commit", f"abc{i}")
            if i == 0:
                _log_long_series(ml, run.info.run_id)
                mlflow.log_metric("unstable", float("nan"))
            estimator = LogisticRegression(C=c, max_iter=500).fit(x, y)
            mlflow.sklearn.log_model(
                estimator, name="model", serialization_format="cloudpickle",
                registered_model_name="churn model", pip_requirements=["scikit-learn"],
            )  # fmt: skip
            run_ids.append(run.info.run_id)
            predictions.append(estimator.predict(x))
    ml.update_registered_model("churn model", description="Who leaves next month")
    ml.set_registered_model_tag("churn model", "owner", "alice")
    ml.set_model_version_tag("churn model", "1", "validated_by", "bob")
    ml.set_registered_model_alias("churn model", "champion", "1")
    ml.set_registered_model_alias("churn model", "challenger", "2")

    with mlflow.start_run(experiment_id=experiment, run_name="skops"):
        estimator = LogisticRegression(max_iter=500).fit(x, y)
        mlflow.sklearn.log_model(
            estimator, name="model", registered_model_name="iris_skops",
            pip_requirements=["scikit-learn"],
        )  # fmt: skip
    _log_onnx(experiment, x, y)
    return Source(uri, run_ids, x, predictions)


def _log_long_series(ml: MlflowClient, run_id: str) -> None:
    points = [
        Metric("batch_loss", 1.0 / (s + 1), 1_700_000_000_000 + s, s) for s in range(LONG_SERIES)
    ]
    for start in range(0, len(points), 1000):
        ml.log_batch(run_id, metrics=points[start : start + 1000])


def _log_onnx(experiment: str, x: np.ndarray, y: np.ndarray) -> None:
    from skl2onnx import to_onnx

    estimator = LogisticRegression(max_iter=500).fit(x.astype(np.float32), y)
    proto = to_onnx(estimator, x[:1].astype(np.float32), options={"zipmap": False})
    with mlflow.start_run(experiment_id=experiment, run_name="onnx"):
        mlflow.onnx.log_model(
            proto, name="model", registered_model_name="iris onnx!", pip_requirements=["onnx"]
        )


def _import(source: Source, home: Path, **kwargs: object) -> tuple[Client, ImportReport]:
    client = Client(home=home)
    report = import_from_mlflow(client, tracking_uri=source.uri, **kwargs)  # type: ignore[arg-type]
    return client, report


def test_import_copies_models_versions_runs_and_aliases(source: Source, tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    client, report = _import(source, tmp_path / "steward", progress=lambda *a: calls.append(a))

    assert (report.models, report.versions, report.runs, report.skipped) == (3, 4, 4, 0)
    assert report.aliases == 2
    assert report.artifact_bytes > 0
    assert [(done, total) for _, done, total in calls] == [(i, 4) for i in range(1, 5)]

    model = client.get_model("churn-model")  # "churn model": the space is not allowed
    assert model.tags["mlflow.model_name"] == "churn model"
    assert model.owner == "alice"
    assert model.description == "Who leaves next month"
    assert model.aliases == {"champion": 1, "challenger": 2}
    assert client.get_model("iris-onnx-").tags["mlflow.model_name"] == "iris onnx!"

    for number, mlflow_run_id in enumerate(source.run_ids, start=1):
        version = client.get_version(f"models:/churn-model/{number}")
        external = version.lineage.external
        assert external["mlflow.model_name"] == "churn model"
        assert external["mlflow.model_version"] == str(number)
        assert external["mlflow.run_id"] == mlflow_run_id
        assert external["mlflow.experiment_id"]
        assert external["mlflow.source"].startswith("models:/")
        assert version.lineage.git.commit == f"abc{number - 1}"
        assert version.params == {"C": str([0.5, 1.0][number - 1]), "solver": "lbfgs"}
        assert version.metrics["loss"] == pytest.approx(1.0 / (5 + number - 1))
        run = client.get_run(version.lineage.run_id or "")
        assert run.status is RunStatus.FINISHED
        assert run.project == "churn"
        assert run.tags["mlflow.run_id"] == mlflow_run_id
        history = client.metric_history(run.id, "loss")
        assert [(p.step, p.value) for p in history] == [
            (s, pytest.approx(1.0 / (s + number))) for s in range(5)
        ]
    assert client.get_version("models:/churn-model/1").tags == {"validated_by": "bob"}
    assert client.get_version("models:/churn-model@champion").version == 1

    first_run = client.get_version("models:/churn-model/1").lineage.run_id or ""
    assert len(client.metric_history(first_run, "batch_loss")) == LONG_SERIES
    assert client.metric_history(first_run, "unstable") == []  # NaN is not copied ...
    assert any("NaN" in w for w in report.warnings)  # ... and the report says so
    assert report.metric_points == (5 + 1 + LONG_SERIES) + (5 + 1)  # loss, accuracy, batch_loss
    assert client.verify_ledger().ok


def test_pickles_are_kept_untrusted_without_trust(source: Source, tmp_path: Path) -> None:
    client, report = _import(source, tmp_path / "steward")

    version = client.get_version("models:/churn-model/1")
    assert version.flavor is Flavor.PYTHON
    assert not version.trusted
    assert version.primary_file == "model.pkl"
    assert "MLmodel" in version.files
    assert report.untrusted == ["models:/churn-model/1", "models:/churn-model/2"]
    assert any("untrusted" in w and "models:/churn-model/1" in w for w in report.warnings)
    with pytest.raises(PermissionDenied):
        load_model("models:/churn-model/1", allow_trusted=True, client=client)


def test_skops_and_onnx_versions_load_without_trust(source: Source, tmp_path: Path) -> None:
    client, _ = _import(source, tmp_path / "steward")

    skops_version = client.get_version("models:/iris_skops/1")
    assert skops_version.flavor is Flavor.SKLEARN
    assert skops_version.primary_file == "model.skops"
    predictions = load_model("models:/iris_skops/1", client=client).predict(source.x)
    assert predictions.shape == (len(source.x),)

    onnx_version = client.get_version("models:/iris-onnx-/1")
    assert onnx_version.flavor is Flavor.ONNX
    assert onnx_version.primary_file == "model.onnx"
    loaded = load_model("models:/iris-onnx-/1", client=client)
    assert loaded.predict(source.x.astype(np.float32)).shape[0] == len(source.x)


def test_trusted_pickles_are_repackaged_as_skops(source: Source, tmp_path: Path) -> None:
    client, report = _import(source, tmp_path / "steward", trust_pickles=True)

    assert report.untrusted == []
    for number, expected in enumerate(source.predictions, start=1):
        version = client.get_version(f"models:/churn-model/{number}")
        assert version.flavor is Flavor.SKLEARN
        assert version.primary_file == "model.skops"
        assert "model.pkl" not in version.files  # the pickle is not carried over
        loaded = load_model(f"models:/churn-model/{number}", client=client)
        np.testing.assert_array_equal(loaded.predict(source.x), expected)
    assert client.verify_ledger().ok


def test_rerun_skips_what_was_imported(source: Source, tmp_path: Path) -> None:
    client, _ = _import(source, tmp_path / "steward")
    events = len(client.list_events(limit=1000).items)

    again = import_from_mlflow(client, tracking_uri=source.uri)

    assert (again.models, again.versions, again.runs, again.metric_points) == (0, 0, 0, 0)
    assert (again.aliases, again.artifact_bytes, again.skipped) == (0, 0, 4)
    assert len(client.list_events(limit=1000).items) == events  # nothing written twice
    assert [v.version for v in client.search_versions(model="churn-model")] == [2, 1]
    assert client.verify_ledger().ok


def test_moved_alias_follows_on_rerun(source: Source, tmp_path: Path) -> None:
    client, _ = _import(source, tmp_path / "steward", models=["churn model"])
    ml = MlflowClient(tracking_uri=source.uri, registry_uri=source.uri)
    ml.set_registered_model_alias("churn model", "champion", "2")
    try:
        again = import_from_mlflow(client, tracking_uri=source.uri, models=["churn model"])
    finally:
        ml.set_registered_model_alias("churn model", "champion", "1")
    assert again.aliases == 1
    assert client.get_model("churn-model").aliases["champion"] == 2


def test_models_limits_the_import(source: Source, tmp_path: Path) -> None:
    client, report = _import(source, tmp_path / "steward", models=["iris_skops"])
    assert (report.models, report.versions, report.runs) == (1, 1, 1)
    assert [m.name for m in client.search_models()] == ["iris_skops"]


def test_unknown_model_name_is_invalid_input(source: Source, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no model 'nope'") as info:
        _import(source, tmp_path / "steward", models=["nope"])
    assert info.value.field == "models"


def test_name_taken_by_a_native_model_is_not_merged(source: Source, tmp_path: Path) -> None:
    client = Client(home=tmp_path / "steward")
    client.create_model("churn-model", owner="carol")

    report = import_from_mlflow(client, tracking_uri=source.uri, models=["churn model"])

    assert report.versions == 0
    assert report.skipped == 2
    assert any("not imported from it" in w for w in report.warnings)
    assert client.search_versions(model="churn-model") == []


def test_trust_respects_mlflow_refusing_pickles(
    source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    with pytest.raises(InvalidInput, match="MLFLOW_ALLOW_PICKLE_DESERIALIZATION") as info:
        _import(source, tmp_path / "steward", trust_pickles=True)
    assert info.value.field == "trust_pickles"


def test_missing_mlflow_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # makes "import mlflow" raise ImportError
    with pytest.raises(InvalidInput, match=r"pip install 'ml-steward\[mlflow\]'") as info:
        import_from_mlflow(Client(home=tmp_path / "steward"), tracking_uri="sqlite:///x.db")
    assert info.value.field == "mlflow"


@pytest.mark.parametrize(
    ("mlflow_name", "expected"),
    [
        ("churn", "churn"),
        ("churn model", "churn-model"),
        ("team/churn:v2", "team-churn-v2"),
        ("_private", "private"),
        ("modèle", "mod-le"),
        ("///", "mlflow-model"),
        ("x" * 200, "x" * 128),
    ],
)
def test_steward_model_name(mlflow_name: str, expected: str) -> None:
    assert steward_model_name(mlflow_name) == expected


def test_steward_alias() -> None:
    assert steward_alias("Champion") == "champion"
    assert steward_alias("blue green") == "blue-green"
    assert steward_alias("2024") is None
    assert steward_alias("latest") is None
