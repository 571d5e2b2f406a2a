"""FsspecArtifactStore: blobs named by their sha256, written to a temporary name then renamed.

Two writers of the same bytes race harmlessly (same name, same content); a reader never sees a
partial blob because only a complete, verified temporary file is ever renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import uuid
from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import IO, Any

import fsspec

from steward.domain.artifacts import check_digest, check_relative_path
from steward.domain.entities import ArtifactRef
from steward.errors import NotFound, PayloadTooLarge, Unavailable
from steward.settings import Settings

_CHUNK = 1024 * 1024


class FsspecArtifactStore:
    def __init__(self, root: str, *, max_bytes: int) -> None:
        self.root = root.rstrip("/")
        self.max_bytes = max_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> FsspecArtifactStore:
        return cls(settings.artifact_root, max_bytes=settings.artifacts.max_bytes)

    @cached_property
    def _fs_and_root(self) -> tuple[Any, str]:
        fs, path = fsspec.core.url_to_fs(self.root)
        return fs, path.rstrip("/")

    def _path(self, digest: str) -> str:
        fs_root = self._fs_and_root[1]
        hexdigest = check_digest(digest).split(":", 1)[1]
        return f"{fs_root}/sha256/{hexdigest[:2]}/{hexdigest[2:4]}/{hexdigest}"

    def put_bytes(self, data: bytes) -> ArtifactRef:
        return self.put_chunks([data])

    def put_stream(self, stream: IO[bytes]) -> ArtifactRef:
        return self.put_chunks(iter(lambda: stream.read(_CHUNK), b""))

    def put_chunks(self, chunks: Iterable[bytes]) -> ArtifactRef:
        fs, fs_root = self._fs_and_root
        tmp = f"{fs_root}/tmp/{uuid.uuid4().hex}"
        digest, size = hashlib.sha256(), 0
        try:
            fs.makedirs(f"{fs_root}/tmp", exist_ok=True)
            with fs.open(tmp, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise PayloadTooLarge(
                            f"The artifact is over the size limit of {self.max_bytes} bytes; "
                            "raise STEWARD_ARTIFACTS_MAX_BYTES or store a smaller file.",
                            field="artifact",
                        )
                    digest.update(chunk)
                    out.write(chunk)
            ref = ArtifactRef(digest=f"sha256:{digest.hexdigest()}", size=size)
            final = self._path(ref.digest)
            if not fs.exists(final):
                fs.makedirs(posixpath.dirname(final), exist_ok=True)
                fs.mv(tmp, final)
            return ref
        except OSError as exc:
            raise Unavailable(f"The artifact store at {self.root!r} failed: {exc}") from exc
        finally:
            if fs.exists(tmp):
                fs.rm(tmp)

    def exists(self, digest: str) -> bool:
        if self._local:
            return os.path.isfile(self._path(digest))
        fs = self._fs_and_root[0]
        return bool(fs.exists(self._path(digest)))

    def get_bytes(self, digest: str) -> bytes:
        with self.open(digest) as stream:
            return stream.read()

    def open(self, digest: str) -> IO[bytes]:
        fs = self._fs_and_root[0]
        path = self._path(digest)
        try:
            if self._local:
                return open(path, "rb")
            return fs.open(path, "rb")  # type: ignore[no-any-return]
        except FileNotFoundError as exc:
            raise NotFound(
                f"No artifact with digest {digest} in the artifact store.",
                details={"field": "digest"},
            ) from exc

    def iter_chunks(self, digest: str) -> Iterator[bytes]:
        with self.open(digest) as stream:
            yield from iter(lambda: stream.read(_CHUNK), b"")

    def local_path(self, digest: str) -> str | None:
        """A filesystem path for the blob when the store is local, for zero-copy reads."""
        return self._path(digest) if self._local else None

    @cached_property
    def _local(self) -> bool:
        """A store on this machine's disk, read with the OS's own calls: fsspec's layer over
        them cost more than the read of a small file (24 µs against 12 for a model file, at
        every registration's check of its files, measured)."""
        fs = self._fs_and_root[0]
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        return protocol in ("file", "local")


__all__ = ["FsspecArtifactStore", "check_digest", "check_relative_path"]
