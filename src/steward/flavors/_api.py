"""package_model, validate_artifact and load_model: dispatch to one backend per flavor.

Backends import numpy, scikit-learn, skops or onnxruntime. They are imported inside the
functions that need them, so ``import steward.flavors`` stays cheap and serving an ONNX model
never pays for scikit-learn (and the reverse).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import PurePosixPath

from steward.domain.enums import Flavor
from steward.domain.signature import Signature
from steward.errors import InvalidInput, NotFound
from steward.flavors._detect import SUFFIX_FLAVORS, Source, as_flavor, detect
from steward.flavors._loaded import LoadedModel
from steward.flavors._types import FLAVOR_LABELS, MODEL_FILES, PackagedModel

FileSource = Mapping[str, bytes] | Callable[[str], bytes]


def _check(flavor: Flavor, content: bytes) -> str | None:
    """Why ``content`` is not a ``flavor`` artifact, or None when it is."""
    if flavor is Flavor.SKLEARN:
        from steward.flavors import _sklearn

        return _sklearn.check(content)
    if flavor is Flavor.ONNX:
        from steward.flavors import _onnx

        return _onnx.check(content)
    from steward.flavors import _python

    return _python.check(content)


def package_model(
    model: object,
    *,
    flavor: Flavor | str | None = None,
    export_onnx: bool = False,
    sample_input: object | None = None,
    trusted: bool = False,
) -> PackagedModel:
    """Serialize ``model`` into named files, validated, with a signature when a sample is given.

    ``model`` may be a scikit-learn estimator, ONNX bytes / path / ``onnx.ModelProto``, a
    ``.skops`` path, or any object with ``predict`` (python flavor: needs ``trusted=True``).
    """
    claimed = as_flavor(flavor)
    source = detect(model)
    target = claimed or source.flavor
    if export_onnx and target is Flavor.PYTHON:
        raise InvalidInput(
            "export_onnx=True applies to scikit-learn models only; this one is packaged with "
            "flavor 'python'. Export it to ONNX yourself and register the .onnx file.",
            field="export_onnx",
        )
    if source.content is not None:
        _require_valid(source, target, claimed is not None)
        obj = None
    else:
        _require_compatible(source, target)
        obj = source.obj
    if target is Flavor.PYTHON:
        return _package_python(source, obj, sample_input, trusted)
    if target is Flavor.ONNX:
        return _package_onnx(source, obj, sample_input)
    return _package_sklearn(source, obj, sample_input, export_onnx)


def _require_valid(source: Source, target: Flavor, claimed: bool) -> None:
    reason = _check(target, source.content or b"")
    if reason is None:
        return
    said = f" It was given with flavor='{target.value}'." if claimed else ""
    raise InvalidInput(
        f"{source.label} is not a valid {FLAVOR_LABELS[target]}: {reason}.{said} "
        "Register it with the flavor that matches its content, or export it again.",
        field="flavor" if claimed else "model",
        details={"file": source.name, "flavor": target.value},
    )


def _require_compatible(source: Source, target: Flavor) -> None:
    if source.flavor is target:
        return
    if source.flavor is Flavor.SKLEARN and target is Flavor.PYTHON:
        return  # an estimator may be pickled on purpose; trusted=True is still required
    hint = {
        Flavor.SKLEARN: "Register it with flavor='sklearn' and export_onnx=True to add an "
        "ONNX copy.",
        Flavor.ONNX: "Register it with flavor='onnx'.",
        Flavor.PYTHON: "Register it with flavor='python' and trusted=True.",
    }[source.flavor]
    raise InvalidInput(
        f"The model of type {source.name} is not a {FLAVOR_LABELS[target]}, so it cannot be "
        f"registered with flavor='{target.value}'. {hint}",
        field="flavor",
        details={"flavor": target.value},
    )


def _package_sklearn(
    source: Source, obj: object | None, sample: object | None, export: bool
) -> PackagedModel:
    from steward.flavors import _sklearn

    name = MODEL_FILES[Flavor.SKLEARN]
    content = source.content if source.content is not None else _sklearn.dump(obj)
    needs_object = sample is not None or export
    estimator = obj if obj is not None or not needs_object else _sklearn.load(content, name)
    files = {name: content}
    if export:
        from steward.flavors import _export

        count = _sklearn.n_features(estimator, sample)
        files[MODEL_FILES[Flavor.ONNX]] = _export.export_onnx(estimator, count)
    signature = _sklearn.signature_for(estimator, sample) if sample is not None else None
    return PackagedModel(Flavor.SKLEARN, files, name, signature)


def _package_onnx(source: Source, obj: object | None, sample: object | None) -> PackagedModel:
    from steward.flavors import _onnx

    name = MODEL_FILES[Flavor.ONNX]
    if source.content is None:
        content = _onnx.proto_bytes(obj)
        _require_valid(Source(Flavor.ONNX, source.name, content=content), Flavor.ONNX, False)
    else:
        content = source.content
    signature = _onnx.signature_for(_onnx.session(content), sample)
    return PackagedModel(Flavor.ONNX, {name: content}, name, signature)


def _package_python(
    source: Source, obj: object | None, sample: object | None, trusted: bool
) -> PackagedModel:
    if not trusted:
        raise InvalidInput(
            f"The model of type {source.name} would be packaged with flavor 'python', which "
            "stores it with pickle; loading a pickle runs code from it. Register it with "
            "trusted=True if you trust it, or use a scikit-learn (skops) or ONNX model.",
            field="trusted",
        )
    from steward.flavors import _python

    name = MODEL_FILES[Flavor.PYTHON]
    content = source.content if source.content is not None else _python.dump(obj)
    signature = None
    if sample is not None:
        # trusted=True: the caller vouches for this object, so unpickling their file is fine.
        model = (
            obj
            if obj is not None
            else _python.load(content, registered_trusted=True, allow_trusted=True)
        )
        signature = _python.signature_for(model, sample)
    return PackagedModel(Flavor.PYTHON, {name: content}, name, signature)


def validate_artifact(flavor: Flavor, name: str, content: bytes) -> None:
    """Raise InvalidInput(field="artifact") when ``content`` is not what ``name``/``flavor`` claim.

    A file's suffix (.skops, .onnx, .pkl) picks the check; an sklearn version may also carry
    an .onnx export. Other names are checked as the flavor's primary file.
    """
    flavor = Flavor(flavor)
    kind = SUFFIX_FLAVORS.get(PurePosixPath(name).suffix.lower(), flavor)
    if kind is not flavor and not (flavor is Flavor.SKLEARN and kind is Flavor.ONNX):
        raise InvalidInput(
            f"The file '{name}' looks like a {FLAVOR_LABELS[kind]}, but the version's flavor "
            f"is '{flavor.value}'. Upload a {FLAVOR_LABELS[flavor]} or register a new version "
            f"with flavor='{kind.value}'.",
            field="artifact",
        )
    reason = _check(kind, content)
    if reason is not None:
        raise InvalidInput(
            f"The file '{name}' is not a valid {FLAVOR_LABELS[kind]}: {reason}. Upload a file "
            f"that matches the version's flavor '{flavor.value}', or export it again.",
            field="artifact",
            details={"file": name, "flavor": flavor.value},
        )


def load_model(
    flavor: Flavor | str,
    files: FileSource,
    *,
    signature: Signature | None,
    registered_trusted: bool,
    allow_trusted: bool,
    prefer: Flavor | str | None = None,
) -> LoadedModel:
    """Load a version's model from its files (a mapping, or a callable name -> bytes).

    ``prefer=Flavor.ONNX`` runs an sklearn version's ONNX export when it has one.
    """
    resolved = as_flavor(flavor) or Flavor.SKLEARN
    preferred = as_flavor(prefer)
    if resolved is Flavor.PYTHON:
        from steward.flavors import _python

        # Refuse before fetching any bytes: nothing to gain from downloading an unusable pickle.
        _python.ensure_trusted(registered_trusted=registered_trusted, allow_trusted=allow_trusted)
        model = _python.load(
            _read(files, Flavor.PYTHON), registered_trusted=True, allow_trusted=True
        )
        return LoadedModel(Flavor.PYTHON, signature, _python.PythonPredictor(model, signature))
    if resolved is Flavor.SKLEARN and preferred is Flavor.ONNX:
        onnx_bytes = _read_optional(files, MODEL_FILES[Flavor.ONNX])
        if onnx_bytes is not None:
            return _load_onnx(onnx_bytes, signature)
    if resolved is Flavor.ONNX:
        return _load_onnx(_read(files, Flavor.ONNX), signature)
    from steward.flavors import _sklearn

    name, content = _pick(files, Flavor.SKLEARN)
    estimator = _sklearn.load(content, name)
    return LoadedModel(Flavor.SKLEARN, signature, _sklearn.SklearnPredictor(estimator, signature))


def _load_onnx(content: bytes, signature: Signature | None) -> LoadedModel:
    from steward.flavors import _onnx

    sess = _onnx.session(content)
    effective = signature or _onnx.session_signature(sess)
    return LoadedModel(Flavor.ONNX, effective, _onnx.OnnxPredictor(sess, effective))


def _read(files: FileSource, flavor: Flavor) -> bytes:
    return _pick(files, flavor)[1]


def _pick(files: FileSource, flavor: Flavor) -> tuple[str, bytes]:
    """The flavor's primary file: its conventional name, else the one file with its suffix."""
    name = MODEL_FILES[flavor]
    if not isinstance(files, Mapping):
        return name, files(name)
    if name in files:
        return name, files[name]
    suffix = PurePosixPath(name).suffix
    matches = [n for n in files if PurePosixPath(n).suffix.lower() == suffix]
    if len(matches) == 1:
        return matches[0], files[matches[0]]
    found = ", ".join(sorted(files)) or "none"
    raise NotFound(
        f"The model has no '{name}' file to load as flavor '{flavor.value}' (files: {found}). "
        "Upload the model's artifact again.",
        details={"file": name},
    )


def _read_optional(files: FileSource, name: str) -> bytes | None:
    if isinstance(files, Mapping):
        return files.get(name)
    try:
        return files(name)
    except (LookupError, FileNotFoundError):  # NotFound is a LookupError
        return None
