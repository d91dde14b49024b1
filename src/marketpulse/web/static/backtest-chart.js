// A finished backtest drawn with lightweight-charts (TradingView's, npm): candles with every trade's entry and
// exit (the exit says why: exit signal, reversal, stop loss…), the equity curve against buy-and-hold below, and
// the drawdown pane at the bottom, all on one real time axis (UTC). Shared by the /backtests page and the HTML
// report (which inlines this file and the library, so it needs no network). `result` is the job's result JSON:
// {chart: {time, open, high, low, close, equity, hold, drawdown}, trades: [{side, entry_time, exit_time,
// entry_price, exit_price, pnl, exit_label}]}.
(function (root) {
  "use strict";

  const MARKER_TEXT_LIMIT = 120;  // past this many markers, arrows only: labels would cover the candles

  function theme() {
    const css = getComputedStyle(document.documentElement);
    const v = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
    return { panel: v("--panel", "#ffffff"), text: v("--muted", "#5b6475"), line: v("--line", "#e6eaf1"),
      up: v("--up", "#16c784"), down: v("--down", "#ea3943"), accent: v("--accent", "#2f6fed"),
      hold: v("--muted", "#8a93a6") };
  }

  const sec = (ms) => Math.floor(ms / 1000);

  // The chart's bar holding `ms` (the chart may group bars): the last bar time not after it.
  function snapper(times) {
    return (ms) => {
      let lo = 0, hi = times.length - 1;
      if (ms <= times[0]) return sec(times[0]);
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (times[mid] <= ms) lo = mid; else hi = mid - 1;
      }
      return sec(times[lo]);
    };
  }

  const money = (v) => (v >= 0 ? "+" : "−") + "$" + Math.abs(v).toLocaleString("en-US", { maximumFractionDigits: 2 });

  function markers(result, t) {
    const c = result.chart, snap = snapper(c.time), out = [];
    const withText = (result.trades || []).length * 2 <= MARKER_TEXT_LIMIT;
    for (const tr of result.trades || []) {
      const long = tr.side === "long";
      out.push({ time: snap(tr.entry_time), position: long ? "belowBar" : "aboveBar", color: long ? t.up : t.down,
        shape: long ? "arrowUp" : "arrowDown", text: withText ? (long ? "Long" : "Short") : "" });
      if (tr.exit_time !== null && tr.exit_time !== undefined) {
        out.push({ time: snap(tr.exit_time), position: long ? "aboveBar" : "belowBar",
          color: tr.pnl >= 0 ? t.up : t.down, shape: "circle",
          text: withText ? `${tr.exit_label || tr.exit_reason} ${money(tr.pnl)}` : "" });
      }
    }
    return out.sort((a, b) => a.time - b.time);
  }

  function draw(el, result) {
    const LC = root.LightweightCharts;
    const c = result.chart, t = theme();
    el.replaceChildren();
    const chart = LC.createChart(el, {
      autoSize: true,
      layout: { background: { type: "solid", color: t.panel }, textColor: t.text },
      grid: { vertLines: { color: t.line }, horzLines: { color: t.line } },
      timeScale: { timeVisible: true, secondsVisible: false, borderColor: t.line },
      rightPriceScale: { borderColor: t.line },
      crosshair: { mode: 0 },
    });
    const candles = chart.addCandlestickSeries({ upColor: t.up, downColor: t.down, borderVisible: false,
      wickUpColor: t.up, wickDownColor: t.down, title: "Price" });
    candles.priceScale().applyOptions({ scaleMargins: { top: 0.04, bottom: 0.44 } });
    candles.setData(c.time.map((ms, i) => ({ time: sec(ms), open: c.open[i], high: c.high[i], low: c.low[i],
      close: c.close[i] })));
    const marks = markers(result, t);
    candles.setMarkers(marks);

    const usd = { type: "custom", minMove: 0.01,
      formatter: (v) => "$" + v.toLocaleString("en-US", { maximumFractionDigits: 0 }) };
    const equity = chart.addLineSeries({ priceScaleId: "equity", color: t.accent, lineWidth: 2, title: "Equity",
      priceFormat: usd });
    const hold = chart.addLineSeries({ priceScaleId: "equity", color: t.hold, lineWidth: 1, lineStyle: 2,
      title: "Buy & hold", priceFormat: usd, lastValueVisible: false });
    chart.priceScale("equity").applyOptions({ scaleMargins: { top: 0.6, bottom: 0.2 }, borderColor: t.line });
    equity.setData(c.time.map((ms, i) => ({ time: sec(ms), value: c.equity[i] })));
    hold.setData(c.time.map((ms, i) => ({ time: sec(ms), value: c.hold[i] })));

    const drawdown = chart.addHistogramSeries({ priceScaleId: "drawdown", color: t.down, title: "Drawdown",
      priceFormat: { type: "custom", minMove: 0.01, formatter: (v) => v.toFixed(1) + " %" }, lastValueVisible: false,
      priceLineVisible: false });
    chart.priceScale("drawdown").applyOptions({ scaleMargins: { top: 0.84, bottom: 0 }, borderColor: t.line });
    drawdown.setData(c.time.map((ms, i) => ({ time: sec(ms), value: -100 * c.drawdown[i] })));

    chart.timeScale().fitContent();
    el.dataset.candles = String(c.time.length);
    el.dataset.markers = String(marks.length);
    el.dataset.exits = [...new Set((result.trades || []).map((tr) => tr.exit_label).filter(Boolean))].join(",");
    el.dataset.state = "drawn";
    return chart;
  }

  root.BacktestChart = { draw };
})(window);
