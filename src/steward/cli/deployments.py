"""``steward deploy|deployments|rollback``: which versions take traffic, and the way back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from steward.cli._output import console, print_json, short_time, success, table
from steward.cli._state import state
from steward.domain.deployments import Deployment
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
    as_json: JsonOption = False,
) -> None:
    """Create a deployment or replace its routing. The store refuses versions that may not take
    traffic: the champion must be in production, a canary, shadow or split variant approved,
    staging or production."""
    split_versions = _split(split) if split else None
    deployment = state(ctx).client.deploy(
        name, model=model, champion=champion, canary=canary, canary_share=canary_share,
        shadow=shadow, split=split_versions,
        experiment=experiment or (name if split_versions else None), unit_key=unit_key,
        fallbacks=[_fallback(text) for text in fallback or []], timeout_ms=timeout_ms,
        batching={"max_batch": batch_max, "max_wait_ms": batch_wait_ms} if batch_max else None,
    )  # fmt: skip
    if as_json:
        print_json(deployment)
        return
    success(f"{deployment.name} r{deployment.revision}: {_routing(deployment)}")


def deployments(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only this model's deployments.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List deployments: model, routing, fallbacks, revision, last change."""
    items = state(ctx).client.deployments(model)
    if as_json:
        print_json(items)
        return
    rows = (
        [d.name, d.model_name, _routing(d), ", ".join(f.kind.value for f in d.fallbacks) or "-",
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
    success(f"{deployment.name} r{deployment.revision}: {_routing(deployment)}")


def _routing(deployment: Deployment) -> str:
    parts = [f"champion v{deployment.champion}"]
    if deployment.canary is not None:
        parts.append(f"canary v{deployment.canary} {deployment.canary_share:.0%}")
    if deployment.split:
        total = sum(deployment.split.values())
        parts.append(
            "split " + " / ".join(f"v{v} {w / total:.0%}" for v, w in deployment.split.items())
        )
    if deployment.shadow is not None:
        parts.append(f"shadow v{deployment.shadow}")
    return ", ".join(parts)


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
