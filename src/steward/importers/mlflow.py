"""Import registered models, their versions, runs and aliases from an MLflow tracking server.

MLflow is an optional dependency (``pip install 'ml-steward[mlflow]'``), imported only when
``import_from_mlflow`` runs. Re-running the import is safe: models and versions already
copied (recognised by ``lineage.external["mlflow.model_version"]``) are skipped.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steward.client import Client
from steward.domain.entities import ArtifactRef, Model
from steward.errors import InvalidInput, NotFound
from steward.importers._mlflow_artifacts import NotImportable, PackagedVersion, package_version
from steward.importers._mlflow_runs import clean_tags, copy_run, finite_metrics

Progress = Callable[[str, int, int], None]

_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")
_INVALID_ALIAS_CHARS = re.compile(r"[^a-z0-9_\-]")
_ALIAS_RE = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")
NAME_TAG = "mlflow.model_name"  # on Steward models: the MLflow name they were imported from


@dataclass
class ImportReport:
    """What ``import_from_mlflow`` copied; counts are of things created by this call."""

    models: int = 0
    versions: int = 0
    runs: int = 0
    metric_points: int = 0
    artifact_bytes: int = 0
    aliases: int = 0
    skipped: int = 0  # versions already imported, or that could not be imported
    untrusted: list[str] = field(default_factory=list)  # URIs of kept-but-unloadable pickles
    warnings: list[str] = field(default_factory=list)


def steward_model_name(mlflow_name: str) -> str:
    """A valid Steward model name for ``mlflow_name``: invalid characters become '-'."""
    name = _INVALID_NAME_CHARS.sub("-", mlflow_name).lstrip("_.-")[:128]
    return name or "mlflow-model"


def steward_alias(mlflow_alias: str) -> str | None:
    alias = _INVALID_ALIAS_CHARS.sub("-", mlflow_alias.lower())
    if not _ALIAS_RE.match(alias) or alias == "latest":
        return None
    return alias


def import_from_mlflow(
    client: Client,
    *,
    tracking_uri: str,
    registry_uri: str | None = None,
    models: list[str] | None = None,
    progress: Progress | None = None,
    trust_pickles: bool = False,
) -> ImportReport:
    """Copy MLflow's registered models (all, or those named in ``models``) into Steward.

    Each version becomes a Steward version with its run's params and full metric histories
    (as a Steward run), its artifacts and its lineage; aliases follow. Pickled scikit-learn
    models are loaded and re-packaged as skops only with ``trust_pickles=True``; otherwise they
    are kept as untrusted python-flavor versions, listed in ``ImportReport.untrusted``.
    ``progress(label, done, total)`` is called after each version.
    """
    mlflow = _require_mlflow()
    if trust_pickles:
        _require_pickle_opt_in(mlflow)
    ml = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)
    importer = _Importer(client, mlflow, ml, tracking_uri, registry_uri or tracking_uri)
    importer.trust_pickles = trust_pickles
    plan = [(rm, _versions(ml, rm.name)) for rm in _registered_models(ml, models)]
    total = sum(len(versions) for _, versions in plan)
    done = 0
    for registered, versions in plan:
        for label in importer.import_model(registered, versions):
            done += 1
            if progress is not None:
                progress(label, done, total)
    return importer.report


def _require_mlflow() -> Any:
    try:
        import mlflow
    except ImportError as exc:
        raise InvalidInput(
            "Importing from MLflow needs the mlflow package: pip install 'ml-steward[mlflow]'.",
            field="mlflow",
        ) from exc
    return mlflow


def _require_pickle_opt_in(mlflow: Any) -> None:
    # MLflow 3 refuses to deserialize any model unless this variable is true; say so up front
    # rather than failing on the first version.
    allowed: Any = mlflow.environment_variables.MLFLOW_ALLOW_PICKLE_DESERIALIZATION
    if not allowed.get():
        raise InvalidInput(
            "trust_pickles=True loads pickled models with MLflow's own loader, which also "
            "requires MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true in the environment. Set it, or "
            "import without trust_pickles to keep the pickles as untrusted versions.",
            field="trust_pickles",
        )


def _registered_models(ml: Any, names: list[str] | None) -> list[Any]:
    if names is not None:
        found = []
        for name in names:
            try:
                found.append(ml.get_registered_model(name))
            except Exception as exc:  # MlflowException: RESOURCE_DOES_NOT_EXIST
                raise InvalidInput(
                    f"The MLflow registry has no model {name!r} ({exc}). "
                    "Check the name, or leave out models to import all of them.",
                    field="models",
                ) from exc
        return found
    found, token = [], None
    while True:
        page = ml.search_registered_models(max_results=1000, page_token=token)
        found += [m for m in page if (m.tags or {}).get("mlflow.prompt.is_prompt") != "true"]
        token = page.token
        if not token:
            return found


def _versions(ml: Any, name: str) -> list[Any]:
    quote = '"' if "'" in name else "'"
    found, token = [], None
    while True:
        page = ml.search_model_versions(
            f"name = {quote}{name}{quote}", max_results=10_000, page_token=token
        )
        found += list(page)
        token = page.token
        if not token:
            return sorted(found, key=lambda v: int(v.version))


def _imported_runs(client: Client) -> dict[str, str]:
    """MLflow run id -> Steward run id, from the lineage of versions imported before."""
    found = {}
    for version in client.search_versions():
        mlflow_run_id = version.lineage.external.get("mlflow.run_id")
        if mlflow_run_id and version.lineage.run_id:
            found[mlflow_run_id] = version.lineage.run_id
    return found


class _Importer:
    """The state of one import: the report, and MLflow run id -> Steward run id."""

    def __init__(
        self, client: Client, mlflow: Any, ml: Any, tracking_uri: str, registry_uri: str
    ) -> None:
        self.client, self.mlflow, self.ml = client, mlflow, ml
        self.tracking_uri, self.registry_uri = tracking_uri, registry_uri
        self.trust_pickles = False
        self.report = ImportReport()
        self.runs = _imported_runs(client)
        self.experiments: dict[str, str] = {}

    def warn(self, message: str) -> None:
        self.report.warnings.append(message)

    # models ------------------------------------------------------------------------------
    def import_model(self, registered: Any, versions: list[Any]) -> Any:
        """Import one model's versions in order, yielding a label after each, then its aliases."""
        name = steward_model_name(registered.name)
        model = self._ensure_model(registered, name, versions)
        if model is None:
            self.report.skipped += len(versions)
            yield from (f"{registered.name} v{v.version} (skipped)" for v in versions)
            return
        imported = self._imported_versions(name, registered.name)
        for version in versions:
            key = str(version.version)
            if key in imported:
                self.report.skipped += 1
            else:
                number = self._import_version(name, version)
                if number is not None:
                    imported[key] = number
            yield f"{registered.name} v{version.version}"
        self._set_aliases(model, registered, imported)

    def _ensure_model(self, registered: Any, name: str, versions: list[Any]) -> Model | None:
        try:
            model = self.client.get_model(name)
        except NotFound:
            tags = clean_tags(registered.tags or {})
            tags[NAME_TAG] = registered.name
            owner = (registered.tags or {}).get("owner") or next(
                (v.user_id for v in versions if v.user_id), None
            )
            self.report.models += 1
            return self.client.create_model(
                name, owner=owner, description=registered.description, tags=tags
            )
        if model.tags.get(NAME_TAG) != registered.name:
            self.warn(
                f"MLflow model {registered.name!r} was not imported: Steward already has a model "
                f"named {name!r} that was not imported from it. Rename one of them and run the "
                "import again."
            )
            return None
        return model

    def _imported_versions(self, name: str, mlflow_name: str) -> dict[str, int]:
        """MLflow version -> Steward version, for versions a previous import copied."""
        found = {}
        for version in self.client.search_versions(model=name):
            external = version.lineage.external
            if (
                external.get("mlflow.model_name") == mlflow_name
                and "mlflow.model_version" in external
            ):
                found[external["mlflow.model_version"]] = version.version
        return found

    def _set_aliases(self, model: Any, registered: Any, imported: dict[str, int]) -> None:
        current = self.client.get_model(model.name).aliases
        for mlflow_alias, mlflow_version in (registered.aliases or {}).items():
            alias = steward_alias(mlflow_alias)
            target = imported.get(str(mlflow_version))
            if alias is None:
                self.warn(
                    f"MLflow alias {mlflow_alias!r} of {registered.name!r} is not a valid Steward "
                    "alias (lowercase letters, digits, '_' or '-', starting with a letter); "
                    "set it by hand."
                )
            elif target is None:
                self.warn(
                    f"MLflow alias {mlflow_alias!r} of {registered.name!r} points at version "
                    f"{mlflow_version}, which was not imported; it was not set."
                )
            elif current.get(alias) != target:
                self.client.set_alias(model.name, alias, target)
                self.report.aliases += 1

    # versions ----------------------------------------------------------------------------
    def _import_version(self, name: str, version: Any) -> int | None:
        label = f"MLflow model {version.name!r} version {version.version}"
        if str(version.status) != "READY":
            self.warn(f"{label} was skipped: its status is {version.status}, not READY.")
            self.report.skipped += 1
            return None
        with tempfile.TemporaryDirectory(prefix="steward-mlflow-") as tmp:
            try:
                packaged = package_version(
                    self.mlflow,
                    self._download(version, Path(tmp)),
                    trust_pickles=self.trust_pickles,
                )
            except (NotImportable, InvalidInput) as exc:
                self.warn(f"{label} was skipped: {exc}.")
                self.report.skipped += 1
                return None
            refs = self._upload(packaged)
        self.report.warnings += [f"{label}: {note}." for note in packaged.notes]
        run = self._run(version.run_id) if version.run_id else None
        created = self.client.create_version(
            name,
            flavor=packaged.flavor,
            files=refs,
            primary_file=packaged.primary_file,
            signature=packaged.signature,
            metrics=finite_metrics(run.data.metrics) if run else None,
            params=dict(run.data.params) if run else None,
            tags=self._version_tags(version),
            lineage=self._lineage(version, run),
            description=version.description,
            trusted=packaged.trusted,
        )
        self.report.versions += 1
        if packaged.flavor.value == "python" and not packaged.trusted:
            self.report.untrusted.append(created.uri)
            self.warn(
                f"{label} ({packaged.mlflow_flavor}) is a pickle; it was registered as "
                f"{created.uri} with flavor 'python', untrusted: kept, but not loadable until "
                "someone who trusts it registers it again with trusted=True, or imports it with "
                "trust_pickles=True."
            )
        return created.version

    def _download(self, version: Any, dst: Path) -> Path:
        uri = f"models:/{version.name}/{version.version}"
        local = self.mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=str(dst),
            tracking_uri=self.tracking_uri, registry_uri=self.registry_uri,
        )  # fmt: skip
        return Path(local)

    def _upload(self, packaged: PackagedVersion) -> dict[str, ArtifactRef]:
        refs = {}
        for file_name, content in packaged.files.items():
            ref = self.client.upload_artifact(content)
            self.report.artifact_bytes += ref.size
            refs[file_name] = ref
        return refs

    def _run(self, mlflow_run_id: str) -> Any:
        """The MLflow run, copied to Steward once per import (and reused across imports)."""
        run = self.ml.get_run(mlflow_run_id)
        if mlflow_run_id not in self.runs:
            copied = copy_run(self.client, self.ml, run, self._experiment(run.info.experiment_id))
            self.runs[mlflow_run_id] = copied.run_id
            self.report.runs += 1
            self.report.metric_points += copied.points
            self.report.warnings += copied.warnings
        return run

    def _experiment(self, experiment_id: str) -> str:
        if experiment_id not in self.experiments:
            self.experiments[experiment_id] = self.ml.get_experiment(experiment_id).name
        return self.experiments[experiment_id]

    @staticmethod
    def _version_tags(version: Any) -> dict[str, str]:
        tags = clean_tags(version.tags or {})
        stage = getattr(version, "current_stage", None)
        if stage and stage != "None":
            tags["mlflow.stage"] = str(stage)  # MLflow's deprecated stages, kept for reference
        return tags

    def _lineage(self, version: Any, run: Any | None) -> dict[str, Any]:
        run_tags = dict(run.data.tags) if run else {}
        external = {
            "mlflow.model_name": version.name,
            "mlflow.model_version": str(version.version),
            "mlflow.run_id": version.run_id,
            "mlflow.experiment_id": run.info.experiment_id if run else None,
            "mlflow.source": version.source,
            "mlflow.model_id": getattr(version, "model_id", None),
        }
        return {
            "run_id": self.runs.get(version.run_id) if version.run_id else None,
            "git": {"commit": run_tags.get("mlflow.source.git.commit")},
            "command": run_tags.get("mlflow.source.name"),
            "external": {k: str(v) for k, v in external.items() if v},
        }
