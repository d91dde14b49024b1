// The symbol page: candles + volume (lightweight-charts), indicator studies computed by the server
// (GET /api/v1/charts/{symbol}), volume-alert and paper-fill markers, an open-interest pane, and the forming candle
// kept live from the Socket.IO "market" feed. The chart's state is mirrored in data attributes for tests.
"use strict";

(function () {
  const root = document.getElementById("symbol-page");
  const SYMBOL = root.dataset.symbol;
  const chartEl = document.getElementById("chart");
  const statusEl = document.getElementById("chart-status");
  const INTERVAL_MS = { "1m": 6e4, "3m": 18e4, "5m": 3e5, "15m": 9e5, "30m": 18e5, "1h": 36e5, "2h": 72e5,
    "4h": 144e5, "6h": 216e5, "8h": 288e5, "12h": 432e5, "1d": 864e5 };
  const COLORS = ["#f0b90b", "#5b8cff", "#c77dff", "#00c2d1", "#ff8c42", "#9be564", "#ff5d8f", "#e6e9ef"];
  const LINE_COLORS = { up: "#16c784", down: "#ea3943", histogram: "#8a93a6", signal: "#ff8c42" };
  const STORE_KEY = "mp.symbol.studies";
  const params = new URLSearchParams(location.search);
  const state = {
    interval: INTERVAL_MS[params.get("interval")] ? params.get("interval") : "1h",
    studies: loadStudies(),
    chart: null, candles: null, bars: [], markers: [],
  };

  function loadStudies() {
    try {
      const saved = JSON.parse(localStorage.getItem(STORE_KEY) || "[]");
      return Array.isArray(saved) ? saved.filter((s) => typeof s === "string") : [];
    } catch (e) { return []; }
  }

  function saveStudies() {
    try { localStorage.setItem(STORE_KEY, JSON.stringify(state.studies)); } catch (e) { /* private mode */ }
  }

  const sec = (ms) => Math.floor(ms / 1000);

  async function getJson(url) {
    const resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    return { ok: resp.ok, status: resp.status, body };
  }

  function problem(answer) {
    const d = answer.body && answer.body.detail;
    if (Array.isArray(d)) return d.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("; ");
    return typeof d === "string" ? d : `the server answered ${answer.status}`;
  }

  // ---- layout: the price area on top, then one band per pane (studies' own panes, then open interest) ----------

  function bands(paneNames) {
    const n = paneNames.length;
    const h = n ? Math.min(0.17, 0.5 / n) : 0;
    const out = { price: { top: 0.04, bottom: n * h + 0.2 }, volume: { top: 1 - n * h - 0.18, bottom: n * h } };
    paneNames.forEach((name, i) => {
      out[name] = { top: 1 - (n - i) * h + 0.015, bottom: (n - i - 1) * h };
    });
    return out;
  }

  function newChart() {
    if (state.chart) state.chart.remove();
    const css = getComputedStyle(document.documentElement);
    const chart = LightweightCharts.createChart(chartEl, {
      autoSize: true,
      layout: { background: { type: "solid", color: css.getPropertyValue("--panel").trim() || "#121722" },
        textColor: css.getPropertyValue("--muted").trim() || "#8a93a6" },
      grid: { vertLines: { color: css.getPropertyValue("--line").trim() || "#1b2231" },
        horzLines: { color: css.getPropertyValue("--line").trim() || "#1b2231" } },
      timeScale: { timeVisible: true, secondsVisible: false },
      crosshair: { mode: 0 },
    });
    state.chart = chart;
    return chart;
  }

  function lineData(points) {
    return points.map(([t, v]) => (v === null ? { time: sec(t) } : { time: sec(t), value: v }));
  }

  function drawStudies(chart, studies, place) {
    let colour = 0;
    const markers = [];
    for (const study of studies) {
      const scaleId = study.pane === "price" ? "right" : study.pane;
      for (const line of study.lines) {
        const color = LINE_COLORS[line.name] || COLORS[colour++ % COLORS.length];
        const series = line.name === "histogram"
          ? chart.addHistogramSeries({ color, priceScaleId: scaleId, lastValueVisible: false, priceLineVisible: false })
          : chart.addLineSeries({ color, lineWidth: 1, priceScaleId: scaleId, lastValueVisible: false,
            priceLineVisible: false, title: `${study.id} ${line.name}` });
        series.setData(lineData(line.points));
      }
      if (study.pane !== "price") chart.priceScale(scaleId).applyOptions({ scaleMargins: place[study.pane] });
      for (const m of study.markers) {
        markers.push({ time: sec(m.time), position: m.side === "buy" ? "belowBar" : "aboveBar",
          color: m.side === "buy" ? "#16c784" : "#ea3943", shape: m.side === "buy" ? "arrowUp" : "arrowDown",
          text: m.side === "buy" ? "Buy" : "Sell" });
      }
    }
    return markers;
  }

  async function load() {
    chartEl.dataset.state = "loading";
    statusEl.textContent = "Loading…";
    const q = new URLSearchParams({ interval: state.interval, limit: "500", studies: state.studies.join(",") });
    const answer = await getJson(`/api/v1/charts/${encodeURIComponent(SYMBOL)}?${q}`);
    if (!answer.ok) {
      statusEl.textContent = `Chart unavailable: ${problem(answer)}`;
      chartEl.dataset.state = "error";
      return;
    }
    const data = answer.body;
    const panes = [...new Set(data.studies.filter((s) => s.pane !== "price").map((s) => s.pane)), "liq", "funding",
      "oi"];
    const place = bands(panes);
    const chart = newChart();
    const candles = chart.addCandlestickSeries({ upColor: "#16c784", downColor: "#ea3943", borderVisible: false,
      wickUpColor: "#16c784", wickDownColor: "#ea3943" });
    candles.priceScale().applyOptions({ scaleMargins: place.price });
    const volume = chart.addHistogramSeries({ priceFormat: { type: "volume" }, priceScaleId: "volume",
      lastValueVisible: false, priceLineVisible: false });
    chart.priceScale("volume").applyOptions({ scaleMargins: place.volume });
    state.bars = data.candles.map((c) => ({ time: sec(c.openTime), open: c.open, high: c.high, low: c.low,
      close: c.close, volume: c.volume }));
    candles.setData(state.bars);
    volume.setData(state.bars.map((b) => ({ time: b.time, value: b.volume,
      color: b.close >= b.open ? "rgba(22,199,132,.45)" : "rgba(234,57,67,.45)" })));
    state.candles = candles;
    state.volume = volume;
    const studyMarkers = drawStudies(chart, data.studies, place);
    drawFunding(chart, data.funding, place.funding);
    chartEl.dataset.candles = String(state.bars.length);
    chartEl.dataset.studies = data.studies.map((s) => s.id).join(",");
    statusEl.textContent = `${data.candles.length} candles (store ${data.sources.store}, library ` +
      `${data.sources.library})`;
    const [alerts, fills] = await Promise.all([alertMarkers(), fillMarkers(), drawOpenInterest(chart, place.oi),
      drawLiquidations(chart, place.liq)]);
    setMarkers([...studyMarkers, ...alerts, ...fills]);
    chart.timeScale().fitContent();
    if (!data.candles.length) statusEl.textContent = `No ${state.interval} candles stored for ${SYMBOL} yet.`;
    chartEl.dataset.state = "ready";
  }

  function onBar(ms) {
    // A marker sits on the candle holding its time (lightweight-charts places markers on bar times).
    const step = INTERVAL_MS[state.interval];
    return sec(Math.floor(ms / step) * step);
  }

  async function alertMarkers() {
    const answer = await getJson(`/api/v1/volume-alerts?symbol=${encodeURIComponent(SYMBOL)}&limit=500`);
    if (!answer.ok || !answer.body) return [];
    return answer.body.data.map(alertMarker);
  }

  function alertMarker(a) {
    const bullish = String(a.candleDirection || "").toLowerCase() === "bullish";
    return { time: onBar(Number(a.timestamp)), position: bullish ? "belowBar" : "aboveBar",
      color: bullish ? "#5b8cff" : "#f0b90b", shape: "circle", text: `A ${a.alertType || "SPIKE"}`,
      kind: "alert" };
  }

  function fillMarker(f) {
    return { time: onBar(Number(f.time)), position: f.side === "buy" ? "belowBar" : "aboveBar",
      color: f.side === "buy" ? "#9be564" : "#ff5d8f", shape: "square", text: `F ${f.side} ${f.quantity}`,
      kind: "fill" };
  }

  async function fillMarkers() {
    const answer = await getJson("/api/v1/paper/fills?limit=1000");
    if (!answer.ok || !answer.body || !Array.isArray(answer.body.data)) return [];  // signed out: no fills to show
    return answer.body.data.filter((f) => f.symbol === SYMBOL).map(fillMarker);
  }

  // The owner's fills arrive live in their Socket.IO room; one on this symbol joins the markers at once.
  function onFill(f) {
    if (!f || f.symbol !== SYMBOL || !state.candles) return;
    setMarkers([...state.markers, fillMarker(f)]);
  }

  function setMarkers(markers) {
    const first = state.bars.length ? state.bars[0].time : 0;
    state.markers = markers.filter((m) => m.time >= first).sort((a, b) => a.time - b.time);
    state.candles.setMarkers(state.markers.map(({ kind, ...m }) => m));
    chartEl.dataset.markers = String(state.markers.length);
    chartEl.dataset.alertMarkers = String(state.markers.filter((m) => m.kind === "alert").length);
    chartEl.dataset.fillMarkers = String(state.markers.filter((m) => m.kind === "fill").length);
  }

  function drawFunding(chart, points, margins) {
    const series = chart.addHistogramSeries({ priceScaleId: "funding", title: "Funding %", priceLineVisible: false,
      priceFormat: { type: "price", precision: 4, minMove: 0.0001 } });
    chart.priceScale("funding").applyOptions({ scaleMargins: margins });
    series.setData(points.map(([t, rate]) => ({ time: sec(t), value: rate * 100,
      color: rate >= 0 ? "rgba(22,199,132,.7)" : "rgba(234,57,67,.7)" })));
    chartEl.dataset.funding = String(points.length);
  }

  async function drawOpenInterest(chart, margins) {
    const oiInterval = INTERVAL_MS[state.interval] >= INTERVAL_MS["1h"] ? "1h" : "5m";
    const answer = await getJson(`/api/v1/market/open-interest/history/${encodeURIComponent(SYMBOL)}` +
      `?interval=${oiInterval}`);
    if (!answer.ok || !answer.body) return;
    const series = chart.addLineSeries({ color: "#c77dff", lineWidth: 1, priceScaleId: "oi", title: "OI $",
      priceFormat: { type: "volume" }, priceLineVisible: false });
    chart.priceScale("oi").applyOptions({ scaleMargins: margins });
    series.setData(answer.body.data.map((p) => ({ time: sec(p.time), value: p.usd })));
    chartEl.dataset.oi = String(answer.body.data.length);
    if (answer.body.plan === "free") statusEl.textContent += " · open interest: on plans with its column (see Pricing)";
  }

  // ---- liquidations: a histogram under the candles, longs below zero (red), shorts above (green), per bar ------

  const liq = { series: null, bars: new Map() };  // bar time (s) → {long, short} USD

  function liqPoint(time, sums) {
    return [{ time, value: -sums.long, color: "rgba(234,57,67,.8)" }, { time, value: sums.short,
      color: "rgba(22,199,132,.8)" }];
  }

  function addLiquidation(l) {
    if (!l || l.symbol !== SYMBOL || typeof l.usd !== "number") return null;
    const time = onBar(l.time);
    const sums = liq.bars.get(time) || { long: 0, short: 0 };
    sums[l.side === "short" ? "short" : "long"] += l.usd;
    liq.bars.set(time, sums);
    return time;
  }

  function liqData() {
    const times = [...liq.bars.keys()].sort((a, b) => a - b);
    return {
      long: times.map((t) => ({ time: t, value: -liq.bars.get(t).long, color: "rgba(234,57,67,.8)" })),
      short: times.map((t) => ({ time: t, value: liq.bars.get(t).short, color: "rgba(22,199,132,.8)" })),
    };
  }

  async function drawLiquidations(chart, margins) {
    liq.bars = new Map();
    const from = state.bars.length ? state.bars[0].time * 1000 : null;
    let cursor = null;
    for (let page = 0; page < 5; page++) {  // newest first, up to 25,000 events
      const q = new URLSearchParams({ symbol: SYMBOL, limit: "5000" });
      if (from !== null) q.set("from", String(from));
      if (cursor) q.set("cursor", cursor);
      const answer = await getJson(`/api/v1/market/liquidations?${q}`);
      if (!answer.ok || !answer.body) break;
      answer.body.data.forEach(addLiquidation);
      cursor = answer.body.next;
      if (!cursor) break;
    }
    const longs = chart.addHistogramSeries({ priceScaleId: "liq", priceFormat: { type: "volume" },
      lastValueVisible: false, priceLineVisible: false, title: "Liq long $" });
    const shorts = chart.addHistogramSeries({ priceScaleId: "liq", priceFormat: { type: "volume" },
      lastValueVisible: false, priceLineVisible: false, title: "Liq short $" });
    chart.priceScale("liq").applyOptions({ scaleMargins: margins });
    const data = liqData();
    longs.setData(data.long);
    shorts.setData(data.short);
    liq.series = { longs, shorts };
    chartEl.dataset.liquidations = String(liq.bars.size);
  }

  function onLiquidations(batch) {
    if (!batch || !Array.isArray(batch.liquidations) || !liq.series) return;
    for (const l of batch.liquidations) {
      const time = addLiquidation(l);
      if (time === null) continue;
      const last = state.bars[state.bars.length - 1];
      if (last && time < last.time) {  // an older bar: redraw all (rare)
        const data = liqData();
        liq.series.longs.setData(data.long);
        liq.series.shorts.setData(data.short);
      } else {
        const [long, short] = liqPoint(time, liq.bars.get(time));
        liq.series.longs.update(long);
        liq.series.shorts.update(short);
      }
    }
    chartEl.dataset.liquidations = String(liq.bars.size);
  }

  // ---- the quote line: the table's row for this symbol, and the countdown to the next funding ----------------

  const FUNDING_MS = 8 * 3600e3;  // Binance's USDT perpetuals settle at 00:00, 08:00 and 16:00 UTC
  const quote = { marketTime: null, seenAt: null };

  function showRow(r) {
    if (!r || r.symbol !== SYMBOL) return;
    if (typeof r.price === "number") document.getElementById("q-price").textContent = String(r.price);
    if (typeof r.changePct24h === "number") {
      const el = document.getElementById("q-change");
      el.textContent = (r.changePct24h > 0 ? "+" : "") + r.changePct24h.toFixed(2) + "%";
      el.className = r.changePct24h >= 0 ? "pos" : "neg";
    }
    if (typeof r.fundingRate === "number") {
      document.getElementById("q-funding").textContent = (r.fundingRate * 100).toFixed(4) + "%";
    }
    if (typeof r.time === "number") { quote.marketTime = r.time; quote.seenAt = Date.now(); }
    tick();
  }

  // Market time moves on from the last row's time at wall-clock pace (a replay's may run faster: the next row
  // corrects it).
  function tick() {
    if (quote.marketTime === null) return;
    const now = quote.marketTime + (Date.now() - quote.seenAt);
    const left = FUNDING_MS - (now % FUNDING_MS);
    const h = Math.floor(left / 3600e3), m = Math.floor((left % 3600e3) / 6e4), s = Math.floor((left % 6e4) / 1e3);
    document.getElementById("q-countdown").textContent =
      `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
  }

  async function loadQuote() {
    const answer = await getJson(`/api/v1/market/symbol/${encodeURIComponent(SYMBOL)}`);
    if (answer.ok && answer.body) showRow(answer.body.data);
  }

  // ---- live: the forming candle follows the table's price for this symbol -------------------------------------

  function onMarket(payload) {
    if (!payload || !Array.isArray(payload.rows)) return;
    const row = payload.rows.find((r) => r && r.symbol === SYMBOL && typeof r.price === "number");
    if (!row) return;
    showRow(row);
    if (!state.candles) return;
    const time = onBar(Number(row.time || payload.time));
    const last = state.bars[state.bars.length - 1];
    if (last && time < last.time) return;  // an older tick than the newest bar: history wins
    const bar = last && last.time === time
      ? Object.assign(last, { high: Math.max(last.high, row.price), low: Math.min(last.low, row.price),
        close: row.price })
      : { time, open: last ? last.close : row.price, high: row.price, low: row.price, close: row.price, volume: 0 };
    if (bar !== last) state.bars.push(bar);
    state.candles.update(bar);
    chartEl.dataset.candles = String(state.bars.length);
    chartEl.dataset.lastClose = String(bar.close);
    document.getElementById("live").textContent = `Live ${row.price}`;
  }

  function connect() {
    if (typeof io !== "function") return;
    const socket = io({ transports: ["websocket", "polling"], reconnectionDelay: 1000, reconnectionDelayMax: 30000 });
    socket.on("market", onMarket);
    socket.on("paper-fill", onFill);
    socket.on("liquidations", onLiquidations);
    socket.on("volume-alert", (a) => {
      if (a && a.symbol === SYMBOL && state.candles) setMarkers([...state.markers, alertMarker(a)]);
    });
  }

  // ---- controls -----------------------------------------------------------------------------------------------

  function renderControls() {
    for (const b of document.querySelectorAll(".iv")) {
      b.setAttribute("aria-pressed", String(b.dataset.interval === state.interval));
    }
    const chips = document.getElementById("studies");
    chips.replaceChildren(...state.studies.map((id) => {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.dataset.study = id;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `Remove ${id}`);
      remove.addEventListener("click", () => {
        state.studies = state.studies.filter((s) => s !== id);
        saveStudies();
        renderControls();
        load();
      });
      chip.append(id, remove);
      return chip;
    }));
  }

  for (const b of document.querySelectorAll(".iv")) {
    b.addEventListener("click", () => {
      state.interval = b.dataset.interval;
      const url = new URL(location.href);
      url.searchParams.set("interval", state.interval);
      history.replaceState(null, "", url);
      renderControls();
      load();
    });
  }

  document.getElementById("study-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const kind = document.getElementById("study-kind").value;
    const extra = document.getElementById("study-params").value.trim().replace(/[\s,]+/g, ":");
    const id = extra ? `${kind}:${extra}` : kind;
    if (!state.studies.includes(id)) state.studies.push(id);
    saveStudies();
    renderControls();
    load().then(() => {
      // The server names studies with their defaults filled in: keep its spelling so chips match the chart.
      const shown = (chartEl.dataset.studies || "").split(",").filter(Boolean);
      if (shown.length === state.studies.length) { state.studies = shown; saveStudies(); renderControls(); }
    });
  });

  if (typeof LightweightCharts === "undefined") {
    statusEl.textContent = "The chart library is missing: run `npm ci` in the repository root.";
    return;
  }
  renderControls();
  load();
  loadQuote();
  setInterval(tick, 1000);
  connect();
})();
