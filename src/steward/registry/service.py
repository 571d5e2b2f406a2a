"""RegistryService: the registry's rules and transactions."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any

import pydantic_core

from steward.domain.clock import utcnow
from steward.domain.entities import Alias, ArtifactRef, Model, ModelVersion, Page
from steward.domain.enums import Flavor
from steward.domain.search import MODEL_FIELDS, VERSION_FIELDS, Condition, parse_filter
from steward.domain.uri import ModelRef, check_alias, parse_model_uri
from steward.errors import InvalidInput, NotFound
from steward.flavors import validate_artifact
from steward.registry.card import render_card
from steward.schemas.registry import (
    ModelCreate,
    ModelUpdate,
    VersionCreate,
    VersionUpdate,
    check_version_number,
)
from steward.store.base import (
    ArtifactStore,
    MetadataStore,
    StalePrediction,
    check_page_size,
    decode_page_token,
    encode_page_token,
    resolve_version,
)


class RegistryService:
    def __init__(
        self,
        store: MetadataStore,
        artifacts: ArtifactStore,
        *,
        profile_sample: Callable[[bytes], bytes] | None = None,
    ) -> None:
        """``profile_sample`` turns a reference sample's Parquet bytes into its profile (JSON),
        stored with the version at registration: monitoring's builder, passed in because the
        registry does not depend on monitoring."""
        self.store = store
        self.artifacts = artifacts
        self.profile_sample = profile_sample

    # models -------------------------------------------------------------------------------
    def create_model(self, actor: str, body: ModelCreate) -> Model:
        now = utcnow()
        values: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "name": body.name,
            "owner": body.owner or actor,
            "team": body.team,
            "risk_tier": body.risk_tier,
            "use_case": body.use_case,
            "description": body.description,
            "card": body.card,
            "latest_version": 0,
            "created_at": now,
            "created_by": actor,
            "updated_at": now,
        }
        with self.store.write(actor) as tx:
            model = tx.create_model(values, body.tags)
            tx.record("model.created", "model", model.name, _model_payload(model))
        return model

    def update_model(self, actor: str, name: str, body: ModelUpdate) -> Model:
        changes = body.model_dump(exclude_unset=True, exclude={"tags"})
        if body.card is not None:
            changes["card"] = body.card
        with self.store.write(actor) as tx:
            before = tx.get_model(name)
            if body.card is not None:
                changes["card"] = {**before.card, **body.card}
            model = tx.update_model(name, {**changes, "updated_at": utcnow()}, body.tags)
            tx.record(
                "model.updated", "model", name,
                {"changed": sorted(body.model_fields_set), **_model_payload(model)},
            )  # fmt: skip
        return model

    def get_model(self, name: str) -> Model:
        with self.store.read() as rx:
            return rx.get_model(name)

    def list_models(
        self, filter: str | None = None, *, limit: int = 100, page_token: str | None = None
    ) -> Page[Model]:
        conditions = parse_filter(filter, fields=MODEL_FIELDS)
        offset = decode_page_token(page_token)
        with self.store.read() as rx:
            items = rx.list_models(conditions, limit=check_page_size(limit) + 1, offset=offset)
        return _page(items, limit, offset)

    # artifacts ------------------------------------------------------------------------------
    def upload_artifact(self, stream: IO[bytes] | Iterable[bytes] | bytes) -> ArtifactRef:
        if isinstance(stream, bytes):
            return self.artifacts.put_bytes(stream)
        if hasattr(stream, "read"):
            return self.artifacts.put_stream(stream)  # type: ignore[arg-type]
        return self.artifacts.put_chunks(stream)

    def read_artifact(self, digest: str) -> bytes:
        return self.artifacts.get_bytes(digest)

    # versions ---------------------------------------------------------------------------
    def create_version(self, actor: str, name: str, body: VersionCreate) -> ModelVersion:
        primary = body.primary_file or next(iter(body.files))
        if primary not in body.files:
            raise InvalidInput(
                f"The primary_file {primary!r} is not one of the files: {', '.join(body.files)}.",
                field="primary_file",
            )
        self._check_files_present(body)
        self._check_flavor(body.flavor, primary, body.files[primary])
        profile = self._reference_profile(body)
        now = utcnow()
        values: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "flavor": body.flavor.value,
            "files": {k: v.model_dump() for k, v in body.files.items()},
            "primary_file": primary,
            "signature": body.signature.model_dump() if body.signature else None,
            "params": body.params,
            "lineage": body.lineage.model_dump(mode="json"),
            "reference_sample": body.reference_sample.model_dump()
            if body.reference_sample
            else None,
            "reference_profile": profile.model_dump() if profile else None,
            "description": body.description,
            "status": "registered",
            "status_changed_at": now,
            "trusted": body.trusted,
            "run_id": body.lineage.run_id,
            "created_at": now,
            "created_by": actor,
        }
        try:
            return self._register(actor, name, values, body)
        except StalePrediction:  # another server registered a version of it: nothing written
            return self._register(actor, name, values, body)

    def _register(
        self, actor: str, name: str, values: dict[str, Any], body: VersionCreate
    ) -> ModelVersion:
        with self.store.write(actor) as tx:
            version = tx.create_version(name, values, body.metrics, body.tags)
            tx.record("version.registered", "model_version", version.uri, _version_payload(version))
        return version

    def _reference_profile(self, body: VersionCreate) -> ArtifactRef | None:
        """Refuses a sample that is not a readable Parquet table (InvalidInput naming
        reference_sample) before anything is recorded."""
        if self.profile_sample is None or body.reference_sample is None:
            return None
        sample = self.artifacts.get_bytes(body.reference_sample.digest)
        return self.artifacts.put_bytes(self.profile_sample(sample))

    def _check_files_present(self, body: VersionCreate) -> None:
        refs = dict(body.files)
        if body.reference_sample is not None:
            refs["reference_sample"] = body.reference_sample
        for name, ref in refs.items():
            if not self.artifacts.exists(ref.digest):
                raise InvalidInput(
                    f"The file {name!r} ({ref.digest}) was not uploaded; upload it to "
                    "/api/v1/artifacts first.",
                    field=f"files.{name}" if name != "reference_sample" else name,
                )

    def _check_flavor(self, flavor: Flavor, name: str, ref: ArtifactRef) -> None:
        # Reading the file back costs about a second per GB; it is done once, at registration,
        # so a file that is not what its flavor claims is refused before anything is recorded.
        validate_artifact(flavor, name, self.artifacts.get_bytes(ref.digest))

    def update_version(
        self, actor: str, name: str, version: int, body: VersionUpdate
    ) -> ModelVersion:
        check_version_number(version)
        values = body.model_dump(exclude_unset=True, exclude={"tags", "metrics"})
        with self.store.write(actor) as tx:
            updated = tx.update_version(name, version, values, metrics=body.metrics, tags=body.tags)
            tx.record(
                "version.updated", "model_version", updated.uri,
                {"changed": sorted(body.model_fields_set),
                 "metrics": body.metrics or {}, "tags": body.tags},
            )  # fmt: skip
        return updated

    def get_version(self, uri: str | ModelRef) -> ModelVersion:
        ref = parse_model_uri(uri) if isinstance(uri, str) else uri
        with self.store.read() as rx:
            return resolve_version(rx, ref)

    def list_versions(
        self,
        filter: str | None = None,
        *,
        model: str | None = None,
        limit: int = 100,
        page_token: str | None = None,
    ) -> Page[ModelVersion]:
        page = _VersionsPage.asked(filter, limit, page_token)
        with self.store.read() as rx:
            items = rx.list_versions(
                page.conditions, model=model, limit=page.fetched, offset=page.offset
            )
        return _page(items, page.limit, page.offset)

    def list_versions_json(
        self,
        filter: str | None = None,
        *,
        model: str | None = None,
        limit: int = 100,
        page_token: str | None = None,
    ) -> bytes:
        """`list_versions`'s page as JSON, built from the stored rows without an entity per
        version: what the API sends, in a fraction of the time."""
        page = _VersionsPage.asked(filter, limit, page_token)
        with self.store.read() as rx:
            items = rx.list_versions_json(
                page.conditions, model=model, limit=page.fetched, offset=page.offset
            )
        return page.body(items)

    async def list_versions_json_on_loop(
        self,
        filter: str | None = None,
        *,
        model: str | None = None,
        limit: int = 100,
        page_token: str | None = None,
    ) -> bytes:
        """`list_versions_json`, its read awaited on the running event loop (a server's) rather
        than blocking it: `ReadWouldWait` where the store cannot (`reads_on_loop`)."""
        page = _VersionsPage.asked(filter, limit, page_token)
        items = await self.store.list_versions_json_on_loop(
            page.conditions, model=model, limit=page.fetched, offset=page.offset
        )
        return page.body(items)

    # aliases ------------------------------------------------------------------------------
    def set_alias(self, actor: str, name: str, alias: str, version: int) -> Alias:
        check_alias(alias)
        check_version_number(version)
        with self.store.write(actor) as tx:
            moved, previous = tx.set_alias(name, alias, version, utcnow())
            tx.record(
                "alias.set", "model", name,
                {"alias": alias, "version": version, "previous_version": previous},
            )  # fmt: skip
        return moved

    def delete_alias(self, actor: str, name: str, alias: str) -> None:
        with self.store.write(actor) as tx:
            previous = tx.delete_alias(name, alias)
            if previous is None:
                raise NotFound(
                    f"Model {name!r} has no alias {alias!r}.",
                    details={"field": "alias", "name": name, "alias": alias},
                )
            tx.record(
                "alias.deleted", "model", name, {"alias": alias, "previous_version": previous}
            )

    # cards --------------------------------------------------------------------------------
    def model_card(self, uri: str) -> str:
        ref = parse_model_uri(uri)
        with self.store.read() as rx:
            version = resolve_version(rx, ref)
            model = rx.get_model(ref.name)
        return render_card(model, version)


def _page(items: list[Any], limit: int, offset: int) -> Page[Any]:
    return Page(items=items[:limit], next_page_token=_next_page_token(len(items), limit, offset))


def _next_page_token(found: int, limit: int, offset: int) -> str | None:
    """The next page's token when the one row asked for beyond ``limit`` came back."""
    return encode_page_token(offset + limit) if found > limit else None


@dataclass(frozen=True)
class _VersionsPage:
    """A page of versions as asked for: its conditions, size and offset, checked."""

    conditions: list[Condition]
    limit: int
    offset: int

    @classmethod
    def asked(cls, filter: str | None, limit: int, page_token: str | None) -> _VersionsPage:
        conditions = parse_filter(filter, fields=VERSION_FIELDS)
        offset = decode_page_token(page_token)
        return cls(conditions, check_page_size(limit), offset)

    @property
    def fetched(self) -> int:
        """The rows to read: one more than the page holds tells whether another follows."""
        return self.limit + 1

    def body(self, items: list[bytes]) -> bytes:
        """The page as JSON, from its items' (`list_versions_json`)."""
        return b'{"items":[%s],"next_page_token":%s}' % (
            b",".join(items[: self.limit]),
            pydantic_core.to_json(_next_page_token(len(items), self.limit, self.offset)),
        )


def _model_payload(model: Model) -> dict[str, Any]:
    return {
        "name": model.name,
        "owner": model.owner,
        "team": model.team,
        "risk_tier": model.risk_tier,
        "tags": model.tags,
    }


def _version_payload(version: ModelVersion) -> dict[str, Any]:
    return {
        "model": version.model_name,
        "version": version.version,
        "flavor": version.flavor.value,
        "files": {k: v.digest for k, v in version.files.items()},
        "metrics": version.metrics,
        "run_id": version.lineage.run_id,
        "git_commit": version.lineage.git.commit,
        "training_data": version.lineage.training_data,
        "trusted": version.trusted,
    }
