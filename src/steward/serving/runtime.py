"""The gateway's loaded deployments, and how a new revision replaces the old one.

A `Runtime` holds one `Served` per deployment: its traffic policy, every version it routes to
(champion, canary, split variants, shadow, and the previous production version when the
fallback chain names it) loaded through `steward.flavors.load_model`, the fallback chain, and a
`MicroBatcher` per version when the deployment asks for batching.

`refresh()` re-reads the deployments; for each new revision it loads and warms (one predict on
a row built from the signature) every version in a worker thread, and only then swaps the new
`Served` in with one dict assignment. Requests already running keep the `Served` they started
with, and the old revision answers until the swap: no request waits on a model load. A revision
that fails to load is logged and skipped, and the old one keeps serving. `start()` runs a task
that follows the ledger (`steward.serving.follow`) and calls `refresh()` only when a followed
event names something served here, or while a revision has failed to load. The runtime also
says what runs the models: a deployment's ``runtime`` "onnx" loads each version's ONNX export.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from steward.domain.deployments import Deployment, FallbackKind, ModelRuntime
from steward.domain.enums import Flavor
from steward.domain.signature import Signature
from steward.errors import NotFound, StewardError
from steward.flavors import LoadedModel, load_model
from steward.serving._tensors import Array, is_single_tensor, missing_forbidden, spec_dtype
from steward.serving.batching import MicroBatcher
from steward.serving.canary_watch import CanaryWatch
from steward.serving.execution import (
    DEFAULT_INLINE_BUDGET_MS,
    CallCost,
    InlineExecution,
    inline_execution,
    measure_cost,
)
from steward.serving.fallback import FallbackChain, parse_rules
from steward.serving.follow import FeedChanges, LedgerFollower
from steward.serving.metrics import GatewayMetrics
from steward.serving.routing import TrafficPolicy
from steward.store.base import ArtifactStore, MetadataStore

logger = logging.getLogger(__name__)

ModelInput = Array | Mapping[str, Array]
Outputs = dict[str, Array]
# A loaded model, its signature, its load time and its measured call cost (None: not timed).
_Loaded = tuple[LoadedModel, Signature | None, float, CallCost | None]
# A loaded model's cache key: the runtime is part of it, since one version may be served
# natively by one deployment and through its ONNX export by another.
_ModelKey = tuple[str, int, ModelRuntime]


def predict_outputs(model: LoadedModel, data: ModelInput, proba: bool) -> Outputs:
    """``{"prediction": ...}`` and, when asked and the model has them, ``"probabilities"``."""
    if not proba:
        return {"prediction": model.predict(data)}
    labels, probabilities = model.predict_with_proba(data)
    if probabilities is None:
        return {"prediction": labels}
    return {"prediction": labels, "probabilities": probabilities}


@dataclass(frozen=True, slots=True)
class ServedVersion:
    """One loaded version of a deployment."""

    version: int
    model: LoadedModel
    signature: Signature | None
    load_seconds: float
    batcher: MicroBatcher[ModelInput, Outputs] | None = None
    inline: InlineExecution | None = None  # None: every call goes to the model thread pool

    def input_of(self, columns: Mapping[str, Array]) -> ModelInput:
        """What this version's model takes, from decoded columns (a matrix for one tensor)."""
        if self.signature is not None and is_single_tensor(self.signature):
            return columns[self.signature.inputs[0].name]
        return columns


@dataclass(frozen=True, slots=True)
class Served:
    """One deployment at one revision, ready to answer."""

    deployment: Deployment
    policy: TrafficPolicy
    versions: dict[int, ServedVersion]
    chain: FallbackChain
    previous: int | None
    timeout_s: float
    # The canary's SLO watch, new with each revision (None: no canary_slo, nothing recorded)
    watch: CanaryWatch | None = None
    # The inputs refused when they hold null / NaN: the champion's signature and model decide
    forbid_missing: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return self.deployment.name

    @property
    def champion(self) -> ServedVersion:
        return self.versions[self.deployment.champion]

    @property
    def signature(self) -> Signature | None:
        """The champion's signature: requests are decoded against it."""
        return self.champion.signature


