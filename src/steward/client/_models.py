"""log_model / register_model / load_model: from a training script to the registry and back."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from steward.client._client import Client
from steward.domain.entities import ArtifactRef, ModelVersion
from steward.domain.enums import Flavor
from steward.errors import NotFound
from steward.flavors import LoadedModel, PackagedModel, package_model
from steward.flavors import load_model as load_files
from steward.lineage import (
    command_line,
    environment,
    fingerprint,
    git_state,
    reference_sample,
)
from steward.schemas import parse
from steward.schemas.registry import VersionCreate
from steward.settings import Settings


def log_model(
    model: object,
    name: str,
    *,
    metrics: Mapping[str, float] | None = None,
    params: Mapping[str, Any] | None = None,
    training_data: object | None = None,
    evaluation_data: object | None = None,
    tags: Mapping[str, str] | None = None,
    flavor: Flavor | str | None = None,
    export_onnx: bool = False,
    sample_input: object | None = None,
    trusted: bool = False,
    description: str | None = None,
    run_id: str | None = None,
    owner: str | None = None,
    team: str | None = None,
    risk_tier: int | None = None,
    use_case: str | None = None,
    lineage: Mapping[str, Any] | None = None,
    client: Client | None = None,
) -> ModelVersion:
    """Package ``model`` safely, capture its lineage, and register it as a new version of ``name``.

    A scikit-learn estimator is stored with skops (loads without running code), an ONNX file or
    ``ModelProto`` as ONNX, any other object with ``predict`` as a pickled ``python`` model (only
    with ``trusted=True``). ``training_data`` gives the signature, the data fingerprint and the
    reference sample that monitoring compares live traffic with. The model is created on first
    use with ``owner``, ``team``, ``risk_tier`` and ``use_case``.

    Under ``steward reproduce`` (``STEWARD_REPRODUCE_CAPTURE`` set) nothing is uploaded or
    registered: see ``_capture_for_reproduction`` for what is written and returned instead.
    """
    sample = sample_input if sample_input is not None else training_data
    packaged = package_model(
        model, flavor=flavor, export_onnx=export_onnx, sample_input=sample, trusted=trusted
    )
    capture_file = (client.settings if client is not None else Settings()).reproduce_capture
    if capture_file is not None:
        data = _data_fingerprints(training_data, evaluation_data, lineage)
        return _capture_for_reproduction(capture_file, name, packaged, metrics, params, data)
    client = client or default_client()
    refs = _upload_files(client, packaged)
    reference = (
        client.upload_artifact(reference_sample(training_data))
        if training_data is not None
        else None
    )
    _ensure_model(client, name, owner=owner, team=team, risk_tier=risk_tier, use_case=use_case)
    return client.create_version(
        name,
        flavor=packaged.flavor,
        files=refs,
        primary_file=packaged.primary_file,
        signature=packaged.signature,
        metrics=metrics,
        params=params,
        tags=tags,
        lineage=capture_lineage(training_data, evaluation_data, run_id, lineage),
        reference_sample=reference,
        description=description,
        trusted=trusted,
    )


def register_model(
    path: str | Path, name: str, *, flavor: Flavor | str | None = None, **kwargs: Any
) -> ModelVersion:
    """Register a model file (``.onnx``, ``.skops``) as a new version; see ``log_model``."""
    return log_model(Path(path), name, flavor=flavor, **kwargs)


def capture_lineage(
    training_data: object | None,
    evaluation_data: object | None,
    run_id: str | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    git = git_state()
    git_info = {} if git is None else {
        "commit": git.commit, "dirty": git.dirty, "branch": git.branch, "remote": git.remote_url,
    }  # fmt: skip
    captured: dict[str, Any] = {
        "git": git_info,
        **_data_fingerprints(training_data, evaluation_data),
        "environment": environment(),
        "command": command_line(),
        "run_id": run_id,
    }  # fmt: skip
    captured.update(extra or {})
    return captured


def _data_fingerprints(
    training_data: object | None,
    evaluation_data: object | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fingerprints lineage records for the data, unless ``lineage=`` gave them already."""
    computed = {
        "training_data": fingerprint(training_data) if training_data is not None else None,
        "evaluation_data": fingerprint(evaluation_data) if evaluation_data is not None else None,
    }
    return {key: (extra or {}).get(key, value) for key, value in computed.items()}


def _capture_for_reproduction(
    capture_file: Path,
    name: str,
    packaged: PackagedModel,
    metrics: Mapping[str, float] | None,
    params: Mapping[str, Any] | None,
    data: dict[str, Any],
) -> ModelVersion:
    """Under ``steward reproduce``: append what would be registered to ``capture_file``.

    One JSON line: ``name``, ``metrics``, ``params``, ``training_data``, ``evaluation_data``.
    Nothing is uploaded or registered, so a re-run never adds a version, yet the training
    script carries on as it would (it may log several models, or use the returned version).
    Metrics and params are validated and normalized as registration would. The version comes
    back as registration would have made it, but numbered 0 (real versions start at 1), with
    empty ids, and its files' digests computed locally.
    """
    files = {
        file: ArtifactRef(digest=fingerprint(content), size=len(content))
        for file, content in packaged.files.items()
    }
    body = parse(VersionCreate, {
        "flavor": packaged.flavor, "files": files, "metrics": dict(metrics or {}),
        "params": dict(params or {}), "lineage": data,
    })  # fmt: skip
    record = {"name": name, "metrics": body.metrics, "params": body.params, **data}
    with capture_file.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    return ModelVersion(
        id="",
        model_id="",
        model_name=name,
        version=0,
        flavor=body.flavor,
        files=body.files,
        primary_file=packaged.primary_file,
        signature=packaged.signature,
        metrics=body.metrics,
        params=body.params,
        lineage=body.lineage,
        created_at=datetime.now(UTC),
        created_by="steward reproduce",
    )


def _upload_files(client: Client, packaged: PackagedModel) -> dict[str, ArtifactRef]:
    return {name: client.upload_artifact(content) for name, content in packaged.files.items()}


def _ensure_model(
    client: Client,
    name: str,
    *,
    owner: str | None,
    team: str | None,
    risk_tier: int | None,
    use_case: str | None,
) -> None:
    try:
        client.get_model(name)
    except NotFound:
        client.create_model(
            name, owner=owner, team=team, risk_tier=risk_tier or 3, use_case=use_case
        )


def load_model(
    uri: str,
    *,
    allow_trusted: bool | None = None,
    prefer: Flavor | str | None = None,
    client: Client | None = None,
) -> LoadedModel:
    """Load ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``; ``predict`` takes a DataFrame,
    a numpy array or a list of dicts. A python-flavor model loads only when it was registered
    as trusted and ``allow_trusted`` (or ``STEWARD_ALLOW_TRUSTED_MODELS``) is true.
    """
    client = client or default_client()
    version = client.get_version(uri)
    allowed = client.settings.allow_trusted_models if allow_trusted is None else allow_trusted

    def read(file_name: str) -> bytes:
        ref = version.files.get(file_name)
        if ref is None:
            raise NotFound(f"{version.uri} has no file {file_name!r}.", details={"file": file_name})
        return client.download_artifact(ref.digest)

    return load_files(
        version.flavor,
        read,
        signature=version.signature,
        registered_trusted=version.trusted,
        allow_trusted=allowed,
        prefer=Flavor(prefer) if prefer is not None else None,
    )


_DEFAULT: list[Client] = []


def default_client() -> Client:
    """One Client per process for the module-level functions, built from the environment."""
    if not _DEFAULT:
        _DEFAULT.append(Client())
    return _DEFAULT[0]
