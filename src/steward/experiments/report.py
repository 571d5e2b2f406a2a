"""An experiment's analysis as one standalone web page, in the order it must be read: the header
(experiment, deployment, window, method), the sample-ratio check first (a red warning when the
split is broken: no result below can then be trusted), the units per variant against the plan,
then each metric by role with an interval plot (each variant's lift against the control with
its interval, the zero line, a guardrail's tolerance) and its numbers, and last the
recommendation with its reasons. Inline CSS and SVG only: no script, no external file, every
string escaped.

    html = render_analysis_html(services.analyze_experiment(actor, name), experiment)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape

from steward.domain.experiments import (
    ArmResult,
    Direction,
    Experiment,
    ExperimentAnalysis,
    GuardrailStatus,
    MetricResult,
    MetricRole,
    Recommendation,
)

GREEN, RED, AMBER, GREY, BLUE = "#1a7f37", "#cf222e", "#9a6700", "#656d76", "#0969da"
RECOMMENDATION_COLORS = {
    Recommendation.SHIP: GREEN,
    Recommendation.ROLLBACK: RED,
    Recommendation.KEEP_RUNNING: BLUE,
    Recommendation.INCONCLUSIVE: GREY,
}
ROLE_TITLES = {
    MetricRole.PRIMARY: "Primary metric",
    MetricRole.SECONDARY: "Secondary metrics",
    MetricRole.GUARDRAIL: "Guardrails",
}
# The interval plot: a label column, the plot, and a row per variant above the axis.
_W, _LABEL, _RIGHT, _ROW, _TOP, _AXIS = 640, 64, 24, 30, 22, 30

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;
max-width:72rem;padding:0 1rem;color:#1f2328}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.2rem;margin:1.75rem 0 .25rem}
h3{font-size:1.05rem;margin:1.25rem 0 .25rem}
.verdict{display:inline-block;padding:.3rem .8rem;border-radius:.4rem;color:#fff;
font-weight:600;text-transform:uppercase;letter-spacing:.03em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:1rem 0}
dt{color:#656d76}dd{margin:0}
table{border-collapse:collapse;width:100%;margin-top:.75rem}
th,td{border-bottom:1px solid #d0d7de;padding:.4rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.alert{border-radius:.4rem;padding:.75rem 1rem;margin:.75rem 0;border:1px solid}
.alert.bad{background:#ffebe9;border-color:#cf222e;color:#82071e}
.alert.ok{background:#dafbe1;border-color:#1a7f37;color:#116329}
.metric{margin:1.25rem 0;padding-top:.5rem;border-top:1px solid #d0d7de}
.progress{background:#eaeef2;border-radius:.3rem;height:.6rem;width:24rem;max-width:100%;
overflow:hidden;display:inline-block;vertical-align:middle;margin-right:.5rem}
.progress span{display:block;height:100%;background:#0969da}
.better{color:#1a7f37;font-weight:600}.worse{color:#cf222e;font-weight:600}
.warning{color:#9a6700;font-weight:600}
.note{color:#656d76}svg.forest{display:block;margin-top:.5rem;max-width:100%}
"""


def render_analysis_html(analysis: ExperimentAnalysis, experiment: Experiment) -> str:
    """The page for ``analysis`` of ``experiment`` (whose design gives the variants' weights,
    the guardrails' tolerances and the hypothesis)."""
    metrics = "\n".join(
        _role_section(role, [m for m in analysis.metrics if m.role is role], analysis, experiment)
        for role in MetricRole
    )
    title = f"Experiment: {analysis.experiment}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} — {escape(_instant(analysis.computed_at))}</title>
