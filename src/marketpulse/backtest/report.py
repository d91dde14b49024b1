"""The HTML report: one self-contained file (no network) with the chart of the /backtests page — lightweight-charts
(npm) and our `backtest-chart.js`, both inlined: candles with each trade's entry and exit (its reason in words),
equity against buy-and-hold, the drawdown pane — then the statistics with units (annualized only when the span
allows), the monthly returns and the trade list (`backtest.presentation` computes what both show).

`chart_library(node_modules)` reads the library; without it (no `npm ci`) the report falls back to a few dozen lines
of our own canvas JavaScript (``REPORT_JS``: wheel to zoom, drag to pan). Long series are aggregated (exact OHLC of
each group of bars) so a million-bar backtest still makes a small file; trade markers keep their exact times.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from marketpulse.backtest.engine import BacktestResult
from marketpulse.backtest.presentation import present

CHART_LIBRARY = Path("lightweight-charts/dist/lightweight-charts.standalone.production.js")
CHART_SCRIPT = Path(__file__).resolve().parents[1] / "web" / "static" / "backtest-chart.js"

MAX_CANDLES = 4000
MAX_TRADE_ROWS = 2000
PCT = {"total_return", "cagr", "max_drawdown", "win_rate", "exposure"}


def chart_data(result: BacktestResult) -> dict[str, Any]:
    """Candles (aggregated to at most MAX_CANDLES), equity at the same points, and trade markers."""
    c = result.candles
    n = len(c)
    group = max(1, math.ceil(n / MAX_CANDLES))
    starts = np.arange(0, n, group)
    ends = np.minimum(starts + group, n) - 1
    return {
        "t": c.time[starts].tolist(),
        "o": c.open[starts].tolist(),
        "h": np.maximum.reduceat(c.high, starts).tolist(),
        "l": np.minimum.reduceat(c.low, starts).tolist(),
        "c": c.close[ends].tolist(),
        "eq": result.equity[ends].tolist(),
        "trades": [
            [t.side, t.entry_time, t.entry_price, t.exit_time, t.exit_price, t.pnl] for t in result.trades
        ],
        "barsPerCandle": group,
    }


def _cell(key: str, value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—" if math.isnan(value) else "∞"
        return f"{value * 100:,.2f} %" if key in PCT else f"{value:,.4f}"
    return html.escape(str(value))


def chart_library(node_modules: Path | None) -> str | None:
    """lightweight-charts' standalone build from `node_modules`, or None when it isn't installed there."""
    if node_modules is None:
        return None
    path = node_modules / CHART_LIBRARY
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _inline(js: str) -> str:
    return js.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")


def render(result: BacktestResult, library: str | None = None) -> str:
    c = result.candles
    title = f"{result.strategy} · {c.symbol} {c.interval}".strip()
    shown = present(result)
    stats_rows = "".join(
        f"<tr data-stat=\"{html.escape(r['key'])}\"><th{_title(r['note'])}>{html.escape(r['label'])}</th>"
        f"<td>{html.escape(r['text'])}"
        + (f"<div class=note>not shown: {html.escape(r['note'])}</div>" if r["value"] is None and r["note"] else "")
        + "</td></tr>"
        for r in shown["summary"])
    params = html.escape(", ".join(f"{k}={v}" for k, v in result.params.items()))
    exits = shown["exits"]
    trade_rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in (
            t.side, _iso(t.entry_time), _iso(t.exit_time), f"{t.entry_price:,.6g}",
            "" if t.exit_price is None else f"{t.exit_price:,.6g}", f"{t.size:,.6g}", f"{t.pnl:,.2f}",
            exits[i]["label"],
        )) + "</tr>"
        for i, t in enumerate(result.trades[:MAX_TRADE_ROWS])
    )
    more = len(result.trades) - MAX_TRADE_ROWS
    common = dict(title=html.escape(title), params=params, stats=stats_rows, trades=trade_rows,
                  monthly=_monthly_table(shown["monthly"]),
                  more=f"<p>… and {more:,} more trades</p>" if more > 0 else "", css=REPORT_CSS)
    if library is None:
        data = orjson.dumps(chart_data(result), option=orjson.OPT_SERIALIZE_NUMPY).decode().replace("</", "<\\/")
        return REPORT_HTML.format(data=data, js=REPORT_JS, **common)
    trades = [t.as_json() | {"exit_label": e["label"], "exit_kind": e["kind"]} for t, e in zip(result.trades, exits,
                                                                                               strict=True)]
    doc = {"chart": shown["chart"], "trades": trades}
    data = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY).decode().replace("</", "<\\/")
    return LC_REPORT_HTML.format(data=data, library=_inline(library),
                                 chart_js=_inline(CHART_SCRIPT.read_text(encoding="utf-8")), **common)


def _title(note: str) -> str:
    return f' title="{html.escape(note)}"' if note else ""


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _monthly_table(monthly: list[dict[str, Any]]) -> str:
    years: dict[str, list[float | None]] = {}
    for m in monthly:
        year, month = m["month"].split("-")
        years.setdefault(year, [None] * 12)[int(month) - 1] = m["return"]
    head = "<tr><th>Year</th>" + "".join(f"<th>{m}</th>" for m in MONTHS) + "<th>Year</th></tr>"
    rows = []
    for year, values in years.items():
        growth = 1.0
        cells = []
        for v in values:
            if v is None:
                cells.append("<td></td>")
            else:
                growth *= 1 + v
                cells.append(f"<td class={'pos' if v >= 0 else 'neg'}>{v * 100:.1f}%</td>")
        total = f"<td class={'pos' if growth >= 1 else 'neg'}>{(growth - 1) * 100:.1f}%</td>"
        rows.append(f"<tr><th>{year}</th>{''.join(cells)}{total}</tr>")
    return f"<table class=monthly>{head}{''.join(rows)}</table>"


def _iso(ms: int | None) -> str:
    if ms is None:
        return "open"
    return np.datetime_as_string(np.datetime64(int(ms), "ms"), unit="m").replace("T", " ")


def write_report(result: BacktestResult, path: Path | str, node_modules: Path | None = None) -> Path:
    """The report at `path`; its chart is lightweight-charts from `node_modules` when installed there."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(result, chart_library(node_modules)), encoding="utf-8")
    return path


