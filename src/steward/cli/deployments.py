"""``steward deploy|deployments|rollback``: which versions take traffic, and the way back."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from steward.cli._output import console, print_json, short_time, success, table
from steward.cli._state import state
from steward.domain.deployments import (
    MAX_SLO_WINDOW_S,
    MIN_SLO_WINDOW_S,
    CanarySlo,
    Deployment,
    ModelRuntime,
)
from steward.errors import InvalidInput

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only, on stdout.")]


def deploy(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The deployment.")],
    model: Annotated[str, typer.Option(help="The model it serves.")],
    champion: Annotated[int, typer.Option(min=1, help="The production version answering.")],
    canary: Annotated[int | None, typer.Option(min=1, help="A version under watch.")] = None,
    canary_share: Annotated[
        float | None, typer.Option(help="Share of the traffic for the canary, in (0, 1).")
    ] = None,
    shadow: Annotated[
        int | None, typer.Option(min=1, help="Gets a copy of the traffic; never answers.")
    ] = None,
    split: Annotated[
        str | None, typer.Option(metavar="V=W,V=W", help="A/B split across versions.")
    ] = None,
    unit_key: Annotated[
        str | None, typer.Option(help="The request field naming the unit (sticky split).")
    ] = None,
    experiment: Annotated[
        str | None, typer.Option(help="The experiment the split belongs to (default: NAME).")
    ] = None,
    fallback: Annotated[
        list[str] | None,
        typer.Option(
            metavar="previous|rule:FILE|default:JSON",
            help="Tried in order on error or timeout; repeat the option for a chain.",
        ),
    ] = None,
    timeout_ms: Annotated[int, typer.Option(min=1, help="Per-request model timeout.")] = 1000,
    batch_max: Annotated[
        int | None, typer.Option(min=1, help="Micro-batching: most rows per model call.")
    ] = None,
    batch_wait_ms: Annotated[
        float, typer.Option(help="Micro-batching: longest wait for a batch to fill.")
    ] = 2.0,
    canary_max_error_rate: Annotated[
        float | None,
        typer.Option(help="Canary SLO: roll back above this error rate, in [0, 1]."),
    ] = None,
    canary_max_p95_ms: Annotated[
        float | None,
        typer.Option(help="Canary SLO: roll back above this p95 latency, in ms (> 0)."),
    ] = None,
    slo_window: Annotated[
        str | None,
        typer.Option(metavar="60s|5m|60", help="Canary SLO: the sliding window (default 60s)."),
    ] = None,
    slo_min_requests: Annotated[
        int | None,
        typer.Option(min=1, help="Canary SLO: canary requests in the window before it judges."),
    ] = None,
    runtime: Annotated[
        ModelRuntime,
        typer.Option(
            help="What runs the versions: native (their own library) or onnx (onnxruntime on "
            "each version's ONNX export, from log_model(..., export_onnx=True))."
        ),
    ] = ModelRuntime.NATIVE,
    as_json: JsonOption = False,
) -> None:
    """Create a deployment or replace its routing. The store refuses versions that may not take
    traffic: the champion must be in production, a canary, shadow or split variant approved,
    staging or production. With a canary SLO, `steward serve` rolls the canary back when it
    breaks it (docs/deployments.md, "Automatic rollback")."""
    split_versions = _split(split) if split else None
    slo = _canary_slo(
        canary_max_error_rate, canary_max_p95_ms, slo_window, slo_min_requests,
        canary=canary, split=split_versions,
    )  # fmt: skip
    deployment = state(ctx).client.deploy(
        name, model=model, champion=champion, canary=canary, canary_share=canary_share,
        shadow=shadow, split=split_versions,
        experiment=experiment or (name if split_versions else None), unit_key=unit_key,
        fallbacks=[_fallback(text) for text in fallback or []], timeout_ms=timeout_ms,
        batching={"max_batch": batch_max, "max_wait_ms": batch_wait_ms} if batch_max else None,
        canary_slo=slo, runtime=runtime,
    )  # fmt: skip
    if as_json:
        print_json(deployment)
        return
    success(f"{deployment.name} r{deployment.revision}: {_summary(deployment)}")


def deployments(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only this model's deployments.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List deployments: model, routing (and runtime when not native), fallbacks, revision,
    last change."""
    items = state(ctx).client.deployments(model)
    if as_json:
        print_json(items)
        return
    rows = (
        [d.name, d.model_name, _summary(d), ", ".join(f.kind.value for f in d.fallbacks) or "-",
         d.revision, short_time(d.updated_at), d.updated_by]
        for d in items
    )  # fmt: skip
    columns = ["name", "model", "routing", "fallbacks", "rev", "changed", "by"]
    console.print(table(f"Deployments ({len(items)})", columns, rows))