@dataclass
class Runtime:
    """Every served deployment, refreshed from the store; see the module's docstring."""

    store: MetadataStore
    artifacts: ArtifactStore
    names: Sequence[str] = ()  # only these deployments (empty: all of them)
    allow_trusted: bool = False
    metrics: GatewayMetrics | None = None
    on_signature: Callable[[str, Signature | None], None] | None = None
    model_threads: int = field(default_factory=lambda: min(32, (os.cpu_count() or 1) + 4))
    inline_budget_ms: float = DEFAULT_INLINE_BUDGET_MS  # 0: never call a model on the loop
    served: dict[str, Served] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # deployment -> why it did not load
    loaded_once: bool = False

    def __post_init__(self) -> None:
        self.executor = ThreadPoolExecutor(self.model_threads, thread_name_prefix="steward-model")
        self._models: dict[_ModelKey, _Loaded] = {}
        self._lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        self.follower: LedgerFollower | None = None  # set by start() unless it never follows
        self._closing: set[asyncio.Task[None]] = set()

    # -- the hot path ------------------------------------------------------------------------

    def find(self, name: str) -> Served | None:
        return self.served.get(name)

    @property
    def ready(self) -> bool:
        """True once the first refresh loaded every deployment it found."""
        return self.loaded_once and not self.failures

    async def call(
        self, version: ServedVersion, data: ModelInput, rows: int, proba: bool
    ) -> Outputs:
        """The model's outputs for ``data``: through the batcher for one row when it has one,
        on the event loop when the version is measured fast enough (`steward.serving.execution`),
        else in the model thread pool (so a timeout can leave a slow call behind)."""
        if version.batcher is not None and rows == 1:
            return await version.batcher.submit(data)
        now = self.inline_call(version, data, rows, proba)
        if now is not None:
            return now()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor, predict_outputs, version.model, data, proba
        )

    def inline_call(
        self, version: ServedVersion, data: ModelInput, rows: int, proba: bool
    ) -> Callable[[], Outputs] | None:
        """The call to make right here, on the event loop, when `call` would make it inline."""
        inline = version.inline
        if inline is None or not inline.allows(rows) or (version.batcher and rows == 1):
            return None

        def now() -> Outputs:
            outputs: Outputs = inline.run(lambda: predict_outputs(version.model, data, proba))
            return outputs

        return now

    # -- loading and swapping ----------------------------------------------------------------

    async def start(self, poll_seconds: float | None = 1.0) -> None:
        """Load every deployment, then follow the ledger (`steward.serving.follow`): read its
        feed every ``poll_seconds`` (None: never follow), and at once when the store pushes a
        change (PostgreSQL)."""
        cursor = None
        if poll_seconds is not None:  # read first: a change made during the load is not missed
            cursor = await asyncio.get_running_loop().run_in_executor(None, self._ledger_tip)
        await self.refresh()
        # What is loaded now (libraries, models) lives as long as the server: keep it out of
        # the cyclic collector's full passes, which otherwise scan it all and pause a request
        # for ~100 ms (seen under load). Objects freed by reference counting are still freed.
        gc.freeze()
        missing = [name for name in self.names if name not in self.served]
        if missing and not self.failures:
            raise NotFound(
                f"No deployment named {', '.join(repr(n) for n in missing)}; "
                "create it with `steward deploy` or list them with `steward deployments`.",
                details={"field": "names", "missing": missing},
            )
        if poll_seconds is not None and cursor is not None:
            self.follower = LedgerFollower(
                self.store, self._on_feed, cursor=cursor, poll_seconds=poll_seconds
            )
            self._poller = asyncio.create_task(self.follower.run())

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        for served in list(self.served.values()):
            await _close_batchers(served)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def refresh(self, recheck: frozenset[str] = frozenset()) -> list[str]:
        """Load what changed in the store and swap it in; returns the deployments swapped.

        A deployment is rebuilt when its revision changed, or, when named in ``recheck``, when
        its "previous" fallback now names another version (a promotion moved it)."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            found = await loop.run_in_executor(None, self._list)
            swapped: list[str] = []
            for deployment in found:
                current = self.served.get(deployment.name)
                if current is not None and current.deployment.revision == deployment.revision:
                    if deployment.name not in recheck:
                        continue
                    if not await loop.run_in_executor(None, self._previous_moved, current):
                        continue
                try:
                    served = await loop.run_in_executor(None, self._build, deployment)
                except Exception as error:
                    reason = f"{type(error).__name__}: {error}"
                    self.failures[deployment.name] = reason
                    if self.metrics is not None:
                        self.metrics.load_failed.labels(deployment.name).set(deployment.revision)
                    logger.error(
                        "deployment %s revision %d did not load (%s); %s",
                        deployment.name, deployment.revision, reason,
                        "the previous revision keeps serving" if current else "not served",
                    )  # fmt: skip
                    continue
                self.failures.pop(deployment.name, None)
                self.served = {**self.served, deployment.name: served}  # the swap
                swapped.append(deployment.name)
                self._announce(served)
                if current is not None:
                    self._retire(current)
            gone = set(self.served) - {d.name for d in found}
            if gone:
                old = self.served
                self.served = {n: s for n, s in old.items() if n not in gone}
                for name in gone:
                    self._retire(old[name])
            self._prune_models()
            self.loaded_once = True
            return swapped

    async def _on_feed(self, changes: FeedChanges) -> None:
        """Refresh when the ledger changed something served here; and on every tick while a
        revision failed to load, so a passing failure (the artifact store down) heals."""
        wanted = changes.deployments if not self.names else changes.deployments & set(self.names)
        recheck = frozenset(
            served.name
            for served in self.served.values()
            if served.deployment.model_name in changes.models
            and any(step.kind is FallbackKind.PREVIOUS for step in served.deployment.fallbacks)
        )
        if wanted or recheck or changes.reset or self.failures:
            await self.refresh(recheck)

    def _ledger_tip(self) -> int:
        with self.store.read() as rx:
            return rx.ledger_tip()

    def _previous_moved(self, served: Served) -> bool:
        """Whether the "previous" fallback of ``served`` names another version by now."""
        deployment = served.deployment
        with self.store.read() as rx:
            now = rx.previous_production_version(deployment.model_name, deployment.champion)
        return now != served.previous

    def _list(self) -> list[Deployment]:
        with self.store.read() as rx:
            deployments = rx.list_deployments()
        if self.names:
            return [d for d in deployments if d.name in self.names]
        return deployments

    def _build(self, deployment: Deployment) -> Served:
        """Load and warm every version of ``deployment`` (blocking; runs in a thread)."""
        policy = TrafficPolicy.model_validate(
            deployment.model_dump(
                include={
                    "champion", "canary", "canary_share", "split", "experiment", "unit_key",
                    "shadow", "timeout_ms",
                }
            )
        )  # fmt: skip
        wanted = list(policy.versions)
        previous = None
        if any(step.kind is FallbackKind.PREVIOUS for step in deployment.fallbacks):
            with self.store.read() as rx:
                previous = rx.previous_production_version(
                    deployment.model_name, deployment.champion
                )
            if previous is not None and previous not in wanted:
                wanted.append(previous)
        versions = {v: self._served_version(deployment, v) for v in wanted}
        timeout_s = deployment.timeout_ms / 1000
        champion = versions[deployment.champion]
        return Served(
            deployment, policy, versions, self._chain(deployment, versions, previous, timeout_s),
            previous, timeout_s, CanaryWatch.of(deployment),
            missing_forbidden(champion.signature, champion.model.accepts_missing),
        )  # fmt: skip

    def _served_version(self, deployment: Deployment, version: int) -> ServedVersion:
        model, signature, seconds, cost = self._load(
            deployment.model_name, version, deployment.runtime
        )
        if self.metrics is not None:
            self.metrics.model_load.labels(deployment.name, str(version)).set(seconds)
        inline = inline_execution(
            f"{deployment.model_name} v{version}", cost,
            budget_ms=self.inline_budget_ms, timeout_s=deployment.timeout_ms / 1000,
        )  # fmt: skip
        batcher = None
        if deployment.batching is not None:
            call = _batch_call(model)
            batcher = MicroBatcher[ModelInput, Outputs](
                call,
                max_batch=deployment.batching.max_batch,
                max_wait_ms=deployment.batching.max_wait_ms,
                executor=self.executor,
                inline=None if inline is None else _inline_batch(call, inline),
            )
        return ServedVersion(version, model, signature, seconds, batcher, inline)

    def _load(self, model_name: str, version: int, runtime: ModelRuntime) -> _Loaded:
        key = (model_name, version, runtime)
        cached = self._models.get(key)
        if cached is not None:  # a version's files never change: reuse it across revisions
            return cached
        started = time.perf_counter()
        with self.store.read() as rx:
            found = rx.get_version(model_name, version)
        model = load_model(
            found.flavor,
            lambda name: self.artifacts.get_bytes(found.files[name].digest),
            signature=found.signature,
            registered_trusted=found.trusted,
            allow_trusted=self.allow_trusted,
            # The store refused "onnx" for routed versions without an export; a "previous"
            # fallback without one loads natively (load_model falls back to its own file).
            prefer=Flavor.ONNX if runtime is ModelRuntime.ONNX else None,
        )
        warmed = _warm(model, found.signature, f"{model_name} v{version}")
        seconds = time.perf_counter() - started
        cost = None
        if warmed is not None and self.inline_budget_ms > 0:
            cost = measure_cost(
                model.flavor, lambda data: predict_outputs(model, data, proba=True), warmed
            )
        loaded = (model, found.signature, seconds, cost)
        self._models[key] = loaded
        return loaded

    def _chain(
        self,
        deployment: Deployment,
        versions: dict[int, ServedVersion],
        previous: int | None,
        timeout_s: float,
    ) -> FallbackChain:
        steps: dict[str, Any] = {"step_timeout_s": timeout_s}
        for step in deployment.fallbacks:
            if step.kind is FallbackKind.PREVIOUS and previous is not None:
                steps["previous"] = self._previous_step(versions[previous])
            elif step.kind is FallbackKind.RULE:
                steps["rules"] = parse_rules(step.rules)
            elif step.kind is FallbackKind.DEFAULT:
                steps["default"] = step.value
                steps["has_default"] = True
        return FallbackChain(**steps)

    def _previous_step(self, version: ServedVersion) -> Callable[[Any], Awaitable[Any]]:
        async def previous(columns: Mapping[str, Array]) -> Outputs:
            data = version.input_of(columns)
            rows = len(next(iter(columns.values()))) if columns else 0
            return await self.call(version, data, rows, proba=True)

        return previous

    def _announce(self, served: Served) -> None:
        if self.on_signature is not None:
            self.on_signature(served.name, served.signature)
        if self.metrics is not None:
            self.metrics.revision.labels(served.name).set(served.deployment.revision)
            self.metrics.load_failed.labels(served.name).set(0)

    def _retire(self, served: Served) -> None:
        task = asyncio.create_task(_close_batchers(served))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _prune_models(self) -> None:
        used = {
            (s.deployment.model_name, v, s.deployment.runtime)
            for s in self.served.values()
            for v in s.versions
        }
        for key in set(self._models) - used:
            del self._models[key]


async def _close_batchers(served: Served) -> None:
    for version in served.versions.values():
        if version.batcher is not None:
            await version.batcher.close()


def _batch_call(model: LoadedModel) -> Callable[[list[ModelInput]], list[Outputs]]:
    """One model call over single-row inputs; each caller gets its row's outputs."""

    def call(rows: list[ModelInput]) -> list[Outputs]:
        first = rows[0]
        batch: ModelInput
        if isinstance(first, Mapping):
            tables = [r for r in rows if isinstance(r, Mapping)]
            batch = {k: np.concatenate([r[k] for r in tables]) for k in first}
        else:
            batch = np.concatenate([r for r in rows if not isinstance(r, Mapping)])
        outputs = predict_outputs(model, batch, proba=True)
        return [{k: v[i : i + 1] for k, v in outputs.items()} for i in range(len(rows))]

    return call


