// The portfolio page: summary, allocation (SVG donut), value over time with the BTC benchmark (lightweight-charts),
// holdings with cost basis and P&L, and the connections with their status; refreshed every 10 s.
"use strict";

(function () {
  const COLORS = ["#5b8cff", "#f0b90b", "#2ebd85", "#c77dff", "#f6465d", "#26c6da", "#ff9800", "#8d6e63",
    "#9ccc65", "#ec407a"];
  const state = { by: "asset", interval: "1h", data: null, chart: null, series: null, bench: null };
  const $ = (id) => document.getElementById(id);
  const usd = (v) => (v === null || v === undefined ? "—"
    : v.toLocaleString("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 2 }));
  const pct = (v) => (v === null || v === undefined ? "—" : (v * 100).toFixed(2) + " %");

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function slices() {
    const d = state.data;
    if (!d) return [];
    if (state.by === "asset") return d.by_asset.map((a) => ({ label: a.asset, value: a.value_usd, share: a.share }));
    const list = { category: d.by_category, account: d.by_account, chain: d.by_chain }[state.by] || [];
    return list.map((s) => ({ label: s.label, value: s.value_usd, share: s.share }));
  }

  function drawAllocation() {
    const svg = $("pf-allocation");
    const legend = $("pf-legend");
    svg.replaceChildren();
    legend.replaceChildren();
    const parts = slices().filter((s) => s.value > 0);
    const total = parts.reduce((t, s) => t + s.value, 0);
    svg.dataset.slices = String(parts.length);
    if (!total) return;
    let angle = -Math.PI / 2;
    parts.forEach((s, i) => {
      const sweep = (s.value / total) * Math.PI * 2;
      const color = COLORS[i % COLORS.length];
      const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
      const r = 90, inner = 55, cx = 100, cy = 100;
      const a0 = angle, a1 = angle + Math.min(sweep, Math.PI * 2 - 1e-6);
      const large = a1 - a0 > Math.PI ? 1 : 0;
      const p = (rad, a) => `${cx + rad * Math.cos(a)} ${cy + rad * Math.sin(a)}`;
      path.setAttribute("d", `M ${p(r, a0)} A ${r} ${r} 0 ${large} 1 ${p(r, a1)} L ${p(inner, a1)} ` +
        `A ${inner} ${inner} 0 ${large} 0 ${p(inner, a0)} Z`);
      path.setAttribute("fill", color);
      const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
      title.textContent = `${s.label}: ${usd(s.value)}`;
      path.append(title);
      svg.append(path);
      angle += sweep;
      const li = document.createElement("li");
      const dot = document.createElement("i");
      dot.style.background = color;
      li.append(dot, `${s.label} ${usd(s.value)} (${pct(s.value / total)})`);
      legend.append(li);
    });
  }

  function render(d) {
    state.data = d;
    $("pf-total").textContent = usd(d.total_usd);
    $("pf-basis").textContent = usd(d.cost_basis_usd);
    $("pf-pnl").textContent = usd(d.unrealized_pnl_usd);
    $("pf-asof").textContent = MP.when(d.as_of_ms);
    $("pf-unpriced").textContent = d.unpriced.length ? `No market price for: ${d.unpriced.join(", ")}` : "";
    const body = $("pf-holdings").querySelector("tbody");
    body.replaceChildren(...d.by_asset.map((a) => {
      const tr = document.createElement("tr");
      tr.dataset.asset = a.asset;
      const pnl = a.unrealized_pnl_usd;
      tr.append(cell(a.asset), cell(a.category), cell(a.amount), cell(a.price_usd === null ? "—" : usd(a.price_usd)),
        cell(usd(a.value_usd)), cell(pct(a.share)), cell(usd(a.cost_basis_usd)),
        cell(usd(pnl), pnl > 0 ? "up" : pnl < 0 ? "down" : ""));
      return tr;
    }));
    const accounts = $("pf-accounts").querySelector("tbody");
    accounts.replaceChildren(...d.accounts.map((a) => {
      const tr = document.createElement("tr");
      tr.dataset.account = a.id;
      tr.dataset.status = a.status;
      const status = a.status + (a.last_error ? `: ${a.last_error}` : "");
      const actions = document.createElement("td");
      const sync = document.createElement("button");
      sync.type = "button"; sync.className = "btn small secondary"; sync.textContent = "Sync";
      sync.addEventListener("click", () => act("POST", `/api/v1/portfolio/accounts/${a.id}/sync`));
      const drop = document.createElement("button");
      drop.type = "button"; drop.className = "btn small secondary"; drop.textContent = "Remove";
      drop.addEventListener("click", () => act("DELETE", `/api/v1/portfolio/accounts/${a.id}`));
      actions.append(sync, " ", drop);
      tr.append(cell(a.name), cell(a.kind), cell(a.exchange || a.chain || (a.address || "")),
        cell(a.api_key || (a.address ? a.address.slice(0, 10) + "…" : "")),
        cell(status, a.status === "error" ? "error" : ""), cell(MP.when(a.last_sync_ms)),
        cell(String(a.transactions)), actions);
      return tr;
    }));
    drawAllocation();
  }

  async function act(method, path) {
    await MP.api(method, path);
    refresh();
  }

  function chart() {
    if (state.chart) return state.chart;
    if (typeof LightweightCharts === "undefined") return null;
    const css = getComputedStyle(document.documentElement);
    state.chart = LightweightCharts.createChart($("pf-chart"), {
      autoSize: true,
      layout: { background: { type: "solid", color: css.getPropertyValue("--panel").trim() || "#121722" },
        textColor: css.getPropertyValue("--muted").trim() || "#8a93a6" },
      grid: { vertLines: { color: "#1b2231" }, horzLines: { color: "#1b2231" } },
      timeScale: { timeVisible: true, secondsVisible: false },
    });
    state.series = state.chart.addLineSeries({ color: "#5b8cff", lineWidth: 2, title: "Portfolio $" });
    state.bench = state.chart.addLineSeries({ color: "#f0b90b", lineWidth: 1, lineStyle: 2, title: "BTC" });
    return state.chart;
  }

  async function history() {
    const answer = await MP.api("GET", `/api/v1/portfolio/history?interval=${state.interval}`);
    if (!answer.ok) return;
    const h = answer.data;
    $("pf-chart").dataset.points = String(h.points.length);
    if (chart()) {
      state.series.setData(h.points.map((p) => ({ time: Math.floor(p.time_ms / 1000), value: p.value_usd })));
      state.bench.setData(h.points.filter((p) => p.benchmark_usd !== null)
        .map((p) => ({ time: Math.floor(p.time_ms / 1000), value: p.benchmark_usd })));
      state.chart.timeScale().fitContent();
    }
    const perf = h.performance;
    const rows = [["Time-weighted return", pct(perf.time_weighted_return)],
      ["Money-weighted return", pct(perf.money_weighted_return)], ["Max drawdown", pct(perf.max_drawdown)],
      ["BTC over the range", pct(perf.btc_return)], ["Versus BTC", pct(perf.excess_vs_btc)]];
    $("pf-performance").replaceChildren(...rows.flatMap(([k, v]) => {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = v;
      return [dt, dd];
    }));
  }

  async function refresh() {
    const answer = await MP.api("GET", "/api/v1/portfolio");
    if (answer.status === 401) {
      $("pf-signed-out").hidden = false;
      return;
    }
    if (answer.ok) render(answer.data);
    await history();
  }

  function showFields() {
    const kind = $("pf-kind").value;
    document.querySelectorAll("#pf-connect [data-for]").forEach((el) => {
      el.hidden = !el.dataset.for.split(" ").includes(kind);
    });
  }

  function pressed(selector, attr, value) {
    document.querySelectorAll(selector).forEach((b) => b.setAttribute("aria-pressed", String(b.dataset[attr] === value)));
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-by]").forEach((b) => b.addEventListener("click", () => {
      state.by = b.dataset.by; pressed("[data-by]", "by", state.by); drawAllocation();
    }));
    document.querySelectorAll("[data-interval]").forEach((b) => b.addEventListener("click", () => {
      state.interval = b.dataset.interval; pressed("[data-interval]", "interval", state.interval); history();
    }));
    pressed("[data-by]", "by", state.by);
    pressed("[data-interval]", "interval", state.interval);
    $("pf-kind").addEventListener("change", showFields);
    showFields();
    $("pf-connect").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const form = new FormData(ev.target);
      const kind = form.get("kind");
      const body = { kind, name: form.get("name") };
      const fields = { exchange: ["exchange", "api_key", "secret"], evm: ["chain", "address"], solana: ["address"] };
      (fields[kind] || []).forEach((f) => { body[f] = form.get(f); });
      MP.say("pf-connect-msg", "Connecting…", "good");
      const answer = await MP.api("POST", "/api/v1/portfolio/accounts", body);
      if (!answer.ok) { MP.say("pf-connect-msg", MP.errorText(answer)); return; }
      MP.say("pf-connect-msg", `Connected ${answer.data.name}: syncing.`, "good");
      ev.target.reset();
      showFields();
      refresh();
    });
    refresh();
    setInterval(refresh, 10000);
  });
})();
