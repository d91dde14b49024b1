// The /backtests page (served from /static: the Content-Security-Policy allows no inline script): a data selector
// (bundled samples, the candle library) filling symbol and interval, the strategy's parameters, then the job's
// progress and, when done, the chart (backtest-chart.js), statistics with units, monthly returns and trades.
// A failed submission clears the previous result, so an old chart never passes for the new run's.
"use strict";
(function () {
  const boot = JSON.parse(document.getElementById("bootstrap").textContent);
  const $ = (id) => document.getElementById(id);
  const byName = Object.fromEntries(boot.strategies.map((s) => [s.name, s]));
  const sources = Object.fromEntries(boot.sources.map((s) => [s.id, s]));
  const defaults = boot.defaults || {};
  let current = null;  // the job being shown
  let watching = null;  // the job being polled: answers about any other (an earlier run) are dropped
  let chart = null;

  // ---- the form ----------------------------------------------------------------------------------------------

  for (const s of boot.sources) $("source").add(new Option(s.label, s.id));
  for (const s of boot.strategies) $("strategy").add(new Option(s.name, s.name));
  $("source").value = sources[defaults.source] ? defaults.source : (boot.sources[0] || {}).id;
  if (byName[defaults.strategy]) $("strategy").value = defaults.strategy;

  const day = (ms) => new Date(ms).toISOString().slice(0, 10);

  function applySource(keepSymbol) {
    const src = sources[$("source").value];
    if (!src) return;
    $("source-symbols").replaceChildren(...src.symbols.slice(0, 1000).map((s) => new Option(s, s)));
    if (!keepSymbol || !src.symbols.includes($("symbol").value.trim().toUpperCase())) $("symbol").value = src.symbols[0];
    const wanted = src.intervals.includes($("interval").value) && keepSymbol ? $("interval").value : src.default_interval;
    $("interval").replaceChildren(...src.intervals.map((iv) => new Option(iv, iv)));
    $("interval").value = wanted;
    for (const id of ["from", "to"]) {
      $(id).min = src.start ? day(src.start) : "";
      $(id).max = src.end ? day(src.end) : "";
    }
    $("source-help").textContent = src.start ? `${day(src.start)} → ${day(src.end)} · ` +
      `${src.symbols.length} symbol${src.symbols.length === 1 ? "" : "s"} · leave the dates empty for all of it` : "";
  }
  $("source").addEventListener("change", () => applySource(false));
  applySource(true);
  if (defaults.interval && [...$("interval").options].some((o) => o.value === defaults.interval)) {
    $("interval").value = defaults.interval;
  }

  function renderParams() {
    const s = byName[$("strategy").value];
    $("strategy-help").textContent = s.description || "";
    const box = $("params");
    box.querySelectorAll(".param").forEach((el) => el.remove());
    for (const p of s.params) {
      const label = document.createElement("label");
      label.className = "field param";
      label.textContent = p.name + (p.help ? " — " + p.help : "");
      let input;
      if (p.choices) {
        input = document.createElement("select");
        for (const c of p.choices) input.add(new Option(String(c), String(c), c === p.default, c === p.default));
      } else if (p.kind === "bool") {
        input = document.createElement("select");
        input.add(new Option("false", "false", !p.default, !p.default));
        input.add(new Option("true", "true", p.default, p.default));
      } else {
        input = document.createElement("input");
        input.type = p.kind === "str" ? "text" : "number";
        if (p.kind === "float") input.step = "any";
        if (p.low !== null) input.min = p.low;
        if (p.high !== null) input.max = p.high;
        input.value = p.default;
      }
      input.dataset.param = p.name;
      input.dataset.kind = p.kind;
      input.id = "param-" + p.name;
      label.append(input);
      box.append(label);
    }
  }
  $("strategy").addEventListener("change", renderParams);
  renderParams();

  function readParams() {
    const out = {};
    for (const el of document.querySelectorAll("[data-param]")) {
      const k = el.dataset.kind;
      out[el.dataset.param] = k === "bool" ? el.value === "true" : k === "int" || k === "float" ? Number(el.value) : el.value;
    }
    return out;
  }

  function body() {
    const src = sources[$("source").value];
    const b = {
      strategy: $("strategy").value, symbol: $("symbol").value.trim(), interval: $("interval").value,
      params: readParams(), fee_bps: Number($("fee_bps").value), cash: Number($("cash").value),
      size: Number($("size").value), long_only: $("long_only").checked,
    };
    if (src) b.exchange = src.exchange;
    if ($("from").value) b.from = $("from").value;
    if ($("to").value) b.to = $("to").value;
    return b;
  }

  function showError(detail) {
    // 422: [{loc: ["body", field, ...], msg}] → one line per field; other errors: their message.
    let text;
    if (Array.isArray(detail)) text = detail.map((e) => e.loc.slice(1).join(".") + ": " + e.msg).join("\n");
    else text = typeof detail === "string" ? detail : (detail && detail.message) || "the request failed";
    window.MP.say("error", text, "bad");
  }

  // ---- the result ------------------------------------------------------------------------------------------

  function clearResult() {
    current = null;
    watching = null;
    if (chart) { chart.remove(); chart = null; }
    $("chart").replaceChildren();
    delete $("chart").dataset.state;
    $("stats").replaceChildren();
    $("monthly").replaceChildren();
    $("trades").tBodies[0].replaceChildren();
    for (const id of ["job", "chart", "chart-legend", "numbers", "trades-card", "report-link"]) $(id).classList.add("hidden");
    $("idle").classList.remove("hidden");
  }

  const fmtPrice = (v) => (v === null || v === undefined ? "—"
    : v.toLocaleString("en-US", { maximumSignificantDigits: 7 }));
  const money = (v) => (v >= 0 ? "+" : "−") + "$" + Math.abs(v).toLocaleString("en-US",
    { minimumFractionDigits: 2, maximumFractionDigits: 2 });

  function showStats(summary) {
    const dl = $("stats");
    dl.replaceChildren();
    for (const row of summary) {
      const dt = document.createElement("dt");
      dt.textContent = row.label;
      if (row.note) dt.title = row.note;
      const dd = document.createElement("dd");
      dd.dataset.stat = row.key;
      dd.append(row.text);
      if (row.note && row.value === null && row.text === "—") {
        const note = document.createElement("span");
        note.className = "note";
        note.textContent = "not shown: " + row.note;
        dd.append(note);
      }
      dl.append(dt, dd);
    }
  }

  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  function showMonthly(monthly) {
    const table = $("monthly");
    table.replaceChildren();
    const head = table.createTHead().insertRow();
    for (const h of ["Year", ...MONTHS, "Year"]) {
      const th = document.createElement("th");
      th.textContent = h;
      head.append(th);
    }
    const years = new Map();
    for (const m of monthly) {
      const [y, mo] = m.month.split("-");
      if (!years.has(y)) years.set(y, new Array(12).fill(null));
      years.get(y)[Number(mo) - 1] = m.return;
    }
    const tbody = table.createTBody();
    for (const [y, values] of years) {
      const tr = tbody.insertRow();
      tr.insertCell().textContent = y;
      let growth = 1;
      for (const v of values) {
        const td = tr.insertCell();
        td.textContent = v === null ? "" : (v * 100).toFixed(1) + "%";
        if (v !== null) { td.className = v >= 0 ? "pos" : "neg"; growth *= 1 + v; }
      }
      const total = tr.insertCell();
      total.textContent = ((growth - 1) * 100).toFixed(1) + "%";
      total.className = growth >= 1 ? "pos" : "neg";
    }
  }

  function showTrades(trades, truncated) {
    const tbody = $("trades").tBodies[0];
    const fmt = (ms) => (ms === null || ms === undefined ? "open"
      : window.MP.formatTime(ms, { date: "always" }));
    const rows = trades.slice(0, 2000).map((t) => {
      const tr = document.createElement("tr");
      const cells = [t.side, fmt(t.entry_time), fmt(t.exit_time), fmtPrice(t.entry_price), fmtPrice(t.exit_price),
        money(t.pnl), t.exit_label || t.exit_reason];
      cells.forEach((text, i) => {
        const td = tr.insertCell();
        td.textContent = text;
        if (i === 5) td.className = t.pnl >= 0 ? "pos" : "neg";
      });
      tr.dataset.exit = t.exit_kind || t.exit_reason;
      return tr;
    });
    tbody.replaceChildren(...rows);
    $("trades-count").textContent = String(trades.length) + (truncated ? "+" : "");
  }

  function showJob(job) {
    current = job;
    $("idle").classList.add("hidden");
    $("job").classList.remove("hidden");
    $("job-status").textContent = job.status === "failed" ? "Failed: " + job.error : job.status === "done" ? "Done"
      : job.status === "running" ? "Running…" : "Queued…";
    $("job").dataset.status = job.status;
    $("progress").value = job.progress;
    $("progress").classList.toggle("hidden", job.status === "done" || job.status === "failed");
    const data = job.result && job.result.data;
    $("job-source").textContent = data ? `${data.bars.toLocaleString()} ${data.interval} bars from ${data.source}, ` +
      `${day(data.from)} → ${day(data.to)}` : "";
    if (job.report_url) {
      $("report-link").href = job.report_url;
      $("report-link").classList.remove("hidden");
    }
    const result = job.result;
    if (job.status !== "done" || !result || !result.chart) return;
    for (const id of ["chart", "chart-legend", "numbers", "trades-card"]) $(id).classList.remove("hidden");
    if (chart) chart.remove();
    chart = window.LightweightCharts ? window.BacktestChart.draw($("chart"), result) : null;
    if (!chart) $("chart").textContent = "The chart library is missing: run npm ci.";
    showStats(result.summary);
    showMonthly(result.monthly);
    showTrades(result.trades, result.trades_truncated);
  }

  async function poll(id) {
    if (watching !== id) return;
    const resp = await window.MP.fetch(`/api/v1/backtests/${encodeURIComponent(id)}`);
    const job = await resp.json();
    if (watching !== id) return;
    if (!resp.ok) { clearResult(); showError(job.detail); $("run").disabled = false; return; }
    showJob(job);
    if (job.status === "queued" || job.status === "running") setTimeout(() => poll(id), 400);
    else $("run").disabled = false;
  }

  $("form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    window.MP.say("error", "");
    clearResult();
    $("run").disabled = true;
    try {
      const resp = await window.MP.fetch("/api/v1/backtests", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body()),
      });
      const job = await resp.json();
      if (!resp.ok) { showError(job.detail); $("run").disabled = false; return; }
      history.replaceState(null, "", "#" + job.id);
      watching = job.id;
      showJob(job);
      poll(job.id);
    } catch (err) {
      showError(String(err));
      $("run").disabled = false;
    }
  });

  // Charts follow the theme and the trade times the zone switch.
  document.addEventListener("mp:theme", () => { if (current) showJob(current); });
  document.addEventListener("mp:zone", () => { if (current && current.result) showTrades(current.result.trades, current.result.trades_truncated); });

  if (location.hash.length > 1) {
    watching = location.hash.slice(1);
    poll(watching);
  }
})();
