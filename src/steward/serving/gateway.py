"""The inference gateway: a Starlette app over a `Runtime` (what `steward serve` runs).

Routes: the Open Inference Protocol v2 REST set (``/v2/health/live``, ``/v2/health/ready``,
``/v2/models/{name}``, ``/v2/models/{name}/ready``, ``/v2/models/{name}/infer``), the simple
JSON route ``POST /predict/{name}`` and ``GET /metrics``. Starlette directly, not FastAPI: on
the hot path the request is one body read, one decode, one assignment and one model call.

Per request: read the body (refused past ``max_body_bytes``), decode it against the champion's
signature, assign a version (request id from the body or a new random one; unit id from the body or
the deployment's ``unit_key`` column of the first row), call the model through the fallback
chain under the deployment's timeout, answer with the version and fallback reason, and after
the response is sent log one record per row and give the shadow its copy.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from steward._version import __version__
from steward.errors import InvalidInput, NotFound, StewardError, Unavailable
from steward.serving import oip
from steward.serving._tensors import Array, to_json
from steward.serving.canary_rollback import AlertSender, CanaryGuard
from steward.serving.fallback import Answered, answer, describe
from steward.serving.metrics import CONTENT_TYPE, GatewayMetrics
from steward.serving.predict_json import decode_predict_request, encode_predict_response
from steward.serving.routing import assign
from steward.serving.runtime import ModelInput, Outputs, Runtime, Served, ServedVersion
from steward.store.prediction_log import PredictionLogWriter, RequestRecord

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024  # larger bodies get a 413
MAX_SHADOW_CALLS = 64  # shadow copies in flight; past it, copies are skipped and counted
# The ``fallback`` of an answer given because the deployment's ``serve_fallback`` is on.
FORCED = "forced"
_JSON = "application/json"


def new_request_id() -> str:
    """128 random bits as 32 hex digits, like ``uuid4().hex``. From the process's seeded PRNG,
    not ``os.urandom``: a request id needs uniqueness, not secrecy, and the syscall released
    the GIL mid-request, letting a model thread hold the event loop up (measured: 12-17% of
    the request path under load)."""
    return f"{random.getrandbits(128):032x}"


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    """The client went away before its body arrived: nobody to answer."""


@dataclass(slots=True)
class Reply:
    """An answer to send, and what to do once it is sent (log the rows)."""

    status: int
    content: bytes
    after: Callable[[], None] | None = None
    headers: dict[str, str] | None = None  # content-type and others; None: JSON


@dataclass(frozen=True, slots=True)
class _Outcome:
    version: int
    outputs: Outputs
    fallback: str | None  # "error" / "timeout" when a fallback answered
    error: str | None  # the primary's failure, when a fallback answered
    seconds: float


class Gateway:
    """The request handlers, bound to one runtime, prediction log and metrics registry."""

    def __init__(
        self,
        runtime: Runtime,
        log: PredictionLogWriter | None,
        metrics: GatewayMetrics,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        guard: CanaryGuard | None = None,
    ) -> None:
        self.runtime = runtime
        self.log = log
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.guard = guard or CanaryGuard(runtime.store, metrics)
        self._shadows: set[asyncio.Task[None]] = set()

    # -- health and metadata -----------------------------------------------------------------

    async def live(self, request: Request) -> Response:
        return _json({"live": True})

    async def ready(self, request: Request) -> Response:
        ready = self.runtime.ready
        return _json({"ready": ready}, 200 if ready else 503)

    async def server_metadata(self, request: Request) -> Response:
        """OIP server metadata; the extension tells Triton's clients they may send binary."""
        return _json({"name": "steward", "version": __version__,
                      "extensions": ["binary_tensor_data"]})  # fmt: skip

    async def model_ready(self, request: Request) -> Response:
        served = self._served_or_refusal(request)
        if isinstance(served, Response):
            return served
        return _json({"name": served.name, "ready": True})

    async def metadata(self, request: Request) -> Response:
        served = self._served_or_refusal(request)
        if isinstance(served, Response):
            return served
        name = served.name
        answering = [v for v in served.policy.versions if v != served.policy.shadow]
        platform = f"steward_{served.champion.model.flavor.value}"
        body = oip.model_metadata(name, [str(v) for v in answering], platform, served.signature)
        return _json(body)

    def _served_or_refusal(self, request: Request) -> Served | Response:
        """The deployment a metadata route names, or its OIP refusal (unknown deployment, or
        a version in the path that the deployment does not answer with)."""
        name = request.path_params["name"]
        served = self.runtime.find(name)
        if served is None:
            return self._not_found(name, oip_format=True)
        version = request.path_params.get("version")
        if version is not None:
            try:
                _check_path_version(served, version)
            except NotFound as error:
                return _response(self._refusal(name, error, oip_format=True))
        return served

    async def metrics_page(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    # -- inference ---------------------------------------------------------------------------

    async def infer(self, request: Request) -> Response:
        params = request.path_params
        reply = await self.serve_infer(
            params["name"], params.get("version"), request.headers.get(oip.HEADER),
            lambda: self._body(request),
        )  # fmt: skip
        return _response(reply)

    async def serve_infer(
        self,
        name: str,
        version: str | None,
        header_length: str | None,
        body: Callable[[], Awaitable[bytes]],
    ) -> Reply:
        """``POST /v2/models/{name}[/versions/{version}]/infer``. A version in the path must be
        one the deployment answers with: the traffic policy, not the client, picks among them."""
        served = self.runtime.find(name)
        if served is None:
            return self._not_found_reply(name, oip_format=True)
        try:
            if version is not None:
                _check_path_version(served, version)
            decoded = oip.decode_infer_request(
                await body(), served.signature, header_length=header_length,
                forbid_missing=served.forbid_missing,
            )  # fmt: skip
            rid = decoded.id or new_request_id()
            unit = _unit(decoded.parameters.get("unit_id"), decoded.inputs, served)
            outcome = await self._answer(served, decoded.model_input, decoded.inputs,
                                         decoded.rows, rid, unit)  # fmt: skip
            parameters = {"version": outcome.version, "fallback": outcome.fallback}
            requested = decoded.outputs if outcome.fallback is None else None
            encoded = oip.encode_infer_answer(
                name, str(outcome.version), rid, outcome.outputs, requested, parameters,
                decoded.wants_binary,
            )  # fmt: skip
        except _Disconnected:
            raise
        except Exception as error:
            return self._refusal(name, error, oip_format=True)
        reply = self._reply(
            served, encoded.body, outcome, decoded.inputs, decoded.rows, rid, unit,
            decoded.matrix,
        )  # fmt: skip
        reply.headers = encoded.headers or None  # binary outputs: Triton's headers
        return reply

    async def predict(self, request: Request) -> Response:
        reply = await self.serve_predict(request.path_params["name"], lambda: self._body(request))
        return _response(reply)

    async def serve_predict(self, name: str, body: Callable[[], Awaitable[bytes]]) -> Reply:
        """``POST /predict/{name}``: the answer (or refusal) and what to do once it is sent."""
        served = self.runtime.find(name)
        if served is None:
            return self._not_found_reply(name, oip_format=False)
        try:
            decoded = decode_predict_request(
                await body(), served.signature,
                served.forbid_missing,
            )  # fmt: skip
            rid = decoded.id or new_request_id()
            unit = _unit(decoded.unit_id, decoded.inputs, served)
            outcome = await self._answer(served, decoded.model_input, decoded.inputs,
                                         decoded.rows, rid, unit)  # fmt: skip
            content = encode_predict_response(
                outcome.outputs["prediction"], outcome.version, rid, outcome.fallback
            )
        except _Disconnected:
            raise
        except Exception as error:
            return self._refusal(name, error, oip_format=False)
        return self._reply(
            served, content, outcome, decoded.inputs, decoded.rows, rid, unit, decoded.matrix
        )

    async def _answer(
        self,
        served: Served,
        data: ModelInput,
        columns: Mapping[str, Array],
        rows: int,
        rid: str,
        unit: str | None,
    ) -> _Outcome:
        started = time.perf_counter()
        if served.deployment.serve_fallback:  # an incident's mitigation: the models are off
            return await self._forced(served, columns, rows, started)
        assignment = assign(served.policy, request_id=rid, unit_id=unit)
        version = served.versions[assignment.version]
        if version is not served.champion:
            data = version.input_of(columns)
        try:
            result: Answered = await answer(
                lambda: self.runtime.call(version, data, rows, True),
                served.chain,
                timeout_s=served.timeout_s,
                inputs=columns,
                now=self.runtime.inline_call(version, data, rows, True),
            )
        except Unavailable as failure:  # nothing answered: the model's failure (a client's is
            # InvalidInput); logged too, so the monitor's availability counts it
            self._watch(served, version.version, False, started)
            if self.log is not None:
                failed = _Outcome(version.version, {}, None, describe(failure),
                                  time.perf_counter() - started)  # fmt: skip
                self._log_rows(served, failed, columns, rows, rid, unit, False)
            raise
        if served.watch is not None:  # the canary SLO; one attribute read when there is none
            self._watch(served, version.version, not result.fell_back, started)
        if assignment.shadow is not None:
            self._shadow(served, served.versions[assignment.shadow], columns, rows, rid, unit)
        if not result.fell_back:
            return _Outcome(version.version, result.value, None, None,
                            time.perf_counter() - started)  # fmt: skip
        kind = "timeout" if result.reason == "timeout" else "error"
        self.metrics.fallback(served.name, kind, result.source)
        answered_by = served.previous if result.source == "previous" else None
        return _Outcome(
            answered_by or version.version, _as_outputs(result.value, rows), kind,
            result.reason, time.perf_counter() - started,
        )  # fmt: skip

    async def _forced(
        self, served: Served, columns: Mapping[str, Array], rows: int, started: float
    ) -> _Outcome:
        """The rule / default fallbacks' answer, no model called (``serve_fallback``): no
        canary is watched and no shadow gets a copy, since no model answers. Unavailable when
        neither answers (a rule set without a default that a row does not match)."""
        chain = replace(served.chain, previous=None, model=None)
        result = await answer(_models_off, chain, timeout_s=served.timeout_s, inputs=columns)
        self.metrics.fallback(served.name, FORCED, result.source)
        return _Outcome(
            served.deployment.champion, _as_outputs(result.value, rows), FORCED,
            "serve_fallback is on", time.perf_counter() - started,
        )  # fmt: skip

    def _watch(self, served: Served, version: int, ok: bool, started: float) -> None:
        """Count the request in its canary SLO window; a breach goes to the guard's thread."""
        watch = served.watch
        if watch is None:
            return
        breach = watch.record(version, ok, time.perf_counter() - started)
        if breach is not None:
            self.guard.breached(breach)

    def _reply(
        self,
        served: Served,
        content: bytes,
        outcome: _Outcome,
        columns: Mapping[str, Array],
        rows: int,
        rid: str,
        unit: str | None,
        matrix: Array | None = None,
    ) -> Reply:
        self.metrics.answered(served.name, outcome.version, outcome.seconds)
        after = None
        if self.log is not None:
            log_rows = self._log_rows

            def after() -> None:
                log_rows(served, outcome, columns, rows, rid, unit, False, matrix)

        return Reply(200, content, after=after)

    # -- the shadow and the log, off the hot path --------------------------------------------

    def _shadow(
        self,
        served: Served,
        version: ServedVersion,
        columns: Mapping[str, Array],
        rows: int,
        rid: str,
        unit: str | None,
    ) -> None:
        if len(self._shadows) >= MAX_SHADOW_CALLS:
            self.metrics.shadow.labels(served.name, str(version.version), "skipped").inc()
            return
        task = asyncio.create_task(self._run_shadow(served, version, columns, rows, rid, unit))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _run_shadow(
        self,
        served: Served,
        version: ServedVersion,
        columns: Mapping[str, Array],
        rows: int,
        rid: str,
        unit: str | None,
    ) -> None:
        started = time.perf_counter()
        error = None
        outputs: Outputs = {}
        try:
            async with asyncio.timeout(served.timeout_s):
                outputs = await self.runtime.call(version, version.input_of(columns), rows, True)
        except TimeoutError:
            error = "timeout"
        except Exception as failure:
            error = describe(failure)
        outcome_label = "ok" if error is None else "error"
        self.metrics.shadow.labels(served.name, str(version.version), outcome_label).inc()
        outcome = _Outcome(version.version, outputs, None, error, time.perf_counter() - started)
        if self.log is not None:
            self._log_rows(served, outcome, columns, rows, rid, unit, True)

    def _log_rows(
        self,
        served: Served,
        outcome: _Outcome,
        columns: Mapping[str, Array],
        rows: int,
        rid: str,
        unit: str | None,
        shadow: bool,
        matrix: Array | None = None,
    ) -> None:
        assert self.log is not None
        outputs = outcome.outputs
        self.log.log_request(
            RequestRecord(
                served.name, outcome.version, rid, time.time(), outcome.seconds * 1000,
                columns, outputs.get("prediction"), outputs.get("probabilities"), rows,
                unit_id=unit, fallback=outcome.fallback, shadow=shadow, error=outcome.error,
                matrix=matrix,
            )
        )  # fmt: skip

    # -- bodies and errors -------------------------------------------------------------------

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    def _not_found(self, name: str, *, oip_format: bool) -> Response:
        return _response(self._not_found_reply(name, oip_format=oip_format))

    def _not_found_reply(self, name: str, *, oip_format: bool) -> Reply:
        self.metrics.error(name, "not_found")
        message = f"No deployment named '{name}' is served here; see GET /v2/health/ready."
        if oip_format:
            return Reply(404, oip.error_body(message))
        return Reply(404, _envelope_body("not_found", message, {"field": "name"}))

    def _refused(self, name: str, error: Exception, *, oip_format: bool) -> Response:
        return _response(self._refusal(name, error, oip_format=oip_format))

    def _refusal(self, name: str, error: Exception, *, oip_format: bool) -> Reply:
        if isinstance(error, _TooLarge):
            status, code, details = 413, "payload_too_large", {"field": "body"}
            message = (
                f"The request body is larger than {self.max_body_bytes} bytes; "
                "send fewer rows per request."
            )
        elif isinstance(error, StewardError):
            status, code, message = error.http_status, error.code, error.message
            details = error.details
            if isinstance(error, InvalidInput) and details.get("field") == "body":
                status = 400  # not JSON, or not an object: a malformed request
        else:
            logger.exception("unexpected error serving %s", name, exc_info=error)
            status, code, details = 500, "internal", {}
            message = "The gateway hit an unexpected error; it has been logged."
        self.metrics.error(name, code)
        if oip_format:
            return Reply(status, oip.error_body(message))
        return Reply(status, _envelope_body(code, message, details))


def create_gateway(
    runtime: Runtime,
    log: PredictionLogWriter | None = None,
    *,
    metrics: GatewayMetrics | None = None,
    poll_seconds: float | None = 1.0,
    max_body_bytes: int = MAX_BODY_BYTES,
    alerts: AlertSender | None = None,
) -> Starlette:
    """The ASGI app. Its lifespan loads the deployments, follows the store every
    ``poll_seconds`` (None: only when `Runtime.refresh` is called) and, on shutdown, drains
    the batchers, flushes the prediction log and waits for automatic rollbacks in flight.
    ``alerts`` (e.g. `steward.alerts.WebhookAlerts`) also hears of each automatic rollback."""
    metrics = metrics or runtime.metrics or GatewayMetrics()
    runtime.metrics = metrics
    if log is not None:
        runtime.on_signature = log.set_signature
        metrics.watch_log(lambda: log.queue_depth, lambda r: log.dropped_by_reason.get(r, 0))
    guard = CanaryGuard(runtime.store, metrics, alerts)
    gateway = Gateway(runtime, log, metrics, max_body_bytes=max_body_bytes, guard=guard)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start(poll_seconds)
        try:
            yield
        finally:
            await runtime.close()
            loop = asyncio.get_running_loop()
            if log is not None:
                await loop.run_in_executor(None, log.close)
            await loop.run_in_executor(None, guard.close)

    routes = [
        Route("/v2", gateway.server_metadata, methods=["GET"]),
        Route("/v2/health/live", gateway.live, methods=["GET"]),
        Route("/v2/health/ready", gateway.ready, methods=["GET"]),
        Route("/v2/models/{name}", gateway.metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", gateway.model_ready, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}", gateway.metadata, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/ready", gateway.model_ready, methods=["GET"]),
        Route("/v2/models/{name}/infer", gateway.infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", gateway.infer, methods=["POST"]),
        Route("/predict/{name}", gateway.predict, methods=["POST"]),
        Route("/metrics", gateway.metrics_page, methods=["GET"]),
    ]
    app = GatewayApp(gateway, routes=routes, lifespan=lifespan)
    app.state.gateway = gateway
    return app


class GatewayApp(Starlette):
    """Starlette, with the hot routes (``POST /predict/{name}`` and OIP ``infer``) answered
    before its middleware and router.

    On the hot path they cost more than the model call of a fast model (measured: a third of
    the CPU of a batched one-row request): the request is one body read and two sends here.
    A server that writes answers itself (`steward.api.http_protocol`, as `steward serve` runs)
    takes the same answer from `direct_route`, with no ASGI messages at all. Every other route,
    and anything unexpected, goes through Starlette as usual.
    """

    def __init__(self, gateway: Gateway, **options: Any) -> None:
        super().__init__(**options)
        self.gateway = gateway

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            handler = self.direct_route(scope)
            if handler is not None:
                reply = await handler(receive)
                if reply is not None:
                    await _send(reply, send)
                    if reply.after is not None:
                        _run_after(reply.after)
                return
        await super().__call__(scope, receive, send)

    def direct_route(self, scope: Any) -> Callable[[Any], Awaitable[Reply | None]] | None:
        """The answer of a hot route, as a function of the request's ASGI ``receive`` (None
        for every other request); the answer is None when the client left before it."""
        if scope["method"] != "POST":
            return None
        route = _hot_route(scope["path"])
        if route is None:
            return None
        return partial(self._reply, route, scope)

    async def _reply(self, route: _HotRoute, scope: Any, receive: Any) -> Reply | None:
        gateway = self.gateway
        name, version, is_infer = route

        def body() -> Awaitable[bytes]:
            return _read_body(scope, receive, gateway.max_body_bytes)

        try:
            if is_infer:
                return await gateway.serve_infer(name, version, _header(scope, _OIP_HEADER), body)
            return await gateway.serve_predict(name, body)
        except _Disconnected:
            return None


async def _send(reply: Reply, send: Any) -> None:
    headers = [(b"content-length", str(len(reply.content)).encode())]
    if reply.headers is None:
        headers.append((b"content-type", _JSON_BYTES))
    else:
        headers += [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.content})


# (deployment, version in the path or None, OIP infer rather than /predict)
_HotRoute = tuple[str, str | None, bool]
_OIP_HEADER = oip.HEADER.lower().encode()
_JSON_BYTES = _JSON.encode()


def _hot_route(path: str) -> _HotRoute | None:
    """The deployment of ``POST /predict/{name}``, ``/v2/models/{name}/infer`` or
    ``/v2/models/{name}/versions/{version}/infer`` (a path segment never holds a slash)."""
    if path.startswith("/predict/"):
        name = path[9:]
        return (name, None, False) if name and "/" not in name else None
    if not (path.startswith("/v2/models/") and path.endswith("/infer")):
        return None
    parts = path[11:-6].split("/")
    if len(parts) == 1 and parts[0]:
        return parts[0], None, True
    if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
        return parts[0], parts[2], True
    return None


def _header(scope: Any, key: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == key:
            return str(value.decode("latin-1"))
    return None


def _check_path_version(served: Served, version: str) -> None:
    answering = {str(v) for v in served.policy.versions if v != served.policy.shadow}
    if version not in answering:
        raise NotFound(
            f"Deployment '{served.name}' answers with version(s) "
            f"{', '.join(sorted(answering, key=int))}, not '{version}'; call "
            f"/v2/models/{served.name}/infer and let the deployment route the request.",
            details={"field": "version"},
        )


async def _read_body(scope: Any, receive: Any, limit: int) -> bytes:
    """The request body from ASGI messages; _TooLarge past ``limit`` bytes."""
    for key, value in scope["headers"]:
        if key == b"content-length" and value.isdigit() and int(value) > limit:
            raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _unit(given: object, columns: Mapping[str, Array], served: Served) -> str | None:
    """The A/B unit: the body's ``unit_id``, else the ``unit_key`` column of the first row."""
    if given is not None:
        return str(given)
    key = served.deployment.unit_key
    if key is not None and key in columns and len(columns[key]):
        value = columns[key][0]
        return str(value.item() if isinstance(value, np.generic) else value)
    return None


class ModelsOff(Exception):
    """The primary of a deployment that serves its fallback: its models are not called."""


async def _models_off() -> Any:
    raise ModelsOff("the deployment serves its fallback (serve_fallback is on)")


def _as_outputs(value: Any, rows: int) -> Outputs:
    """A fallback's answer as model outputs: a model's dict as is, else one answer per row."""
    if isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
        return value
    if isinstance(value, np.ndarray) and value.ndim >= 1 and len(value) == rows:
        return {"prediction": value}
    if value is None or isinstance(value, bool | int | float | str):
        return {"prediction": np.asarray([value] * rows)}
    answers = np.empty(rows, dtype=object)
    for i in range(rows):
        answers[i] = value
    return {"prediction": answers}


def _json(body: object, status: int = 200) -> Response:
    return Response(to_json(body), status, media_type=_JSON)


def _envelope_body(code: str, message: str, details: dict[str, Any]) -> bytes:
    return to_json({"error": {"code": code, "message": message, "details": details}})


def _response(reply: Reply) -> Response:
    """A reply as a Starlette response; its follow-up runs on the loop once it is sent (an
    async task: a plain function would go through AnyIO's thread pool, a hop per request)."""
    after = reply.after
    task = None
    if after is not None:

        async def run_after() -> None:
            _run_after(after)

        task = BackgroundTask(run_after)
    if reply.headers is None:
        return Response(reply.content, reply.status, media_type=_JSON, background=task)
    return Response(reply.content, reply.status, headers=reply.headers, background=task)


def _run_after(after: Callable[[], None]) -> None:
    try:
        after()
    except Exception:  # the answer is sent: a failure here must not reach the client
        logger.exception("logging a served request failed")
