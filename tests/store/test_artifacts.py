"""FsspecArtifactStore: content addressing, idempotent writes, limits, and refused names."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from steward.domain.artifacts import check_digest, check_relative_path
from steward.errors import InvalidInput, NotFound, PayloadTooLarge
from steward.store.artifacts.store import FsspecArtifactStore


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def store(root: Path) -> FsspecArtifactStore:
    return FsspecArtifactStore(str(root), max_bytes=3 * 1024 * 1024)


def _blobs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "sha256").rglob("*") if p.is_file())


def _temporaries(root: Path) -> list[Path]:
    tmp = root / "tmp"
    return sorted(tmp.iterdir()) if tmp.exists() else []


def test_blobs_are_named_by_their_sha256(store, root):
    data = "données ✓".encode() * 1000
    hexdigest = hashlib.sha256(data).hexdigest()
    ref = store.put_bytes(data)
    assert ref.digest == f"sha256:{hexdigest}"
    assert ref.size == len(data)
    assert store.exists(ref.digest)
    assert store.get_bytes(ref.digest) == data
    assert _blobs(root) == [root / "sha256" / hexdigest[:2] / hexdigest[2:4] / hexdigest]
    assert store.local_path(ref.digest) == str(_blobs(root)[0])
    assert _temporaries(root) == []


def test_empty_blob(store):
    ref = store.put_bytes(b"")
    assert ref.digest == "sha256:" + hashlib.sha256(b"").hexdigest()
    assert (ref.size, store.get_bytes(ref.digest)) == (0, b"")


def test_put_is_idempotent(store, root):
    first = store.put_bytes(b"same bytes")
    blob = _blobs(root)[0]
    mtime = blob.stat().st_mtime_ns
    second = store.put_bytes(b"same bytes")
    assert second == first
    assert _blobs(root) == [blob]
    assert blob.stat().st_mtime_ns == mtime  # the stored blob is not rewritten
    assert _temporaries(root) == []
    other = store.put_bytes(b"other bytes")
    assert other.digest != first.digest
    assert len(_blobs(root)) == 2


def test_stream_and_chunks_match_bytes(store, root):
    data = os.urandom(2 * 1024 * 1024 + 123)  # more than one read chunk
    by_bytes = store.put_bytes(data)
    assert store.put_stream(io.BytesIO(data)) == by_bytes
    pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    assert store.put_chunks(iter(pieces)) == by_bytes
    assert b"".join(store.iter_chunks(by_bytes.digest)) == data
    assert len(_blobs(root)) == 1


def test_size_limit_is_refused_and_leaves_nothing(root):
    store = FsspecArtifactStore(str(root), max_bytes=1000)
    assert store.put_bytes(b"x" * 1000).size == 1000  # exactly at the limit is fine
    before = _blobs(root)
    with pytest.raises(PayloadTooLarge) as caught:
        store.put_bytes(b"y" * 1001)
    assert caught.value.http_status == 413
    assert isinstance(caught.value, InvalidInput)
    with pytest.raises(PayloadTooLarge):
        store.put_chunks(iter([b"z" * 600, b"z" * 600]))
    with pytest.raises(PayloadTooLarge):
        store.put_stream(io.BytesIO(b"w" * 5000))
    assert _temporaries(root) == []
    assert _blobs(root) == before
    assert not store.exists("sha256:" + hashlib.sha256(b"y" * 1001).hexdigest())


@pytest.mark.parametrize(
    "path",
    ["../x", "/etc/passwd", "a/../../b", "C:\\x", "c:x", "a\\..\\b", "..", "a/..", "", "a/\x00b",
     "\\\\server\\share", "./../x"],
)  # fmt: skip
def test_escaping_paths_are_refused(path):
    with pytest.raises(InvalidInput) as caught:
        check_relative_path(path)
    assert caught.value.details["field"] == "path"


@pytest.mark.parametrize(
    ("path", "normalized"),
    [("model.pkl", "model.pkl"), ("plots/roc.png", "plots/roc.png"), ("a/./b", "a/b"),
     ("dir/sub/file ü.txt", "dir/sub/file ü.txt")],
)  # fmt: skip
def test_relative_paths_are_accepted(path, normalized):
    assert check_relative_path(path) == normalized


def test_missing_digest_is_not_found(store):
    digest = "sha256:" + "0" * 64
    assert not store.exists(digest)
    with pytest.raises(NotFound) as caught:
        store.get_bytes(digest)
    assert caught.value.details["field"] == "digest"
    with pytest.raises(NotFound):
        list(store.iter_chunks(digest))


@pytest.mark.parametrize(
    "digest",
    ["", "sha256:", "sha256:abc", "md5:" + "0" * 32, "sha256:" + "G" * 64, "sha256:" + "A" * 64,
     "sha256:" + "0" * 63 + "/", "sha256:../../../../etc/passwd", "0" * 64, "sha256:" + "0" * 65,
     "sha256:" + "0" * 64 + "\n"],
)  # fmt: skip
def test_bad_digest_is_invalid_input(store, digest):
    with pytest.raises(InvalidInput) as caught:
        check_digest(digest)
    assert caught.value.details["field"] == "digest"
    for call in (store.exists, store.get_bytes, store.open):
        with pytest.raises(InvalidInput):
            call(digest)
