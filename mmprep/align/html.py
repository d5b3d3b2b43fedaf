"""``OUT/alignment_report.html``: one static page, no network, no external script or style.

Inline SVG for the offset and confidence histograms and for a timeline per flagged record
(speech activity, cues before, cues after); a table of the worst records that sorts on a click
(a few lines of inline JavaScript; the page reads fine without it).
"""

from __future__ import annotations

import html
from typing import Any

MAX_PLOTS = 50
MAX_ROWS = 500

_STYLE = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f2f2f2;cursor:pointer}td.l,th.l{text-align:left}
.ok{color:#176b2c}.low_confidence{color:#a86400}.failed{color:#b00020}
.cards span{display:inline-block;margin-right:22px}.plot{margin:10px 0 18px}
svg text{font:11px system-ui,sans-serif}
"""

_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function(th, i){
  th.addEventListener('click', function(){
    var tb = th.closest('table').tBodies[0], rows = Array.from(tb.rows);
    var asc = th.dataset.dir !== 'asc'; th.dataset.dir = asc ? 'asc' : 'desc';
    rows.sort(function(a, b){
      var x = a.cells[i].dataset.v || a.cells[i].textContent, y = b.cells[i].dataset.v || b.cells[i].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function(r){ tb.appendChild(r); });
  });
});
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def bars_svg(hist: dict[str, list[float]], *, title: str, unit: str, width: int = 520, height: int = 160) -> str:
    edges, counts = hist["edges"], hist["counts"]
    top = max(counts, default=0) or 1
    n = max(len(counts), 1)
    bw = (width - 40) / n
    parts = [f'<svg role="img" aria-label="{_e(title)}" width="{width}" height="{height + 30}" '
             f'viewBox="0 0 {width} {height + 30}">']
    for i, c in enumerate(counts):
        h = (height - 10) * c / top
        x = 30 + i * bw
        parts.append(f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{max(bw - 1, 1):.1f}" height="{h:.1f}" '
                     f'fill="#4a78b5"><title>{edges[i]:g} to {edges[i + 1]:g} {unit}: {c}</title></rect>')
    parts.append(f'<line x1="30" y1="{height}" x2="{width - 10}" y2="{height}" stroke="#444"/>')
    if edges:
        parts.append(f'<text x="30" y="{height + 14}">{edges[0]:g}</text>')
        parts.append(f'<text x="{width - 10}" y="{height + 14}" text-anchor="end">{edges[-1]:g} {_e(unit)}</text>')
    parts.append(f'<text x="26" y="12" text-anchor="end">{top}</text></svg>')
    return "".join(parts)


def timeline_svg(plot: dict[str, Any], *, width: int = 1100) -> str:
    """Three rows on one time axis: speech activity, cues before, cues after alignment (seconds)."""
    rows = [("speech", plot.get("speech", []), "#5a9e5a"), ("cues before", plot.get("before", []), "#c98a2b"),
            ("cues after", plot.get("after", []), "#4a78b5")]
    end = max([1.0, *[b for _, spans, _ in rows for _, b in spans]])
    scale = (width - 100) / end
    h = 22
    parts = [f'<svg class="timeline" width="{width}" height="{len(rows) * h + 24}">']
    for r, (label, spans, color) in enumerate(rows):
        y = r * h + 4
        parts.append(f'<text x="0" y="{y + 13}">{label}</text>')
        for a, b in spans:
            parts.append(f'<rect x="{90 + a * scale:.1f}" y="{y}" width="{max((b - a) * scale, 0.5):.1f}" '
                         f'height="{h - 6}" fill="{color}"/>')
    parts.append(f'<text x="90" y="{len(rows) * h + 18}">0 s</text>'
                 f'<text x="{width - 10}" y="{len(rows) * h + 18}" text-anchor="end">{end:.1f} s</text></svg>')
    return "".join(parts)


def _row(r: dict[str, Any]) -> str:
    def num(v: Any, fmt: str = "{:.3f}") -> str:
        return ("<td data-v='-1e9'>-</td>" if v is None else f"<td data-v='{v}'>{fmt.format(v)}</td>")

    res = r.get("residuals") or {}
    problems = sum((r.get("validation") or {}).get("counts", {}).values())
    return (f"<tr><td class='l'>{_e(r.get('key', ''))}</td><td class='l'>{_e(r.get('field', ''))}</td>"
            f"<td class='l'>{_e(r.get('kind', ''))}</td><td class='l {_e(r.get('status'))}'>{_e(r.get('status'))}</td>"
            + num(r.get("confidence")) + num(r.get("offset")) + num(r.get("ratio"), "{:.5f}")
            + f"<td>{len(r.get('splits') or [])}</td>" + num(r.get("speech_coverage")) + num(r.get("cue_coverage"))
            + num(res.get("p95_ms"), "{:.0f}") + f"<td>{problems}</td>"
            + f"<td class='l'>{_e(', '.join(r.get('reasons', [])))}</td></tr>")


def render_html(doc: dict[str, Any]) -> str:
    t = doc["totals"]
    h = doc["histograms"]
    records = doc["records"]
    flagged = [r for r in records if r.get("status") != "ok" and r.get("plot")][:MAX_PLOTS]
    cards = "".join(f"<span><b>{_e(v)}</b> {_e(k)}</span>" for k, v in t["status"].items())
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>mmprep alignment report</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Alignment report</h1>",
        f"<p class='cards'><span><b>{t['records']}</b> records</span>{cards}<span><b>{t['cues']}</b> cues</span></p>",
    ]
    if t.get("validation"):
        out.append("<p>Subtitle problems: " + ", ".join(f"{_e(k)} {v}" for k, v in t["validation"].items()) + "</p>")
    if t.get("reasons"):
        out.append("<p>Reasons: " + ", ".join(f"{_e(k)} {v}" for k, v in t["reasons"].items()) + "</p>")
    out.append("<h2>Subtitle offset</h2>" + bars_svg(h["offset"], title="offset histogram", unit="s"))
    out.append("<h2>Confidence</h2>" + bars_svg(h["confidence"], title="confidence histogram", unit=""))
    if t.get("kinds", {}).get("av"):
        out.append("<h2>A/V offset (audio late &gt; 0)</h2>" + bars_svg(h["av_offset"], title="av offset", unit="s"))
    out.append(f"<h2>Worst records ({min(len(records), MAX_ROWS)} of {len(records)}; click a header to sort)</h2>")
    head = ["key", "field", "kind", "status", "confidence", "offset s", "ratio", "splits", "speech cov.",
            "cue cov.", "refine p95 ms", "problems", "reasons"]
    out.append("<table class='sortable' id='worst'><thead><tr>" + "".join(f"<th>{_e(x)}</th>" for x in head)
               + "</tr></thead><tbody>" + "".join(_row(r) for r in records[:MAX_ROWS]) + "</tbody></table>")
    if flagged:
        out.append(f"<h2>Flagged records: speech against cues ({len(flagged)})</h2>")
        for r in flagged:
            out.append(f"<div class='plot'><b>{_e(r.get('key'))}</b> {_e(r.get('field', ''))} "
                       f"<span class='{_e(r.get('status'))}'>{_e(r.get('status'))}</span> "
                       f"confidence {r.get('confidence', 0):.3f}<br>{timeline_svg(r['plot'])}</div>")
    out.append(f"<script>{_SCRIPT}</script></body></html>\n")
    return "".join(out)
