"""Running a policy against a version, the verdict, and the report as a standalone web page."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from html import escape
from typing import Any

from pydantic import ValidationError

from steward.domain.gates import (
    CheckResult,
    GateContext,
    GateReport,
    Outcome,
    PolicyRef,
    Verdict,
)
from steward.gates.checks import Check, available_checks
from steward.gates.policy import CheckSpec, Policy


def run_policy(
    policy: Policy, ctx: GateContext, checks: Mapping[str, Check] | None = None
) -> list[CheckResult]:
    """One result per check of the policy, in order; no check can crash the gate."""
    known = available_checks() if checks is None else checks
    return [run_check(spec, ctx, known) for spec in policy.checks]


def run_check(spec: CheckSpec, ctx: GateContext, checks: Mapping[str, Check]) -> CheckResult:
    check = checks.get(spec.check)
    if check is None:
        # the policy was accepted when the check was installed; it no longer is
        return _failed(spec, spec.check, f"check {spec.check!r} is not installed")
    try:
        params = check.Params.model_validate(spec.params)
    except ValidationError as error:
        return _failed(spec, spec.check, f"the policy's parameters no longer fit: {error}")
    try:
        title = check.title(params)
        result = check.run(params, ctx)
    except Exception as error:  # a bug in one check must not hide the others' results
        return _failed(spec, spec.check, f"the check raised {type(error).__name__}: {error}")
    if not isinstance(result, CheckResult):
        return _failed(spec, title, f"the check returned {type(result).__name__}, not a result")
    # the report shows the policy's name for the check and what the policy asked of it
    return result.model_copy(
        update={"check": spec.check, "params": spec.params, "evidence": _finite(result.evidence)}
    )


def _finite(value: Any) -> Any:
    """NaN and infinity as None: reports are stored as JSON, which has neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _failed(spec: CheckSpec, title: str, detail: str) -> CheckResult:
    return CheckResult(
        check=spec.check, title=title, outcome=Outcome.FAILED, detail=detail, params=spec.params
    )


def verdict_of(results: Iterable[CheckResult]) -> Verdict:
    outcomes = {result.outcome for result in results}
    if Outcome.FAILED in outcomes:
        return Verdict.FAILED
    if Outcome.PENDING in outcomes:
        return Verdict.AWAITING_APPROVAL
    return Verdict.PASSED


def build_report(
    policy: Policy,
    ctx: GateContext,
    *,
    report_id: str,
    revision: int,
    created_by: str,
    checks: Mapping[str, Check] | None = None,
) -> GateReport:
    """Run the policy and assemble the report the store keeps (dated ``ctx.now``)."""
    results = run_policy(policy, ctx, checks)
    return GateReport(
        id=report_id,
        model_name=ctx.version.model_name,
        version=ctx.version.version,
        policy=PolicyRef(name=policy.name, revision=revision, digest=policy.digest),
        verdict=verdict_of(results),
        results=results,
        evaluation_id=ctx.evaluation.id if ctx.evaluation else None,
        created_at=ctx.now,
        created_by=created_by,
    )


_COLORS = {
    Outcome.PASSED: "#1a7f37",
    Outcome.FAILED: "#cf222e",
    Outcome.NOT_APPLICABLE: "#6e7781",
    Outcome.PENDING: "#9a6700",
    Verdict.PASSED: "#1a7f37",
    Verdict.FAILED: "#cf222e",
    Verdict.AWAITING_APPROVAL: "#9a6700",
}

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;
max-width:72rem;padding:0 1rem;color:#1f2328}
h1{font-size:1.5rem;margin:0 0 .25rem}
.verdict{display:inline-block;padding:.3rem .8rem;border-radius:.4rem;color:#fff;
font-weight:600;text-transform:uppercase;letter-spacing:.03em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:1rem 0}
dt{color:#656d76}dd{margin:0}
table{border-collapse:collapse;width:100%;margin-top:1rem}
th,td{border-bottom:1px solid #d0d7de;padding:.5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}
.outcome{font-weight:600;white-space:nowrap}
code,dl.evidence{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
dl.evidence{margin:0;gap:0 .75rem;color:#424a53}
dl.evidence dd{word-break:break-all}
.tally{margin-left:.75rem;color:#656d76}
"""


def render_html(report: GateReport) -> str:
    """The report as one self-contained page: inline CSS, no scripts, every value escaped."""
    subject = f"{report.model_name} v{report.version}"
    rows = "\n".join(_row(result) for result in report.results)
    meta = _definition_list(
        {
            "Model version": subject,
            "Policy": f"{report.policy.name} (revision {report.policy.revision})",
            "Policy digest": report.policy.digest,
            "Evaluation": report.evaluation_id or "none",
            "Gated at": _when(report.created_at),
            "Gated by": report.created_by,
            "Report": report.id,
        }
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Gate report: {escape(subject)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>Gate report: {escape(subject)}</h1>
<span class="verdict" style="background:{_COLORS[report.verdict]}">\
{escape(_words(report.verdict))}</span><span class="tally">{escape(_tally(report.results))}</span>
{meta}
<table>
<thead><tr><th>Outcome</th><th>Check</th><th>Found</th><th>Evidence</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""


def _row(result: CheckResult) -> str:
    color = _COLORS[result.outcome]
    return (
        f'<tr><td class="outcome" style="color:{color}">{escape(_words(result.outcome))}</td>'
        f"<td><strong>{escape(result.title)}</strong><br><code>{escape(result.check)}</code>"
        f"</td><td>{escape(result.detail)}</td><td>{_evidence(result.evidence)}</td></tr>"
    )


def _evidence(evidence: dict[str, Any]) -> str:
    if not evidence:
        return ""
    items = "".join(
        f"<dt>{escape(key)}</dt><dd>{escape(_plain(value))}</dd>"
        for key, value in sorted(evidence.items())
    )
    return f'<dl class="evidence">{items}</dl>'


def _plain(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def _tally(results: list[CheckResult]) -> str:
    counts = {outcome: 0 for outcome in Outcome}
    for result in results:
        counts[result.outcome] += 1
    return ", ".join(f"{n} {_words(outcome)}" for outcome, n in counts.items() if n)


def _definition_list(items: dict[str, str]) -> str:
    body = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items.items())
    return f"<dl>{body}</dl>"


def _words(value: str) -> str:
    return value.replace("_", " ")


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
