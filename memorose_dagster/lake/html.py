"""The audit report as one self-contained HTML page: the verdicts, then charts drawn as inline
SVG (no script, no stylesheet or font from anywhere else)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from memorose_dagster.lake.report import detail_of, status_of

COLORS = ("#3b6ea5", "#e08a2e", "#5a9e4b", "#b5475b", "#7d5ba6")
WIDTH, HEIGHT, PAD = 640, 260, 48


def bars(title: str, labels: list[str], series: dict[str, list[float]]) -> str:
    """Grouped vertical bars: one group per label, one bar per series, with a legend."""
    peak = max((v for values in series.values() for v in values), default=0) or 1
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    group = inner_w / max(len(labels), 1)
    bar = group * 0.8 / max(len(series), 1)
    parts = [_axes(title, peak)]
    for s, (name, values) in enumerate(series.items()):
        color = COLORS[s % len(COLORS)]
        for i, value in enumerate(values):
            h = inner_h * value / peak
            x = PAD + i * group + group * 0.1 + s * bar
            parts.append(f'<rect x="{x:.1f}" y="{PAD + inner_h - h:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}" fill="{color}"><title>{escape(name)} '
                         f'{escape(labels[i])}: {value:g}</title></rect>')
        parts.append(f'<rect x="{PAD + s * 110}" y="{HEIGHT - 16}" width="10" height="10" '
                     f'fill="{color}"/><text x="{PAD + s * 110 + 14}" y="{HEIGHT - 7}" '
                     f'font-size="11">{escape(name)}</text>')
    step = max(1, len(labels) // 8)
    for i in range(0, len(labels), step):
        parts.append(f'<text x="{PAD + i * group + group / 2:.1f}" y="{PAD + inner_h + 14}" '
                     f'font-size="10" text-anchor="middle">{escape(labels[i])}</text>')
    return _svg(parts)


def hbars(title: str, labels: list[str], values: list[float], unit: str = "") -> str:
    """Horizontal bars, one per label, longest first as given."""
    peak = max(values, default=0) or 1
    row = (HEIGHT - 2 * PAD) / max(len(labels), 1)
    left = 160
    parts = [f'<text x="{PAD}" y="20" font-size="14" font-weight="bold">{escape(title)}</text>']
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = PAD + i * row
        w = (WIDTH - left - PAD) * value / peak
        parts.append(f'<text x="{left - 6}" y="{y + row * 0.65:.1f}" font-size="11" '
                     f'text-anchor="end">{escape(label[:24])}</text>'
                     f'<rect x="{left}" y="{y + row * 0.15:.1f}" width="{w:.1f}" '
                     f'height="{row * 0.7:.1f}" fill="{COLORS[0]}"/>'
                     f'<text x="{left + w + 4:.1f}" y="{y + row * 0.65:.1f}" font-size="10">'
                     f'{value:g}{escape(unit)}</text>')
    if not labels:
        parts.append(f'<text x="{PAD}" y="{HEIGHT / 2}" font-size="12">nothing to show</text>')
    return _svg(parts)


def _axes(title: str, peak: float) -> str:
    bottom = HEIGHT - PAD
    return (f'<text x="{PAD}" y="20" font-size="14" font-weight="bold">{escape(title)}</text>'
            f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{bottom}" stroke="#888"/>'
            f'<line x1="{PAD}" y1="{bottom}" x2="{WIDTH - PAD}" y2="{bottom}" stroke="#888"/>'
            f'<text x="{PAD - 4}" y="{PAD + 4}" font-size="10" text-anchor="end">{peak:g}</text>'
            f'<text x="{PAD - 4}" y="{bottom}" font-size="10" text-anchor="end">0</text>')


def _svg(parts: list[str]) -> str:
    return (f'<svg width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img">{"".join(parts)}</svg>')


def charts(report: dict[str, Any]) -> list[str]:
    c = report["charts"]
    days = sorted({r["day"] for r in c["layers_per_day"]})
    per_layer = {layer: [next((r["n"] for r in c["layers_per_day"]
                               if r["day"] == d and r["layer"] == layer), 0) for d in days]
                 for layer in ("L0", "L1", "L2")}
    forget_days = [r["day"] for r in c["forgetting"]]
    forgetting = {k: [r[k] for r in c["forgetting"]]
                  for k in ("decayed", "forgotten", "retired", "kept")}
    lag = c["consolidation_lag"]
    top = c["top_users"]
    return [bars("Records per layer by ingest day", days, per_layer),
            bars("Forgetting per day (and memories kept)", forget_days, forgetting),
            hbars("Consolidation lag per user", [r["user_id"] for r in lag],
                  [round(r["lag_seconds"], 1) for r in lag], " s"),
            hbars("Top users by size (records)", [r["user_id"] for r in top],
                  [r["records"] for r in top])]


def render(report: dict[str, Any]) -> str:
    rows = "".join(
        f'<tr class="{status_of(a)}"><td>{escape(a["name"])}</td>'
        f'<td>{"yes" if a["blocking"] else "no"}</td><td>{status_of(a)}</td>'
        f'<td>{a["findings"]}</td><td>{escape(detail_of(a))}</td></tr>' for a in report["audits"])
    verdict = "All blocking audits passed" if report["passed"] else "A blocking audit FAILED"
    findings = {f'{a["name"]}.{n}': r["sample"] for a in report["audits"]
                for n, r in a["rules"].items() if r["sample"]}
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Memorose audit</title>
<style>body{{font-family:sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}.FAIL{{background:#f6d5d9}}
.warn{{background:#fbeccf}}.ok{{background:#e3f1de}}.charts{{display:flex;flex-wrap:wrap;gap:16px}}
pre{{background:#f4f4f4;padding:8px;overflow:auto;max-height:300px}}</style></head><body>
<h1>Memorose audit</h1><p><b>{verdict}</b> &middot; {escape(report["generated_at"])}
&middot; lake {escape(report.get("lake", ""))}</p>
<table><tr><th>audit</th><th>blocking</th><th>status</th><th>findings</th><th>detail</th></tr>
{rows}</table><h2>Charts</h2><div class="charts">{"".join(charts(report))}</div>
<h2>Findings (samples)</h2><pre>{escape(json.dumps(findings, indent=1, default=str))}</pre>
</body></html>
"""
