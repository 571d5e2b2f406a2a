"""Content fingerprints ("sha256:<hex>") for files, directories, tables and arrays.

Files and directories are hashed with the stdlib alone. A DataFrame, Table or array can only
exist if its library is already imported, so ``sys.modules`` tells which kind ``data`` is and
the table helpers (numpy, pandas, pyarrow) load only then.
"""

from __future__ import annotations

import hashlib
import sys
from os import PathLike
from pathlib import Path

from steward.errors import InvalidInput

_CHUNK = 1 << 20  # stream files in 1 MiB pieces: data sets may not fit in memory

_KINDS = (
    "a file or directory path, bytes, a pandas DataFrame or Series, a pyarrow Table "
    "or a numpy array"
)


def _digest(hasher: hashlib._Hash) -> str:
    return f"sha256:{hasher.hexdigest()}"


def _hash_file(path: Path, hasher: hashlib._Hash) -> None:
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)


def _file_fingerprint(path: Path) -> str:
    """The plain sha256 of the content, so it matches ``sha256sum``."""
    hasher = hashlib.sha256()
    _hash_file(path, hasher)
    return _digest(hasher)


def _directory_fingerprint(root: Path) -> str:
    """Sorted relative paths and contents: renaming, adding or editing a file changes it."""
    hasher = hashlib.sha256(b"steward-directory-v1\0")
    files = sorted(
        (p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix()
    )
    for path in files:
        relative = path.relative_to(root).as_posix().encode()
        # Length-prefix the name and content so boundaries between files cannot shift.
        hasher.update(len(relative).to_bytes(8, "big") + relative)
        hasher.update(path.stat().st_size.to_bytes(8, "big"))
        _hash_file(path, hasher)
    return _digest(hasher)


def _path_fingerprint(path: Path) -> str:
    if path.is_dir():
        return _directory_fingerprint(path)
    if path.is_file():
        return _file_fingerprint(path)
    raise InvalidInput(f"Cannot fingerprint '{path}': no such file or directory.", field="data")


def _table_kind(data: object) -> str | None:
    """Which of pandas / pyarrow / numpy ``data`` belongs to, if any (without importing them)."""
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, (pandas.DataFrame, pandas.Series)):
        return "pandas"
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None and isinstance(data, (pyarrow.Table, pyarrow.RecordBatch)):
        return "pyarrow"
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(data, numpy.ndarray):
        return "numpy"
    return None


def fingerprint(data: object) -> str:
    """A stable "sha256:<hex>" of ``data``'s content.

    Equal content gives equal fingerprints across processes; changing any value, column name
    or dtype changes it. Paths hash their bytes (directories: relative paths and contents).
    """
    if isinstance(data, (str, PathLike)):
        return _path_fingerprint(Path(data))
    if isinstance(data, (bytes, bytearray, memoryview)):
        return _digest(hashlib.sha256(bytes(data)))
    kind = _table_kind(data)
    if kind is None:
        raise InvalidInput(
            f"Cannot fingerprint an object of type {type(data).__name__}; pass {_KINDS}.",
            field="data",
        )
    from steward.lineage import _tables  # only reached when that library is already loaded

    hasher = hashlib.sha256()
    _tables.update(hasher, data, kind)
    return _digest(hasher)