def _inline_batch(
    call: Callable[[list[ModelInput]], list[Outputs]], inline: InlineExecution
) -> Callable[[list[ModelInput]], list[Outputs] | None]:
    """A batch's call made on the event loop when its rows fit the inline budget (None: the
    batcher sends it to the pool), for the same reason as a single request's."""

    def run(rows: list[ModelInput]) -> list[Outputs] | None:
        if not inline.allows(len(rows)):
            return None
        outputs: list[Outputs] = inline.run(lambda: call(rows))
        return outputs

    return run


def warm_row(signature: Signature) -> ModelInput:
    """One row of zeros (empty strings, false, the epoch) shaped as ``signature`` says."""
    columns: dict[str, Array] = {}
    for spec in signature.inputs:
        shape = [1, *(d if d > 0 else 1 for d in spec.shape[1:])]
        dtype = spec_dtype(spec)
        if spec.dtype in ("string", "object"):
            columns[spec.name] = np.full(shape, "", dtype=object)
        else:
            columns[spec.name] = np.zeros(shape, dtype=dtype)
    if is_single_tensor(signature):
        return columns[signature.inputs[0].name]
    return columns


def _warm(model: LoadedModel, signature: Signature | None, what: str) -> ModelInput | None:
    """One predict before traffic, so the first request does not pay for lazy setup; returns
    the row it used when the model answered."""
    if signature is None or not signature.inputs:
        return None
    row = warm_row(signature)
    try:
        predict_outputs(model, row, proba=True)
    except (StewardError, ValueError, TypeError) as error:
        # A row of zeros may be a value the model refuses (an unknown category); the model
        # loaded, so it still serves.
        logger.warning("warm-up predict of %s failed (%s); serving it anyway", what, error)
        return None
    return row