REPORT_CSS = """
body{font:14px system-ui,sans-serif;margin:16px;color:#1d2330;background:#fafbfc}
h1{font-size:18px;margin:0 0 4px} .sub{color:#5b6475;margin-bottom:12px}
.wrap{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}
canvas{background:#fff;border:1px solid #dde2ea;display:block;cursor:crosshair}
table{border-collapse:collapse;background:#fff} th,td{padding:3px 10px;border-bottom:1px solid #eef1f5;text-align:right}
th{text-align:left;font-weight:500;color:#5b6475} #tip{height:18px;color:#5b6475;font-variant-numeric:tabular-nums}
.trades{max-height:420px;overflow:auto;margin-top:16px}
.note{font-size:11px;color:#5b6475} th[title]{text-decoration:underline dotted;cursor:help}
.monthly td,.monthly th{font-size:12px} .pos{color:#0c8a5a} .neg{color:#c8262f}
#chart{height:560px;background:#fff;border:1px solid #dde2ea;flex:1 1 700px;min-width:300px}
h2{font-size:15px;margin:16px 0 6px}
"""

REPORT_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{css}</style></head>
<body>
<h1>{title}</h1><div class="sub">parameters: {params} · wheel to zoom, drag to pan, double-click to reset</div>
<div class="wrap">
<div><div id="tip"></div><canvas id="price" width="1000" height="420"></canvas>
<canvas id="equity" width="1000" height="160"></canvas></div>
<table id="stats">{stats}</table>
</div>
<h2>Monthly returns</h2>{monthly}
<h2>Trades</h2>
<div class="trades"><table><tr><th>side</th><th>entry</th><th>exit</th><th>entry price</th><th>exit price</th>
<th>size</th><th>pnl</th><th>exit reason</th></tr>{trades}</table>{more}</div>
<script id="data" type="application/json">{data}</script>
<script>{js}</script>
</body></html>
"""

REPORT_JS = r"""
(function () {
  const D = JSON.parse(document.getElementById('data').textContent);
  const N = D.t.length, price = document.getElementById('price'), equity = document.getElementById('equity');
  const tip = document.getElementById('tip');
  let lo = 0, hi = N;  // visible candle index range [lo, hi)
  const PAD_L = 8, PAD_R = 70;
  const fmt = v => Math.abs(v) >= 1000 ? v.toFixed(2) : v.toPrecision(6);
  const iso = ms => new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
  function xOf(i, w) { return PAD_L + (i - lo + 0.5) * (w - PAD_L - PAD_R) / (hi - lo); }
  function idxOfTime(ms) {  // the candle containing ms (binary search on open times)
    let a = 0, b = N - 1;
    while (a < b) { const m = (a + b + 1) >> 1; if (D.t[m] <= ms) a = m; else b = m - 1; }
    return a;
  }
  function scale(vals, h) {
    let mn = Infinity, mx = -Infinity;
    for (const v of vals) { if (v < mn) mn = v; if (v > mx) mx = v; }
    if (mn === mx) { mn -= 1; mx += 1; }
    const pad = (mx - mn) * 0.05; mn -= pad; mx += pad;
    return { y: v => 10 + (mx - v) * (h - 20) / (mx - mn), mn, mx };
  }
  function axis(ctx, s, w, h) {
    ctx.fillStyle = '#5b6475'; ctx.font = '11px system-ui';
    for (let k = 0; k <= 4; k++) {
      const v = s.mn + (s.mx - s.mn) * k / 4, y = s.y(v);
      ctx.fillText(fmt(v), w - PAD_R + 4, y + 4);
      ctx.strokeStyle = '#f0f2f6'; ctx.beginPath(); ctx.moveTo(PAD_L, y); ctx.lineTo(w - PAD_R, y); ctx.stroke();
    }
  }
  function drawPrice() {
    const ctx = price.getContext('2d'), w = price.width, h = price.height;
    ctx.clearRect(0, 0, w, h);
    const s = scale(D.h.slice(lo, hi).concat(D.l.slice(lo, hi)), h);
    axis(ctx, s, w, h);
    const bw = Math.max(1, (w - PAD_L - PAD_R) / (hi - lo) * 0.7);
    for (let i = lo; i < hi; i++) {
      const x = xOf(i, w), up = D.c[i] >= D.o[i];
      ctx.strokeStyle = ctx.fillStyle = up ? '#1a9c6b' : '#d64545';
      ctx.beginPath(); ctx.moveTo(x, s.y(D.h[i])); ctx.lineTo(x, s.y(D.l[i])); ctx.stroke();
      const y0 = s.y(Math.max(D.o[i], D.c[i])), y1 = s.y(Math.min(D.o[i], D.c[i]));
      ctx.fillRect(x - bw / 2, y0, bw, Math.max(1, y1 - y0));
    }
    const t0 = D.t[lo], t1 = hi < N ? D.t[hi] : Infinity;
    for (const [side, et, ep, xt, xp, pnl] of D.trades) {
      const long = side === 'long';
      if (et >= t0 && et < t1) marker(ctx, xOf(idxOfTime(et), w), s.y(ep), long ? 1 : -1, long ? '#1f6feb' : '#a845d6');
      if (xt !== null && xt >= t0 && xt < t1) {
        const x = xOf(idxOfTime(xt), w), y = s.y(xp);
        ctx.fillStyle = pnl >= 0 ? '#1a9c6b' : '#d64545';
        ctx.fillRect(x - 3, y - 3, 6, 6);
      }
    }
  }
  function marker(ctx, x, y, dir, color) {  // triangle pointing in the trade's direction
    ctx.fillStyle = color; ctx.beginPath();
    ctx.moveTo(x, y); ctx.lineTo(x - 5, y + 9 * dir); ctx.lineTo(x + 5, y + 9 * dir); ctx.closePath(); ctx.fill();
  }
  function drawEquity() {
    const ctx = equity.getContext('2d'), w = equity.width, h = equity.height;
    ctx.clearRect(0, 0, w, h);
    const s = scale(D.eq.slice(lo, hi), h);
    axis(ctx, s, w, h);
    ctx.strokeStyle = '#1f6feb'; ctx.lineWidth = 1.5; ctx.beginPath();
    for (let i = lo; i < hi; i++) {
      const x = xOf(i, w), y = s.y(D.eq[i]);
      if (i === lo) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    }
    ctx.stroke(); ctx.lineWidth = 1;
  }
  function draw() { drawPrice(); drawEquity(); }
  function indexAt(ev, canvas) {
    const r = canvas.getBoundingClientRect(), x = (ev.clientX - r.left) * canvas.width / r.width;
    return Math.min(hi - 1, Math.max(lo, Math.floor(lo + (x - PAD_L) * (hi - lo) / (canvas.width - PAD_L - PAD_R))));
  }
  let drag = null;
  for (const cv of [price, equity]) {
    cv.addEventListener('wheel', ev => {
      ev.preventDefault();
      const i = indexAt(ev, cv), span = hi - lo;
      const next = Math.max(10, Math.min(N, Math.round(span * (ev.deltaY > 0 ? 1.25 : 0.8))));
      lo = Math.max(0, Math.min(N - next, Math.round(i - (i - lo) * next / span))); hi = lo + next; draw();
    }, { passive: false });
    cv.addEventListener('mousedown', ev => { drag = { x: ev.clientX, lo, hi }; });
    cv.addEventListener('dblclick', () => { lo = 0; hi = N; draw(); });
    cv.addEventListener('mousemove', ev => {
      const i = indexAt(ev, cv);
      tip.textContent = iso(D.t[i]) + '  O ' + fmt(D.o[i]) + '  H ' + fmt(D.h[i]) + '  L ' + fmt(D.l[i]) +
        '  C ' + fmt(D.c[i]) + '  equity ' + D.eq[i].toFixed(2) +
        (D.barsPerCandle > 1 ? '  (' + D.barsPerCandle + ' bars per candle)' : '');
    });
  }
  window.addEventListener('mousemove', ev => {
    if (!drag) return;
    const per = (price.width - PAD_L - PAD_R) / (drag.hi - drag.lo);
    const shift = Math.round((drag.x - ev.clientX) / per), span = drag.hi - drag.lo;
    lo = Math.max(0, Math.min(N - span, drag.lo + shift)); hi = lo + span; draw();
  });
  window.addEventListener('mouseup', () => { drag = null; });
  draw();
})();
"""

LC_REPORT_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{css}</style></head>
<body>
<h1>{title}</h1><div class="sub">parameters: {params} · times UTC · top: candles with entries (▲▼) and exits (●, with
their reason and P&amp;L); middle: equity (solid) against buy-and-hold (dashed); bottom: drawdown</div>
<div class="wrap">
<div id="chart"></div>
<table id="stats">{stats}</table>
</div>
<h2>Monthly returns</h2>{monthly}
<h2>Trades</h2>
<div class="trades"><table><tr><th>side</th><th>entry</th><th>exit</th><th>entry price</th><th>exit price</th>
<th>size</th><th>pnl</th><th>exit reason</th></tr>{trades}</table>{more}</div>
<script id="data" type="application/json">{data}</script>
<script>{library}</script>
<script>{chart_js}</script>
<script>BacktestChart.draw(document.getElementById("chart"), JSON.parse(document.getElementById("data").textContent));
</script>
</body></html>
"""