<style>{CSS}</style>
</head>
<body>
<h1>{escape(title)}</h1>
{_header(analysis, experiment)}
{_srm(analysis)}
{_units(analysis, experiment)}
{metrics}
{_recommendation(analysis)}
</body>
</html>
"""


# -- the header, the sample-ratio check and the units ------------------------------------------
def _header(analysis: ExperimentAnalysis, experiment: Experiment) -> str:
    span = f"{_instant(analysis.start)} → {_instant(analysis.end)}"
    items = {
        "Deployment": f"{analysis.deployment} (model {experiment.model_name})",
        "Variants": _variants_text(experiment),
        "Window": span,
        "Method": f"{analysis.method.value}, {analysis.correction.value} correction across the "
        f"primary and secondary metrics, alpha {analysis.alpha:g}",
        "Computed": _instant(analysis.computed_at),
    }
    if experiment.hypothesis:
        items["Hypothesis"] = experiment.hypothesis
    decision = experiment.decision
    if decision is not None:
        shipped = f" v{decision.variant}" if decision.variant is not None else ""
        applied = "applied to the deployment" if decision.applied else "not applied"
        items["Decision"] = (
            f"{decision.action.value}{shipped} by {decision.decided_by} "
            f"({applied}): {decision.reason}"
        )
    listed = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items.items())
    return f"<dl>{listed}</dl>"


def _variants_text(experiment: Experiment) -> str:
    weights = experiment.weights or {}
    total = sum(weights.values()) or 1.0
    parts = []
    for version in experiment.variants:
        share = f" {weights[version] / total:.0%}" if version in weights else ""
        control = " (control)" if version == experiment.control else ""
        parts.append(f"v{version}{share}{control}")
    return ", ".join(parts)


def _srm(analysis: ExperimentAnalysis) -> str:
    srm = analysis.srm
    observed = ", ".join(f"v{v} {n:,}" for v, n in srm.counts.items())
    expected = ", ".join(f"v{v} {e:,.0f}" for v, e in srm.expected.items())
    facts = (
        f"Units {escape(observed)} against {escape(expected)} expected by the design: "
        f"chi-square {escape(_number(srm.statistic))}, {escape(p_clause(srm.p_value))}."
    )
    if srm.mismatch:
        return (
            '<section id="srm"><h2>Sample ratio</h2><div class="alert bad" role="alert">'
            "<strong>Sample ratio mismatch: the results cannot be trusted.</strong> The "
            "variants' sizes do not match the design, so assignment or logging is broken (a "
            "crashing variant, a bot filter, a redirect that loses units). Find the cause "
            f"before reading any result below.<br>{facts}</div></section>"
        )
    return (
        '<section id="srm"><h2>Sample ratio</h2><div class="alert ok">'
        f"<strong>The split matches the design.</strong> {facts}</div></section>"
    )


def _units(analysis: ExperimentAnalysis, experiment: Experiment) -> str:
    total = sum(analysis.units.values())
    weights = experiment.weights or {}
    design_total = sum(weights.values()) or 1.0
    rows = "".join(
        f"<tr><td>v{v}{' (control)' if v == experiment.control else ''}</td>"
        f'<td class="num">{n:,}</td><td class="num">{_share(n, total)}</td>'
        f'<td class="num">{_share_of(weights.get(v), design_total)}</td></tr>'
        for v, n in analysis.units.items()
    )
    plan = f"<p>{total:,} units exposed.</p>"
    if analysis.planned_units:
        done = min(total / analysis.planned_units, 1.0)
        plan = (
            f'<p><span class="progress" role="img" aria-label="{done:.0%} of the plan">'
            f'<span style="width:{done * 100:.1f}%"></span></span>{total:,} of the planned '
            f"{analysis.planned_units:,} units ({total / analysis.planned_units:.0%}).</p>"
        )
    mismatches = ""
    if analysis.assignment_mismatches:
        mismatches = (
            f'<p class="note">{analysis.assignment_mismatches:,} of '
            f"{analysis.assignment_checked:,} unit(s) checked were served by another variant "
            "than the design's hash assigns them: the split did not run exactly as designed "
            "(each unit counts in the variant that served it).</p>"
        )
    return (
        '<section id="units"><h2>Units per variant</h2>'
        f"{plan}<table><thead><tr><th>Variant</th><th>Units</th><th>Share</th>"
        f"<th>Design share</th></tr></thead><tbody>{rows}</tbody></table>{mismatches}</section>"
    )


# -- the metrics -----------------------------------------------------------------------------
def _role_section(
    role: MetricRole, results: list[MetricResult], analysis: ExperimentAnalysis,
    experiment: Experiment,
) -> str:  # fmt: skip
    if not results:
        return ""
    tolerances = {m.metric: m.tolerance for m in experiment.metrics}
    body = "\n".join(_metric(r, tolerances.get(r.metric), analysis.alpha) for r in results)
    return f'<section id="{role.value}"><h2>{escape(ROLE_TITLES[role])}</h2>{body}</section>'


def _metric(result: MetricResult, tolerance: float | None, alpha: float) -> str:
    better = "higher is better" if result.direction is Direction.INCREASE else "lower is better"
    facts = [better, result.kind, f"test {result.test}",
             f"control v{result.control}: mean {_number(result.control_mean)}, "
             f"n {result.control_n:,}"]  # fmt: skip
    if result.cuped_variance_reduction is not None:
        facts.append(f"CUPED variance reduction {result.cuped_variance_reduction:.0%}")
    if result.role is MetricRole.GUARDRAIL:
        facts.append(f"tolerates {tolerance or 0.0:.1%} worse")
    notes = [*result.notes, *(f"v{a.variant}: {n}" for a in result.arms for n in a.notes)]
    listed = "".join(f"<li>{escape(n)}</li>" for n in notes)
    legend = (
        f"Dot: each variant's estimate against v{result.control}; bar: its "
        f"{1 - alpha:.0%} interval; dashed line: no difference"
        + ("; dotted red line: the tolerance." if result.role is MetricRole.GUARDRAIL else ".")
    )
    return (
        f'<div class="metric"><h3>{escape(result.metric)}</h3>'
        f'<p class="note">{escape(" · ".join(facts))}</p>'
        f'{interval_svg(result, tolerance, alpha)}<p class="note">{escape(legend)}</p>'
        f"{_table(result)}" + (f'<ul class="note">{listed}</ul>' if listed else "") + "</div>"
    )


def _table(result: MetricResult) -> str:
    guardrail = result.role is MetricRole.GUARDRAIL
    bayesian = any(a.chance_to_beat is not None for a in result.arms)
    head = ["Variant", "n", "Control mean", "Variant mean", "Difference", "Lift", "p-value"]
    head += [] if guardrail else ["Adjusted p"]
    head += ["Chance to beat", "Expected loss"] if bayesian else []
    head += ["Significant", "Guardrail"] if guardrail else ["Significant"]
    rows = []
    for arm in result.arms:
        cells = [
            escape(f"v{arm.variant}"), _num_cell(f"{arm.n:,}"),
            _num_cell(_number(result.control_mean)), _num_cell(_number(arm.mean)),
            _num_cell(interval_text(arm.difference, arm.difference_ci, percent=False)),
            _num_cell(interval_text(arm.relative, arm.relative_ci, percent=True)),
            _num_cell(p_text(arm.p_value)),
        ]  # fmt: skip
        if not guardrail:
            cells.append(_num_cell(p_text(arm.p_value_adjusted)))
        if bayesian:
            cells += [
                _num_cell(_percent(arm.chance_to_beat)),
                _num_cell(_number(arm.expected_loss)),
            ]
        cells.append(_significance(arm))
        if guardrail:
            cells.append(_guardrail(arm.guardrail))
        rows.append("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in cells)
                    + "</tr>")  # fmt: skip
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _num_cell(text: str) -> str:
    return f'<td class="num">{escape(text)}</td>'


def _significance(arm: ArmResult) -> str:
    if arm.better is True:
        return '<span class="better">yes, better</span>'
    if arm.better is False:
        return '<span class="worse">yes, worse</span>'
    return "yes" if arm.significant else '<span class="note">no</span>'


def _guardrail(status: GuardrailStatus | None) -> str:
    if status is None:
        return "—"
    css = {GuardrailStatus.OK: "better", GuardrailStatus.WARNING: "warning",
           GuardrailStatus.FAILING: "worse"}[status]  # fmt: skip
    return f'<span class="{css}">{escape(status.value)}</span>'


def arm_color(arm: ArmResult) -> str:
    """Red for a failing guardrail or a significantly worse arm, amber for a guardrail's
    warning, green for a significantly better arm, grey otherwise."""
    if arm.guardrail is GuardrailStatus.FAILING or arm.better is False:
        return RED
    if arm.guardrail is GuardrailStatus.WARNING:
        return AMBER
    return GREEN if arm.better is True else GREY


# -- the interval plot -----------------------------------------------------------------------
def interval_svg(result: MetricResult, tolerance: float | None, alpha: float) -> str:
    """A forest plot: one row per variant, its interval as a bar and its estimate as a dot,
    against a zero line (no difference) and, for a guardrail, its tolerance line. Relative
    lift when every arm has one (the control's mean is not zero), else the difference."""
    relative = bool(result.arms) and all(a.relative is not None for a in result.arms)
    rows = [_estimate(a, relative) for a in result.arms]
    limit = None
    if relative and result.role is MetricRole.GUARDRAIL:
        worse = -1.0 if result.direction is Direction.INCREASE else 1.0
        limit = worse * (tolerance or 0.0)
    values = [0.0, *(v for r in rows for v in r if v is not None and math.isfinite(v))]
    if limit is not None:
        values.append(limit)
    low, high = _bounds(min(values), max(values), relative)
    plot = _W - _LABEL - _RIGHT
    height = _TOP + _ROW * max(len(rows), 1) + _AXIS

    def x(value: float) -> float:
        clipped = min(max(value, low), high)
        return _LABEL + (clipped - low) / (high - low) * plot

    bottom = _TOP + _ROW * max(len(rows), 1)
    parts = [f'<line x1="{x(0):.1f}" y1="{_TOP - 6}" x2="{x(0):.1f}" y2="{bottom}" '
             f'stroke="{GREY}" stroke-dasharray="3 3"/>']  # fmt: skip
    if limit is not None and limit != 0:
        parts.append(
            f'<line x1="{x(limit):.1f}" y1="{_TOP - 6}" x2="{x(limit):.1f}" y2="{bottom}" '
            f'stroke="{RED}" stroke-dasharray="1 3" stroke-width="1.5"/>'
            f'<text x="{x(limit):.1f}" y="{_TOP - 10}" text-anchor="middle" font-size="11" '
            f'fill="{RED}">tolerance {escape(_tick(limit, relative, abs(limit)))}</text>'
        )
    for i, (arm, (point, lower, upper)) in enumerate(zip(result.arms, rows, strict=True)):
        parts.append(_row(arm, point, lower, upper, _TOP + _ROW * i + _ROW / 2, x, relative))
    parts.append(_axis(low, high, bottom, x, relative))
    what = "relative lift" if relative else "difference"
    level = {"fixed": "confidence interval", "sequential": "confidence sequence",
             "bayesian": "credible interval"}[result.method.value]  # fmt: skip
    label = (
        f"{result.metric}: the {what} of each variant against v{result.control}, with its "
        f"{1 - alpha:.0%} {level}"
    )
    return (
        f'<svg class="forest" xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" '
        f'viewBox="0 0 {_W} {height}" font-family="system-ui, sans-serif" role="img" '
        f'aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>{''.join(parts)}</svg>"
    )


Estimate = tuple[float | None, float | None, float | None]  # the point, the interval's ends
Scale = Callable[[float], float]  # a value to its x coordinate


def _estimate(arm: ArmResult, relative: bool) -> Estimate:
    point, interval = (arm.relative, arm.relative_ci) if relative else (
        arm.difference, arm.difference_ci)  # fmt: skip
    lower, upper = interval if interval is not None else (None, None)
    return _finite(point), _finite(lower), _finite(upper)


def _row(
    arm: ArmResult, point: float | None, lower: float | None, upper: float | None, y: float,
    x: Scale, relative: bool,
) -> str:  # fmt: skip
    color = arm_color(arm)
    text = escape(f"v{arm.variant}")
    shapes = ""
    if lower is not None and upper is not None:
        shapes += (
            f'<line x1="{x(lower):.1f}" y1="{y:.1f}" x2="{x(upper):.1f}" y2="{y:.1f}" '
            f'stroke="{color}" stroke-width="4" stroke-linecap="round" opacity="0.55"/>'
        )
    if point is not None:
        shapes += f'<circle cx="{x(point):.1f}" cy="{y:.1f}" r="5" fill="{color}"/>'
    else:
        shapes += (f'<text x="{_LABEL + 8}" y="{y + 4:.1f}" font-size="12" fill="{GREY}">'
                   "no estimate</text>")  # fmt: skip
    value = interval_text(point, None if lower is None or upper is None else (lower, upper),
                          percent=relative)  # fmt: skip
    return (
        f"<g><title>{escape(f'v{arm.variant}: {value}')}</title>"
        f'<text x="{_LABEL - 10}" y="{y + 4:.1f}" text-anchor="end" font-size="13">{text}</text>'
        f"{shapes}</g>"
    )


def _axis(low: float, high: float, y: float, x: Scale, relative: bool) -> str:
    step = _nice_step((high - low) / 5)
    first = math.ceil(low / step) * step
    ticks = [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]
    marks = "".join(
        f'<line x1="{x(t):.1f}" y1="{y}" x2="{x(t):.1f}" y2="{y + 4}" stroke="{GREY}"/>'
        f'<text x="{x(t):.1f}" y="{y + 16}" text-anchor="middle" font-size="11" fill="{GREY}">'
        f"{escape(_tick(t, relative, step))}</text>"
        for t in ticks
    )
    return f'<line x1="{_LABEL}" y1="{y}" x2="{_W - _RIGHT}" y2="{y}" stroke="{GREY}"/>{marks}'


def _bounds(low: float, high: float, relative: bool) -> tuple[float, float]:
    if high - low <= 0:
        pad = 0.01 if relative else max(abs(high), 1.0) * 0.1
        return low - pad, high + pad
    pad = (high - low) * 0.08
    return low - pad, high + pad


def _nice_step(raw: float) -> float:
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(float(m * magnitude) for m in (1, 2, 5, 10) if m * magnitude >= raw)


def _tick(value: float, relative: bool, step: float) -> str:
    if abs(value) < step * 1e-6:
        value = 0.0
    if relative:
        decimals = max(0, -math.floor(math.log10(step * 100))) if step > 0 else 0
        return f"{value * 100:+.{decimals}f}%" if value else "0"
    return f"{value:+.3g}" if value else "0"


# -- the recommendation ----------------------------------------------------------------------
def _recommendation(analysis: ExperimentAnalysis) -> str:
    verdict = analysis.recommendation.value.replace("-", " ")
    if analysis.ship_variant is not None:
        verdict += f" v{analysis.ship_variant}"
    color = RECOMMENDATION_COLORS[analysis.recommendation]
    reasons = "".join(f"<li>{escape(r)}</li>" for r in analysis.reasons)
    return (
        '<section id="recommendation"><h2>Recommendation</h2>'
        f'<span class="verdict" style="background:{color}">{escape(verdict)}</span>'
        f"<ul>{reasons}</ul>"
        '<p class="note">A recommendation, not a decision: record yours with '
        f"<code>steward experiment decide {escape(analysis.experiment)} "
        "ship|rollback|iterate --reason TEXT</code>.</p></section>"
    )


# -- numbers ---------------------------------------------------------------------------------
def interval_text(value: float | None, interval: Sequence[float] | None, *, percent: bool) -> str:
    """``+28.04% [+5.55%, +50.53%]``, or the value alone, or ``—``."""
    if value is None or not math.isfinite(value):
        return "—"
    form = "+.2%" if percent else "+.4g"
    if interval is None or not all(math.isfinite(v) for v in interval):
        return format(value, form)
    low, high = (format(v, form) for v in interval)
    return f"{format(value, form)} [{low}, {high}]"


def p_clause(value: float | None) -> str:
    """``p = 0.4292`` or ``p < 0.0001``."""
    text = p_text(value)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def p_text(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return "< 0.0001" if value < 1e-4 else f"{value:.4f}"


def _percent(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.1%}"


def _number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.4g}"


def _share(part: int, total: int) -> str:
    return f"{part / total:.1%}" if total else "—"


def _share_of(weight: float | None, total: float) -> str:
    return "—" if weight is None else f"{weight / total:.1%}"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _instant(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC"