def rollback(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The deployment.")],
    reason: Annotated[str | None, typer.Option(help="Why, for the record.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Send all of a deployment's traffic back to its champion (the canary or split goes)."""
    deployment = state(ctx).client.rollback(name, reason=reason)
    if as_json:
        print_json(deployment)
        return
    success(f"{deployment.name} r{deployment.revision}: {_summary(deployment)}")


def _routing(deployment: Deployment) -> str:
    parts = [f"champion v{deployment.champion}"]
    if deployment.canary is not None:
        parts.append(f"canary v{deployment.canary} {deployment.canary_share:.0%}")
        if deployment.canary_slo is not None:
            parts[-1] += f" ({_slo_text(deployment.canary_slo)})"
    if deployment.split:
        total = sum(deployment.split.values())
        parts.append(
            "split " + " / ".join(f"v{v} {w / total:.0%}" for v, w in deployment.split.items())
        )
    if deployment.shadow is not None:
        parts.append(f"shadow v{deployment.shadow}")
    return ", ".join(parts)


def _summary(deployment: Deployment) -> str:
    """The routing, and the runtime when it is not the default: a column of its own would
    push the table past 80 characters for a value that is usually "native"."""
    routing = _routing(deployment)
    if deployment.runtime is ModelRuntime.NATIVE:
        return routing
    return f"{routing}, runtime {deployment.runtime.value}"


def _slo_text(slo: CanarySlo) -> str:
    """``SLO errors <= 5%, p95 <= 50 ms over 60 s, from 50 requests``."""
    limits = []
    if slo.max_error_rate is not None:
        limits.append(f"errors <= {slo.max_error_rate:.1%}")
    if slo.max_p95_ms is not None:
        limits.append(f"p95 <= {slo.max_p95_ms:g} ms")
    return f"SLO {', '.join(limits)} over {slo.window_s} s, from {slo.min_requests} requests"


_SLO_FLAGS = "--canary-max-error-rate / --canary-max-p95-ms"


def _canary_slo(
    max_error_rate: float | None,
    max_p95_ms: float | None,
    window: str | None,
    min_requests: int | None,
    *,
    canary: int | None,
    split: dict[int, float] | None,
) -> dict[str, Any] | None:
    """The SLO the flags describe, or None without any; refusals name the flags."""
    if max_error_rate is None and max_p95_ms is None:
        if window is not None or min_requests is not None:
            raise InvalidInput(
                f"--slo-window and --slo-min-requests shape a canary SLO; give it a limit with "
                f"{_SLO_FLAGS}.",
                field="canary_slo",
            )
        return None
    if canary is None:
        also = " (a --split is not rolled back automatically)" if split else ""
        raise InvalidInput(
            f"{_SLO_FLAGS} watch a canary: add --canary V --canary-share S{also}.",
            field="canary_slo",
        )
    # checked here too, so the refusal names the flag rather than the spec's field
    if max_error_rate is not None and not 0 <= max_error_rate <= 1:
        raise InvalidInput(
            f"--canary-max-error-rate must be between 0 and 1, e.g. 0.05; got {max_error_rate}.",
            field="canary_max_error_rate",
        )
    if max_p95_ms is not None and not 0 < max_p95_ms < math.inf:
        raise InvalidInput(
            f"--canary-max-p95-ms must be a number of milliseconds > 0; got {max_p95_ms}.",
            field="canary_max_p95_ms",
        )
    slo: dict[str, Any] = {"max_error_rate": max_error_rate, "max_p95_ms": max_p95_ms}
    if window is not None:
        slo["window_s"] = _window_seconds(window)
    if min_requests is not None:
        slo["min_requests"] = min_requests
    return slo


_DURATION = re.compile(r"(\d+)\s*(s|sec|m|min|h)?")
_UNIT_SECONDS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}


def _window_seconds(text: str) -> int:
    """``60``, ``60s``, ``5m``, ``1h`` as whole seconds, within the SLO window's bounds."""
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None:
        raise InvalidInput(
            f"--slo-window takes whole seconds or minutes, e.g. 60, 60s or 5m; got {text!r}.",
            field="slo_window",
        )
    seconds = int(found[1]) * _UNIT_SECONDS[found[2]]
    if not MIN_SLO_WINDOW_S <= seconds <= MAX_SLO_WINDOW_S:
        raise InvalidInput(
            f"--slo-window must be between {MIN_SLO_WINDOW_S}s and {MAX_SLO_WINDOW_S}s; "
            f"got {text!r}.",
            field="slo_window",
        )
    return seconds


def _split(text: str) -> dict[int, float]:
    out: dict[int, float] = {}
    for part in text.split(","):
        version, sep, weight = part.strip().partition("=")
        try:
            out[int(version)] = float(weight) if sep else 1.0
        except ValueError:
            raise InvalidInput(
                f"--split takes VERSION=WEIGHT pairs, e.g. 3=0.5,4=0.5; got {part!r}.",
                field="split",
            ) from None
    return out


def _fallback(text: str) -> dict[str, Any]:
    kind, _, rest = text.partition(":")
    if kind == "previous" and not rest:
        return {"kind": "previous"}
    if kind == "rule" and rest:
        path = Path(rest)
        if not path.is_file():
            raise InvalidInput(f"--fallback rule:{rest}: no such file.", field="fallback")
        return {"kind": "rule", "rules": _json(path.read_text(), "rule file")}
    if kind == "default" and rest:
        return {"kind": "default", "value": _json(rest, "default answer")}
    raise InvalidInput(
        f"--fallback takes previous, rule:FILE or default:JSON; got {text!r}.", field="fallback"
    )


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"The {what} is not valid JSON: {exc}.", field="fallback") from None
