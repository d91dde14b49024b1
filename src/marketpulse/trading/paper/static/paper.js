// marketpulse paper trading: account, positions, orders, fills and deployments, polled from the REST API.
// Vanilla JS, no build step.
//
// The page's bootstrap JSON carries the first snapshot (same wire shapes as the API), so it paints at once; then
// every REFRESH_MS the five GET endpoints are polled. Rows are keyed and updated in place, so a Cancel or Stop
// button under the pointer is never replaced mid-click by a refresh. Form errors from the API (422 field errors,
// 409 risk rejections) are shown beside the form, in words.
(() => {
  "use strict";

  const boot = JSON.parse(document.getElementById("bootstrap").textContent);
  const REFRESH_MS = boot.refreshMs || 2000;
  const API = "/api/v1/paper";

  // ---- formatting: numbers as traders read them ----------------------------------------------------------------
  // (dashboard.js keeps its formatters private inside its closure, so there is nothing to import from it.)

  const formats = new Map();
  function fixed(minDigits, maxDigits = minDigits) {
    const key = minDigits + ":" + maxDigits;
    if (!formats.has(key)) {
      const options = { minimumFractionDigits: minDigits, maximumFractionDigits: maxDigits };
      formats.set(key, new Intl.NumberFormat("en-US", options));
    }
    return formats.get(key);
  }
  const isNum = (v) => typeof v === "number" && Number.isFinite(v);
  const DASH = "—";

  // $10,000.00; sub-dollar amounts (a small fill's fee) keep four decimals so they don't read as $0.00.
  function usd(v) {
    if (!isNum(v)) return DASH;
    const a = Math.abs(v);
    const text = fixed(a !== 0 && a < 1 ? 4 : 2).format(a);
    return (v < 0 ? "-$" : "$") + text;
  }
  // +$12.34 / -$5.00: P&L always carries its sign.
  const signedUsd = (v) => (!isNum(v) ? DASH : (v > 0 ? "+" : "") + usd(v));
  const signedPct = (v) => (!isNum(v) ? DASH : (v > 0 ? "+" : "") + v.toFixed(2) + "%");
  // About five significant digits: 60,123.50 · 2,400.2500 · 0.012346.
  function price(v) {
    if (!isNum(v)) return DASH;
    const a = Math.abs(v);
    const digits = a >= 1000 ? 2 : a >= 1 ? 4 : Math.min(8, Math.max(4, 4 - Math.floor(Math.log10(a || 1))));
    return fixed(digits).format(v);
  }
  // Up to 8 decimals (satoshis), trailing zeros dropped: 0.5, 1,250, 0.00012.
  const qty = (v) => (isNum(v) ? fixed(0, 8).format(v) : DASH);
  const signClass = (v) => (!isNum(v) ? "na" : v > 0 ? "pos" : v < 0 ? "neg" : "");
  const pad = (n) => String(n).padStart(2, "0");
  // UTC, like the API's days (DAY orders, the daily-loss halt): 2025-10-10 20:01:00.
  // Or local time, when the visitor chose it in the nav (site.js's switch; the headings say which).
  function utc(ms) {
    if (!isNum(ms)) return DASH;
    if (window.MP && window.MP.zone() === "local") return window.MP.formatTime(ms, { date: "always", seconds: true });
    const d = new Date(ms);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
      `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  }
  const words = (s) => String(s || "").replace(/_/g, " ");

  // ---- small DOM helpers ---------------------------------------------------------------------------------------

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  function setText(node, text, cls) {
    if (node.textContent !== text) node.textContent = text;
    if (cls !== undefined && node.className !== cls) node.className = cls;
  }

  // Keyed, in-place table sync. `cells(item)` gives [{text, cls}] per column; `action(item)` an optional
  // {label, action, cls, option?} for a trailing button column (`option`: a checkbox beside the button, kept across
  // refreshes, whose state rides along with the click, e.g. Stop's "close position").
  function syncTable(id, items, key, cells, action) {
    const table = document.getElementById(id);
    const body = table.tBodies[0];
    const existing = new Map($$("tr", body).map((tr) => [tr.dataset.key, tr]));
    items.forEach((item, i) => {
      const k = String(key(item));
      let tr = existing.get(k);
      existing.delete(k);
      const specs = cells(item);
      if (!tr) tr = newRow(k, specs.length, action !== undefined);
      specs.forEach((c, j) => {
        setText(tr.cells[j], c.text, c.cls || "");
        if (c.title !== undefined && tr.cells[j].title !== c.title) tr.cells[j].title = c.title;
      });
      if (action) syncAction(tr.cells[specs.length], action(item), k);
      if (body.rows[i] !== tr) body.insertBefore(tr, body.rows[i] || null);
    });
    existing.forEach((tr) => tr.remove());
    $(`[data-empty-for="${id}"]`).hidden = items.length > 0;
    const count = document.getElementById(id + "-count");
    if (count) setText(count, String(items.length));
  }

  function newRow(key, columns, withAction) {
    const tr = document.createElement("tr");
    tr.dataset.key = key;
    for (let j = 0; j < columns + (withAction ? 1 : 0); j++) tr.appendChild(document.createElement("td"));
    return tr;
  }

  function syncAction(td, spec, key) {
    if (!spec) {
      td.textContent = "";
      return;
    }
    let button = $("button", td);
    if (!button) {
      button = document.createElement("button");
      button.type = "button";
      td.appendChild(button);
    }
    button.dataset.action = spec.action;
    button.dataset.id = key;
    button.className = spec.cls || "";
    setText(button, spec.label);
    let option = $("label.option", td);
    if (spec.option && !option) {
      option = document.createElement("label");
      option.className = "option";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.dataset.option = spec.option.name;
      option.append(box, " " + spec.option.label);
      td.insertBefore(option, button);
    } else if (!spec.option && option) {
      option.remove();
    }
  }

  // ---- rendering -----------------------------------------------------------------------------------------------

  function renderAccount(a) {
    const set = (field, text, cls) => {
      const node = $(`#account [data-field="${field}"]`);
      if (node) setText(node, text, cls === undefined ? node.className : "v " + cls);
    };
    set("equity", usd(a.equity));
    set("plan", a.plan || DASH);
    set("balance", usd(a.balance));
    set("starting_balance", usd(a.starting_balance));
    set("unrealized_pnl", signedUsd(a.unrealized_pnl), signClass(a.unrealized_pnl));
    set("open_positions", String(a.open_positions ?? 0));
    set("realized_pnl", signedUsd(a.realized_pnl), signClass(a.realized_pnl));
    set("net_pnl", signedUsd(a.net_pnl));
    set("fees", usd(a.fees));
    set("margin_used", usd(a.margin_used));
    set("leverage", isNum(a.leverage) ? fixed(0, 2).format(a.leverage) + "x" : DASH);
    set("daily_pnl", signedUsd(a.daily_pnl), signClass(a.daily_pnl));
    const dayPct = isNum(a.daily_pnl) && a.day_start_equity ? (100 * a.daily_pnl) / a.day_start_equity : NaN;
    $('#account [data-field="daily_pct"]').textContent = signedPct(dayPct) + " since 00:00 UTC";

    const banner = document.getElementById("halted");
    banner.hidden = !a.halted;
    if (a.halted) {
      setText(document.getElementById("halted-until"), utc(a.halted_until) + " " + (window.MP ? window.MP.zoneLabel() : "UTC"));
      const drop = a.day_start_equity ? (100 * (a.day_start_equity - a.equity)) / a.day_start_equity : NaN;
      setText(document.getElementById("halted-detail"), isNum(drop)
        ? `Equity is ${drop.toFixed(2)}% below today's start of ${usd(a.day_start_equity)}.` : "");
    }
  }

  // A position is one symbol in one book: your own trades, or one deployment's (a strategy's position never nets
  // against yours). A running strategy manages its own, so only the others get a Close button.
  const positionKey = (p) => `${p.symbol}|${p.deployment_id || ""}`;

  function renderPositions(rows, deployments) {
    const byId = new Map((deployments || []).map((d) => [d.id, d]));
    syncTable("positions", rows, positionKey, (p) => {
      const d = p.deployment_id ? byId.get(p.deployment_id) : null;
      const running = d && d.status === "running";
      const from = !p.deployment_id ? "manual" : (d ? d.strategy : "strategy") + (running ? "" : " (stopped)");
      return [
        { text: p.symbol, cls: "sym" },
        { text: p.side, cls: "left side-" + p.side },
        { text: qty(Math.abs(p.quantity)) },
        { text: price(p.avg_price) },
        { text: price(p.mark_price) },
        { text: usd(p.notional) },
        { text: signedUsd(p.unrealized_pnl), cls: signClass(p.unrealized_pnl) },
        { text: from, cls: "tag left" },
      ];
    }, (p) => {
      const d = p.deployment_id ? byId.get(p.deployment_id) : null;
      return d && d.status === "running" ? null : { label: "Close", action: "close", cls: "danger" };
    });
  }

  function orderPrice(o) {
    if (o.type === "limit") return price(o.limit_price);
    if (o.type === "stop") return "stop " + price(o.stop_price);
    return "market";
  }

  function renderOrders(rows) {
    syncTable("orders", rows, (o) => o.id, (o) => [
      { text: o.symbol, cls: "sym" },
      { text: o.side, cls: "left side-" + o.side },
      { text: o.type, cls: "tag left" },
      { text: qty(o.quantity) },
      { text: orderPrice(o) },
      { text: o.time_in_force.toUpperCase(), cls: "tag left" },
      { text: utc(o.created_at), cls: "tag left" },
      { text: o.deployment_id ? "strategy" : "manual", cls: "tag left" },
    ], () => ({ label: "Cancel", action: "cancel", cls: "danger" }));
  }

  function renderFills(rows) {
    syncTable("fills", rows, (f) => f.id, (f) => [
      { text: utc(f.time), cls: "tag left" },
      { text: f.symbol, cls: "sym" },
      { text: f.side, cls: "left side-" + f.side },
      { text: qty(f.quantity) },
      { text: price(f.price) },
      { text: usd(f.fee) },
      { text: f.realized_pnl ? signedUsd(f.realized_pnl) : DASH, cls: signClass(f.realized_pnl || NaN) },
    ]);
  }

  const paramText = (params) => Object.entries(params || {}).map(([k, v]) => `${k}=${v}`).join(", ") || DASH;

  // fast=5, slow=26 · long only · 50% per entry (the last two only when not the defaults).
  function deploymentText(d) {
    let text = paramText(d.params);
    if (d.long_only) text += " · long only";
    if (isNum(d.size) && d.size !== 1) text += ` · ${fixed(0, 2).format(d.size * 100)}% per entry`;
    return text;
  }

  function renderDeployments(rows) {
    syncTable("deployments", rows, (d) => d.id, (d) => {
      // `trades` is null when the deployment runs in another process and has no snapshot yet.
      const trades = Array.isArray(d.trades) ? d.trades : null;
      const pnl = trades ? trades.reduce((sum, t) => sum + (isNum(t.pnl) ? t.pnl : 0), 0) : NaN;
      return [
        { text: d.strategy, cls: "sym" },
        { text: d.symbol, cls: "tag left" },
        { text: d.interval, cls: "tag left" },
        { text: deploymentText(d), cls: "params left" },
        { text: d.status, cls: "left status status-" + d.status },
        { text: trades ? String(trades.length) : DASH, title: trades ? "" : "no trade record: not running here" },
        { text: trades ? signedUsd(pnl) : DASH, cls: signClass(pnl) },
      ];
    }, (d) => (d.status === "running"
      ? { label: "Stop", action: "stop", cls: "danger", option: { name: "close_position", label: "close position" } }
      : null));
  }

  function render(s) {
    renderAccount(s.account);
    renderPositions(s.positions, s.deployments);
    renderOrders(s.orders);
    renderFills(s.fills);
    renderDeployments(s.deployments);
  }

  // ---- polling -------------------------------------------------------------------------------------------------

  async function getJson(path) {
    const resp = await window.MP.fetch(API + path, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}`);
    return resp.json();
  }

  function setConnection(state, detail) {
    const conn = document.getElementById("conn-status");
    conn.dataset.state = state;
    conn.title = detail || "Polling the paper-trading API";
    setText($(".label", conn), state);
  }

  let inFlight = null;
  let timer = null;

  async function poll() {
    const list = async (path) => (await getJson(path)).data;  // list endpoints answer {data, next}
    const [account, positions, orders, fills, deployments] = await Promise.all([
      getJson("/account"), list("/positions"), list("/orders?status=open"),
      list(`/fills?limit=${boot.fillsShown || 50}`), list("/deployments"),
    ]);
    render({ account, positions, orders, fills, deployments });
    setConnection("live");
    setText(document.getElementById("updated"), "updated " + (window.MP
      ? window.MP.formatTime(Date.now(), { seconds: true, label: true }) : new Date().toLocaleTimeString()) +
      " (wall clock)");
  }

  // One poll at a time; a refresh asked for during one (after an order) waits for it, then runs.
  function refresh() {
    clearTimeout(timer);
    const run = (inFlight || Promise.resolve())
      .then(() => poll())
      .catch((err) => setConnection("offline", String(err)))
      .finally(() => {
        if (inFlight === run) inFlight = null;
        clearTimeout(timer);
        timer = setTimeout(refresh, REFRESH_MS);
      });
    inFlight = run;
    return run;
  }

  // ---- API errors, in words ------------------------------------------------------------------------------------

  const RISK_HEADLINES = {
    max_position_size: "Rejected by risk: position too large",
    max_concurrent_positions: "Rejected by risk: too many open positions",
    insufficient_margin: "Rejected by risk: not enough margin",
    deployment_running: "Not closed: its strategy is still running",
    account_halted: "Rejected by risk: trading is halted",
    order_not_open: "Not open any more",
  };

  // FastAPI's 422 `msg` carries pydantic's prefix ("Value error, …"); the reader wants the sentence after it.
  const cleanMsg = (msg) => String(msg || "").replace(/^Value error, /, "");

  function describeError(status, body) {
    const detail = body && body.detail;
    if (status === 422 && Array.isArray(detail)) {
      return { fields: detail.map((e) => ({ field: (e.loc || []).slice(1).join("."), msg: cleanMsg(e.msg) })) };
    }
    if (detail && typeof detail === "object" && detail.reason) {
      const headline = RISK_HEADLINES[detail.reason] || "Rejected: " + words(detail.reason);
      let text = detail.message || "";
      if (detail.reason === "max_position_size" && isNum(detail.limit)) {
        text += ` (limit ${usd(detail.limit)}` + (isNum(detail.value) ? `, this order: ${usd(detail.value)})` : ")");
      }
      return { headline, text };
    }
    return { headline: `Request failed (HTTP ${status})`, text: typeof detail === "string" ? detail : "" };
  }

  function clearErrors(form) {
    $$("[data-error-for]", form).forEach((n) => { n.textContent = ""; });
    $$(".field.invalid", form).forEach((n) => n.classList.remove("invalid"));
    const box = $("[data-message]", form);
    box.textContent = "";
    box.className = "form-message";
  }

  function showMessage(form, kind, headline, text) {
    const box = $("[data-message]", form);
    box.className = "form-message " + kind;
    box.textContent = "";
    const strong = document.createElement("strong");
    strong.textContent = headline;
    box.appendChild(strong);
    if (text) box.appendChild(document.createTextNode(" " + text));
  }

  function showApiError(form, status, body) {
    const err = describeError(status, body);
    if (!err.fields) {
      showMessage(form, "error", err.headline + (err.text ? ":" : ""), err.text);
      return;
    }
    const unplaced = [];
    err.fields.forEach(({ field, msg }) => {
      // Nested locs (params.fast) belong to their top-level field's slot.
      const slot = $(`[data-error-for="${field}"]`, form) || $(`[data-error-for="${field.split(".")[0]}"]`, form);
      if (slot && !slot.closest("[hidden]")) {
        slot.textContent = (slot.textContent ? slot.textContent + " " : "") + msg;
        const label = slot.closest(".field");
        if (label) label.classList.add("invalid");
      } else {
        unplaced.push(`${words(field) || "request"}: ${msg}`);
      }
    });
    showMessage(form, "error", "Please fix the highlighted fields.", unplaced.join("; "));
  }

  // What the browser can't even read as a number never reaches the API; shown the way the API's 422s are.
  function showLocalErrors(form, errors) {
    showApiError(form, 422, { detail: errors.map((e) => ({ loc: ["body", e.field], msg: e.msg })) });
  }

  async function send(form, method, url, body) {
    const button = form && $("button[type=submit]", form);
    if (button) button.disabled = true;
    try {
      const init = { method, headers: { Accept: "application/json" } };
      if (body !== undefined) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      const resp = await window.MP.fetch(url, init);
      const data = await resp.json().catch(() => null);
      return { ok: resp.ok, status: resp.status, data };
    } catch (err) {
      return { ok: false, status: 0, data: { detail: "the server could not be reached: " + err.message } };
    } finally {
      if (button) button.disabled = false;
    }
  }

  // ---- the order form ------------------------------------------------------------------------------------------

  const orderForm = document.getElementById("order-form");

  function syncOrderForm() {
    const type = orderForm.elements.type.value;
    const side = orderForm.elements.side.value;
    $$("[data-for-type]", orderForm).forEach((n) => { n.hidden = n.dataset.forType !== type; });
    const button = $("button[type=submit]", orderForm);
    button.className = "primary " + side;
    button.textContent = `Place ${side} order`;
  }

  // A number field as the API wants it: absent when blank, NaN (→ a clear 422) when the browser can't read it.
  function numberField(input) {
    if (input.validity && input.validity.badInput) return NaN;
    return input.value.trim() === "" ? undefined : Number(input.value);
  }

  function orderBody() {
    const f = orderForm.elements;
    const body = { symbol: f.symbol.value.trim(), side: f.side.value, type: f.type.value,
                   quantity: numberField(f.quantity), time_in_force: f.time_in_force.value };
    // Only the price the type uses: the API refuses a limit price on a market order, say.
    if (body.type === "limit") body.limit_price = numberField(f.limit_price);
    if (body.type === "stop") body.stop_price = numberField(f.stop_price);
    return body;
  }

  function localErrors(body, fields) {
    return fields.filter((k) => Number.isNaN(body[k])).map((k) => ({ field: k, msg: "is not a number" }));
  }

  async function submitOrder(ev) {
    ev.preventDefault();
    clearErrors(orderForm);
    const body = orderBody();
    const bad = localErrors(body, ["quantity", "limit_price", "stop_price"]);
    if (bad.length) return showLocalErrors(orderForm, bad);
    const resp = await send(orderForm, "POST", API + "/orders", body);
    if (!resp.ok) return showApiError(orderForm, resp.status, resp.data);
    const o = resp.data;
    // A limit already through the market when placed is a taker: it fills at the next open, at the taker fee.
    const when = o.type === "market" ? "fills at the next candle's open"
      : o.taker ? "marketable: fills at the next candle's open (taker fee)" : "resting until its price trades";
    showMessage(orderForm, "ok", "Order accepted:", `${o.side} ${qty(o.quantity)} ${o.symbol} ${o.type} — ${when}.`);
    refresh();
  }

  // ---- the deploy form -----------------------------------------------------------------------------------------

  const deployForm = document.getElementById("deploy-form");

  function syncDeployForm() {
    const name = deployForm.elements.strategy.value;
    $$("fieldset.params", deployForm).forEach((fs) => {
      const on = fs.dataset.strategy === name;
      fs.hidden = !on;
      fs.disabled = !on;
    });
  }

  function paramValue(input) {
    const kind = input.dataset.kind;
    if (kind === "bool") return input.checked;
    if (kind === "int" || kind === "float") return numberField(input);
    return input.value;
  }

  function deployBody() {
    const f = deployForm.elements;
    const fs = $(`fieldset.params[data-strategy="${CSS.escape(f.strategy.value)}"]`, deployForm);
    const params = {};
    const bad = [];
    $$("[data-param]", fs || deployForm).forEach((input) => {
      const v = paramValue(input);
      if (Number.isNaN(v)) bad.push({ field: "params", msg: `parameter '${input.dataset.param}' is not a number` });
      else if (v !== undefined) params[input.dataset.param] = v; // blank: the strategy's default
    });
    const size = numberField(f.size);
    if (Number.isNaN(size)) bad.push({ field: "size", msg: "is not a number" });
    const body = { strategy: f.strategy.value, symbol: f.symbol.value.trim(), interval: f.interval.value, params,
                   long_only: f.long_only.checked };
    if (isNum(size)) body.size = size; // blank: the API's default (all of the deployment's equity)
    return { body, bad };
  }

  async function submitDeploy(ev) {
    ev.preventDefault();
    clearErrors(deployForm);
    const { body, bad } = deployBody();
    if (bad.length) return showLocalErrors(deployForm, bad);
    const resp = await send(deployForm, "POST", API + "/deployments", body);
    if (!resp.ok) return showApiError(deployForm, resp.status, resp.data);
    const d = resp.data;
    const what = `${d.strategy} on ${d.symbol} ${d.interval}${d.long_only ? ", long only" : ""}`;
    showMessage(deployForm, "ok", "Deployed:", `${what}; it trades on closed candles.`);
    refresh();
  }

  // ---- row actions (Cancel, Close, Stop) -----------------------------------------------------------------------

  function rowRequest(button) {
    const id = button.dataset.id;
    if (button.dataset.action === "cancel") return [orderForm, "DELETE", `${API}/orders/${encodeURIComponent(id)}`];
    if (button.dataset.action === "close") {
      const [symbol, deployment] = id.split("|");
      const query = deployment ? `?deployment_id=${encodeURIComponent(deployment)}` : "";
      return [orderForm, "POST", `${API}/positions/${encodeURIComponent(symbol)}/close${query}`];
    }
    // Stop: the row's "close position" box says whether its position is closed too or left for you.
    const box = $("input[data-option=close_position]", button.parentElement);
    const body = { close_position: Boolean(box && box.checked) };
    return [deployForm, "POST", `${API}/deployments/${encodeURIComponent(id)}/stop`, body];
  }

  async function onRowAction(ev) {
    const button = ev.target.closest("button[data-action]");
    if (!button) return;
    const [form, method, url, body] = rowRequest(button);
    button.disabled = true;
    const resp = await send(null, method, url, body);
    button.disabled = false;
    clearErrors(form);
    if (!resp.ok) showApiError(form, resp.status, resp.data);
    refresh();
  }

  // ---- start ---------------------------------------------------------------------------------------------------

  orderForm.addEventListener("change", syncOrderForm);
  orderForm.addEventListener("submit", submitOrder);
  deployForm.elements.strategy.addEventListener("change", syncDeployForm);
  deployForm.addEventListener("submit", submitDeploy);
  document.getElementById("orders").addEventListener("click", onRowAction);
  document.getElementById("positions").addEventListener("click", onRowAction);
  document.getElementById("deployments").addEventListener("click", onRowAction);
  syncOrderForm();
  syncDeployForm();
  if (boot.snapshot) render(boot.snapshot);
  timer = setTimeout(refresh, REFRESH_MS);

  // Live: the server pushes this owner's fills and risk halts (Socket.IO room user-{owner}); each one refreshes
  // the page at once instead of at the next poll. Polling stays: it covers everything else, and a lost socket.
  if (window.io) {
    const socket = window.io({ transports: ["websocket", "polling"] });
    socket.on("paper-fill", () => refresh());
    socket.on("risk-halt", () => refresh());
  }
})();
