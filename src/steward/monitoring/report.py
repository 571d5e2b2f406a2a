"""The drift report as one standalone web page: a summary, the per-column table, and a
histogram per feature (reference vs current) drawn as inline SVG. No script, no external file,
every value escaped."""

from __future__ import annotations

from html import escape

from steward.domain.drift import P_VALUE_METHODS, ColumnDrift, DriftReport, Histogram

_REFERENCE_COLOR = "#8c959f"
_CURRENT_COLOR = "#0969da"
_DRIFT_COLOR = "#cf222e"
_OK_COLOR = "#1a7f37"
_WIDTH, _HEIGHT, _PAD = 560, 150, 4

# The page's stylesheet, shared with the monitor's window report.
CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;
max-width:72rem;padding:0 1rem;color:#1f2328}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.1rem;margin:1.5rem 0 .25rem}
.verdict{display:inline-block;padding:.3rem .8rem;border-radius:.4rem;color:#fff;
font-weight:600;text-transform:uppercase;letter-spacing:.03em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:1rem 0}
dt{color:#656d76}dd{margin:0}
table{border-collapse:collapse;width:100%;margin-top:1rem}
th,td{border-bottom:1px solid #d0d7de;padding:.4rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.feature{margin:1.25rem 0;padding-top:.5rem;border-top:1px solid #d0d7de}
.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 .8rem;
vertical-align:middle}
.note{color:#656d76}
"""


def render_html(report: DriftReport, reference: str, current: str) -> str:
    """The page for ``report``; ``reference`` and ``current`` name the two sides."""
    verdict = "dataset drift" if report.dataset_drift else "no dataset drift"
    color = _DRIFT_COLOR if report.dataset_drift else _OK_COLOR
    summary = _definition_list({
        "Reference": f"{reference} ({report.reference_rows:,} rows"
        + (", from its profile)" if report.reference_from_profile else ")"),
        "Current": f"{current} ({report.current_rows:,} rows)",
        "Drifted columns": f"{report.n_drifted} of {report.n_tested} tested "
        f"(share {report.share_drifted:.3g}; the dataset drifts at {report.drift_share:g})",
        **({"Only in the reference": ", ".join(report.missing_columns)}
           if report.missing_columns else {}),
        **({"Only in the current data": ", ".join(report.extra_columns)}
           if report.extra_columns else {}),
    })  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Drift report: {escape(current)} vs {escape(reference)}</title>
<style>{CSS}</style>
</head>
<body>
<h1>Drift report</h1>
<span class="verdict" style="background:{color}">{escape(verdict)}</span>
{summary}
{drift_details(report)}
</body>
</html>
"""


def drift_details(report: DriftReport) -> str:
    """The per-column table and each feature's histogram (reference vs current): the body of
    the page above, and of the monitor's window report (``window_report``)."""
    rows = "\n".join(_row(column) for column in report.columns)
    features = "\n".join(_feature(column) for column in report.columns if column.histogram)
    return f"""<table>
<thead><tr><th>Column</th><th>Kind</th><th>Test</th><th>Statistic</th><th>p-value / score</th>
<th>Threshold</th><th>Drift</th><th>Missing (ref / cur)</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
<p class="legend"><span style="background:{_REFERENCE_COLOR}"></span>reference
<span style="background:{_CURRENT_COLOR}"></span>current (share of each side's values)</p>
{features}"""


def _row(column: ColumnDrift) -> str:
    if column.method is None:
        drift = f'<span class="note">{escape(column.note or "not tested")}</span>'
    else:
        color = _DRIFT_COLOR if column.drifted else _OK_COLOR
        drift = f'<strong style="color:{color}">{"yes" if column.drifted else "no"}</strong>'
    method = column.method.value if column.method else "—"
    score_label = "p" if column.method in P_VALUE_METHODS else ""
    approx = "" if column.exact else " ≈"
    return (
        f'<tr><td><a href="#col-{escape(column.column)}">{escape(column.column)}</a></td>'
        f"<td>{escape(column.kind.value)}</td><td>{escape(method)}</td>"
        f'<td class="num">{_number(column.statistic)}{approx}</td>'
        f'<td class="num">{score_label} {_number(column.score)}</td>'
        f'<td class="num">{_number(column.threshold)}</td><td>{drift}</td>'
        f'<td class="num">{column.missing_reference:,} / {column.missing_current:,}</td></tr>'
    )


def _feature(column: ColumnDrift) -> str:
    histogram = column.histogram
    if histogram is None:
        return ""
    what = f"{column.method.value} {_number(column.score)}" if column.method else ""
    flag = " — drifted" if column.drifted else ""
    return (
        f'<div class="feature" id="col-{escape(column.column)}"><h2>{escape(column.column)}'
        f'</h2><div class="note">{escape(column.kind.value)}; {escape(what)}{flag}</div>'
        f"{_svg(histogram)}</div>"
    )


def _svg(histogram: Histogram) -> str:
    """Paired bars per bin: reference (grey) and current (blue), heights as shares."""
    n = len(histogram.labels)
    if n == 0:
        return ""
    peak = max(max(histogram.reference, default=0.0), max(histogram.current, default=0.0)) or 1.0
    slot = (_WIDTH - 2 * _PAD) / n
    bar = max(slot / 2 - 1, 0.5)
    parts = []
    for i, label in enumerate(histogram.labels):
        x = _PAD + i * slot
        for offset, share, color in ((0.0, histogram.reference[i], _REFERENCE_COLOR),
                                     (bar, histogram.current[i], _CURRENT_COLOR)):  # fmt: skip
            height = (_HEIGHT - 2 * _PAD) * share / peak
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{_HEIGHT - _PAD - height:.1f}" '
                f'width="{bar:.1f}" height="{height:.1f}" fill="{color}">'
                f"<title>{escape(label)}: {share:.2%}</title></rect>"
            )
    axis = _axis(histogram)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT + 18}" '
        f'role="img" aria-label="histogram">{"".join(parts)}{axis}</svg>'
    )


def _axis(histogram: Histogram) -> str:
    if histogram.edges:
        left, right = histogram.edges[0], histogram.edges[-1]
        text = (f'<text x="{_PAD}" y="{_HEIGHT + 14}" font-size="11">{left:.4g}</text>'
                f'<text x="{_WIDTH - _PAD}" y="{_HEIGHT + 14}" font-size="11" '
                f'text-anchor="end">{right:.4g}</text>')  # fmt: skip
        return text
    shown = ", ".join(histogram.labels[:8]) + (" …" if len(histogram.labels) > 8 else "")
    return f'<text x="{_PAD}" y="{_HEIGHT + 14}" font-size="11">{escape(shown)}</text>'


def _number(value: float | None) -> str:
    return "—" if value is None else escape(f"{value:.4g}")


def _definition_list(items: dict[str, str]) -> str:
    body = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items.items())
    return f"<dl>{body}</dl>"
