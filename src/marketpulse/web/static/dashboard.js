// marketpulse dashboard: live USDT-perpetual table + volume-alerts panel. Vanilla JS, no build step.
//
// Data in: the page's bootstrap JSON (table at render time, as the visitor's plan sees it, and the plan's tier),
// Socket.IO `market` ({full, time, rows: [patch…]}, a patch's absent fields mean "unchanged"; a full table at each
// of the plan's refresh boundaries), `volume-alert` (one alert, real-time plans), `volume-alerts` (a batch at the
// plan's boundary: {tier, at, alerts}), `tier` (the plan and its cadence, on connect and on a plan change), and
// the alerts API once. The top bar shows the plan and a countdown to the next alert batch. The liquidation feed:
// the newest from /api/v1/market/liquidations, then each Socket.IO `liquidations` batch ({liquidations: […]}).
// A signed-in user (site.js's MP.me) also gets their watchlists (a filter, and a star per row that adds or removes
// the symbol) and a mark on the symbols they subscribed to volume alerts for; anonymous visitors see none of it.
// Rendering is batched: patches only mark rows dirty; at most one render per RENDER_MS, inside an animation
// frame, touches just the cells whose formatted text changed — hundreds of rows stay smooth.
(() => {
  "use strict";

  const boot = JSON.parse(document.getElementById("bootstrap").textContent);
  const RENDER_MS = boot.renderIntervalMs || 200;
  const MAX_ALERTS = 100;
  const COLUMNS = ["symbol", "price", "changePct1h", "changePct4h", "changePct24h", "quoteVolume24h", "fundingRate",
    "nextFundingTime", "openInterestUsd", "openInterestChange1h", "openInterestChange4h", "openInterestChange24h",
    "liquidations1h", "liquidations4h", "liquidations24h"];
  // Shown unless the visitor chose otherwise (the choice is kept in localStorage); the rest are one click away.
  const DEFAULT_COLUMNS = ["symbol", "price", "changePct1h", "changePct24h", "quoteVolume24h", "fundingRate",
    "openInterestUsd", "openInterestChange24h", "liquidations24h"];
  const PCT_COLUMNS = new Set(["changePct1h", "changePct4h", "changePct24h", "openInterestChange1h",
    "openInterestChange4h", "openInterestChange24h"]);
  const SLOW_COLUMNS_MS = 60000;  // the change and liquidation columns come from GET /api/v1/market/data
  const QUOTES = ["USDT", "USDC", "BUSD", "USD"];

  // ---- formatting: numbers as traders read them -------------------------------------------------------------

  const fixedFormats = new Map();
  function fixed(digits) {
    if (!fixedFormats.has(digits)) {
      const options = { minimumFractionDigits: digits, maximumFractionDigits: digits };
      fixedFormats.set(digits, new Intl.NumberFormat("en-US", options));
    }
    return fixedFormats.get(digits);
  }

  const isNum = (v) => typeof v === "number" && Number.isFinite(v);

  // $12.70B, $3.4M, $850.2K, $920
  function usdCompact(v) {
    if (!isNum(v)) return "—";
    const a = Math.abs(v);
    if (a >= 1e12) return "$" + (v / 1e12).toFixed(2) + "T";
    if (a >= 1e9) return "$" + (v / 1e9).toFixed(2) + "B";
    if (a >= 1e6) return "$" + (v / 1e6).toFixed(1) + "M";
    if (a >= 1e3) return "$" + (v / 1e3).toFixed(1) + "K";
    return "$" + v.toFixed(0);
  }

  // The exchange's precision when known; otherwise enough decimals for ~5 significant digits.
  function price(v, precision) {
    if (!isNum(v)) return "—";
    let digits = precision;
    if (!Number.isInteger(digits)) {
      const a = Math.abs(v);
      digits = a >= 1000 ? 2 : a >= 1 ? 4 : Math.min(8, Math.max(4, 4 - Math.floor(Math.log10(a || 1))));
    }
    return fixed(Math.min(Math.max(digits, 0), 10)).format(v);
  }

  const pct = (v) => (isNum(v) ? (v > 0 ? "+" : "") + v.toFixed(2) + "%" : "—");
  const funding = (v) => (isNum(v) ? (v * 100).toFixed(4) + "%" : "—");
  const signClass = (v) => (!isNum(v) ? "na" : v > 0 ? "pos" : v < 0 ? "neg" : "");

  function splitSymbol(symbol) {
    const quote = QUOTES.find((q) => symbol.endsWith(q) && symbol.length > q.length);
    return quote ? [symbol.slice(0, -quote.length), quote] : [symbol, ""];
  }

  function cellText(col, r) {
    switch (col) {
      case "price": return price(r.price, r.pricePrecision);
      case "changePct24h": return pct(r.changePct24h);
      case "changePct1h": case "changePct4h": case "openInterestChange1h": case "openInterestChange4h":
      case "openInterestChange24h": return pct(r[col]);
      case "liquidations1h": case "liquidations4h": case "liquidations24h": return usdCompact(r[col]);
      case "nextFundingTime": return fundingIn(r.nextFundingTime);
      case "quoteVolume24h": return usdCompact(r.quoteVolume24h);
      case "fundingRate": return funding(r.fundingRate);
      case "openInterestUsd": return usdCompact(r.openInterestUsd);
      default: return r.symbol;
    }
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // ---- market table -----------------------------------------------------------------------------------------

  const tbody = document.getElementById("market-body");
  const emptyNote = document.getElementById("empty");
  const countNode = document.getElementById("symbol-count");
  const updatedNode = document.getElementById("updated");
  const rows = new Map(); // symbol → merged wire row
  const views = new Map(); // symbol → {tr, cells, shown, lastPrice}
  const dirty = new Set();
  let orderDirty = true;
  let sort = { key: "quoteVolume24h", dir: "desc" };
  let filter = "";
  let watchSymbols = null; // the chosen watchlist's symbols (Set), or null: every symbol
  let renderPending = false;
  let lastRenderAt = 0;
  let marketTime = null;

  function applyPatches(patches) {
    for (const patch of patches) {
      if (!patch || typeof patch.symbol !== "string") continue;
      const row = rows.get(patch.symbol);
      if (row === undefined) {
        if (!isNum(patch.price)) continue; // a partial patch (e.g. OI only) can't start a row
        rows.set(patch.symbol, { ...patch });
        orderDirty = true;
      } else {
        if (sort.key in patch && patch[sort.key] !== row[sort.key]) orderDirty = true;
        Object.assign(row, patch);
      }
      dirty.add(patch.symbol);
    }
    scheduleRender();
  }

  function replaceAll(fullRows) {
    const keep = new Set(fullRows.map((r) => r.symbol));
    for (const symbol of [...rows.keys()]) {
      if (!keep.has(symbol)) {
        rows.delete(symbol);
        const view = views.get(symbol);
        if (view) view.tr.remove();
        views.delete(symbol);
        orderDirty = true;
      }
    }
    applyPatches(fullRows);
  }

  function scheduleRender() {
    if (renderPending) return;
    renderPending = true;
    const wait = Math.max(0, lastRenderAt + RENDER_MS - performance.now());
    setTimeout(() => requestAnimationFrame(render), wait);
  }

  function render() {
    renderPending = false;
    lastRenderAt = performance.now();
    for (const symbol of dirty) updateRow(symbol);
    dirty.clear();
    if (orderDirty) {
      reorder();
      orderDirty = false;
    }
    countNode.textContent = String(rows.size);
    if (marketTime) {
      const text = window.MP && window.MP.formatTime
        ? window.MP.formatTime(marketTime, { date: "always", seconds: true, label: true })
        : new Date(marketTime).toISOString().slice(0, 19).replace("T", " ") + " UTC";
      updatedNode.textContent = "Market time " + text;
      updatedNode.title = "The market's clock (a replay's in the demo), not the wall clock";
    }
  }

  function createView(symbol) {
    const tr = el("tr");
    tr.dataset.symbol = symbol;
    tr.tabIndex = 0;  // keyboard: Enter opens the chart
    tr.title = "Open the chart";
    const cells = {};
    for (const col of COLUMNS) {
      const td = el("td", col === "symbol" ? "sym" : "");
      td.dataset.col = col;
      tr.appendChild(td);
      cells[col] = td;
    }
    const [base, quote] = splitSymbol(symbol);
    cells.symbol.append(base, el("span", "quote", quote));
    const view = { tr, cells, shown: { symbol }, lastPrice: null };
    views.set(symbol, view);
    decorate(view);
    return view;
  }

  function updateRow(symbol) {
    const row = rows.get(symbol);
    if (!row) return;
    const view = views.get(symbol) || createView(symbol);
    for (const col of COLUMNS) {
      const text = cellText(col, row);
      if (view.shown[col] === text) continue; // only changed cells are touched
      const td = view.cells[col];
      td.textContent = text;
      view.shown[col] = text;
      if (PCT_COLUMNS.has(col) || col === "fundingRate") td.className = signClass(row[col]);
      if (col === "price" && isNum(view.lastPrice) && isNum(row.price) && row.price !== view.lastPrice) {
        td.className = "";
        void td.offsetWidth; // restart the flash animation
        td.className = row.price > view.lastPrice ? "flash-up" : "flash-down";
      }
    }
    view.lastPrice = row.price;
  }

  function compare(a, b) {
    const x = a[sort.key], y = b[sort.key];
    const missingX = x === null || x === undefined, missingY = y === null || y === undefined;
    if (missingX || missingY) return missingX === missingY ? 0 : missingX ? 1 : -1; // blanks last either way
    const order = typeof x === "string" ? x.localeCompare(y) : x - y;
    return sort.dir === "asc" ? order : -order;
  }

  function reorder() {
    const shown = (r) => (!filter || r.symbol.includes(filter)) && (!watchSymbols || watchSymbols.has(r.symbol));
    const visible = [...rows.values()].filter(shown).sort(compare);
    const wanted = visible.map((r) => (views.get(r.symbol) || createView(r.symbol)).tr);
    const current = tbody.children;
    let same = current.length === wanted.length;
    for (let i = 0; same && i < wanted.length; i++) same = current[i] === wanted[i];
    if (!same) {
      const fragment = document.createDocumentFragment();
      fragment.append(...wanted);
      tbody.replaceChildren(fragment);
    }
    emptyNote.hidden = wanted.length > 0;
    emptyNote.textContent = rows.size ? "No symbol matches the filter." : "Waiting for market data…";
  }

  for (const th of document.querySelectorAll("#market th[data-sort]")) {
    th.tabIndex = 0;  // keyboard: Tab to a heading, Enter or Space sorts by it
    th.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        th.click();
      }
    });
    th.addEventListener("click", () => {
      const key = th.dataset.sort;
      const flipped = sort.dir === "asc" ? "desc" : "asc";
      sort = sort.key === key ? { key, dir: flipped } : { key, dir: key === "symbol" ? "asc" : "desc" };
      markSortedHeader();
      orderDirty = true;
      scheduleRender();
    });
  }

  function markSortedHeader() {
    for (const th of document.querySelectorAll("#market th[data-sort]")) {
      th.classList.toggle("sorted", th.dataset.sort === sort.key);
      th.classList.toggle("asc", th.dataset.sort === sort.key && sort.dir === "asc");
      if (th.dataset.sort === sort.key) th.setAttribute("aria-sort", sort.dir === "asc" ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    }
  }

  document.getElementById("filter").addEventListener("input", (event) => {
    filter = event.target.value.toUpperCase().replace(/[-_/:\s]/g, "");
    orderDirty = true;
    scheduleRender();
  });

  // ---- column choice and the slow columns ----------------------------------------------------------------------

  function fundingIn(t) {
    if (!isNum(t) || !marketTime) return "—";
    const left = Math.max(0, t - marketTime);
    const h = Math.floor(left / 3600e3), m = Math.floor((left % 3600e3) / 6e4);
    return `${h}h ${String(m).padStart(2, "0")}m`;
  }

  const table = document.getElementById("market");
  function chosenColumns() {
    try {
      const saved = JSON.parse(localStorage.getItem("mp.market.columns") || "null");
      if (Array.isArray(saved)) return new Set(["symbol", ...saved.filter((c) => COLUMNS.includes(c))]);
    } catch (err) { /* a broken saved choice: the defaults */ }
    return new Set(DEFAULT_COLUMNS);
  }
  function showColumns(shown) {
    for (const col of COLUMNS) table.classList.toggle("hide-" + col, !shown.has(col));
    for (const box of document.querySelectorAll("#column-picker input[data-col]")) box.checked = shown.has(box.dataset.col);
  }
  const picker = document.getElementById("column-picker");
  if (picker) {
    const list = picker.querySelector(".column-list");
    for (const th of document.querySelectorAll("#market th[data-sort]")) {
      if (th.dataset.sort === "symbol") continue;
      const label = el("label");
      const box = el("input");
      box.type = "checkbox";
      box.dataset.col = th.dataset.sort;
      box.addEventListener("change", () => {
        const shown = new Set([...picker.querySelectorAll("input[data-col]:checked")].map((b) => b.dataset.col));
        localStorage.setItem("mp.market.columns", JSON.stringify([...shown]));
        showColumns(new Set(["symbol", ...shown]));
      });
      label.append(box, " " + th.textContent.trim());
      list.append(label);
    }
  }
  showColumns(chosenColumns());

  // Sort choice is remembered too.
  try {
    const saved = JSON.parse(localStorage.getItem("mp.market.sort") || "null");
    if (saved && COLUMNS.includes(saved.key) && (saved.dir === "asc" || saved.dir === "desc")) sort = saved;
  } catch (err) { /* the default order */ }
  for (const th of document.querySelectorAll("#market th[data-sort]")) {
    th.addEventListener("click", () => localStorage.setItem("mp.market.sort", JSON.stringify(sort)));
  }

  const SLOW_KEYS = COLUMNS.filter((c) => PCT_COLUMNS.has(c) && c !== "changePct24h")
    .concat(["nextFundingTime", "liquidations1h", "liquidations4h", "liquidations24h"]);
  async function loadSlowColumns() {
    try {
      const response = await fetch("/api/v1/market/data", { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const body = await response.json();
      applyPatches((body.data || []).filter((r) => rows.has(r.symbol)).map((r) => {
        const patch = { symbol: r.symbol };
        for (const key of SLOW_KEYS) if (key in r) patch[key] = r[key];
        return patch;
      }));
    } catch (err) {
      console.warn("could not load the change columns", err);
    }
  }

  function onMarket(payload) {
    if (!payload || !Array.isArray(payload.rows)) return;
    if (payload.time) {
      const firstTime = marketTime === null;
      marketTime = payload.time;
      if (firstTime) refreshAlertTimes(); // "today" is the market's: alerts loaded before it drop their date
    }
    if (payload.full) replaceAll(payload.rows);
    else applyPatches(payload.rows);
  }

  // ---- watchlists and subscriptions (signed-in users only) ----------------------------------------------------

  const account = { user: null, lists: [], subscribed: new Set(), everything: false };
  const watchTools = document.getElementById("watchlist-tools");
  const watchFilter = document.getElementById("watchlist-filter");
  const watchTarget = document.getElementById("watchlist-target");

  const targetList = () => account.lists.find((w) => w.id === watchTarget.value) || null;

  // The row's star (in the target watchlist or not) and its subscription mark; nothing for anonymous visitors.
  function decorate(view) {
    if (!account.user) return;
    const symbol = view.tr.dataset.symbol;
    const cell = view.cells.symbol;
    let star = cell.querySelector(".wl-star");
    if (!star) {
      star = el("button", "wl-star");
      star.type = "button";
      star.addEventListener("click", () => toggleSymbol(symbol));
      cell.prepend(star);
    }
    const list = targetList();
    const inList = Boolean(list && list.symbols.includes(symbol));
    star.textContent = inList ? "★" : "☆";
    star.setAttribute("aria-pressed", String(inList));
    star.title = !list ? "Create a watchlist first (+ List)" : (inList ? "Remove from " : "Add to ") + list.name;
    const subscribed = account.everything || account.subscribed.has(symbol);
    const mark = cell.querySelector(".sub-mark");
    if (subscribed && !mark) {
      const bell = el("span", "sub-mark", "🔔");
      bell.title = "You get volume alerts for this symbol";
      cell.append(bell);
    } else if (!subscribed && mark) {
      mark.remove();
    }
    view.tr.classList.toggle("subscribed", subscribed);
  }

  function redecorate() {
    for (const view of views.values()) decorate(view);
  }

  function applyWatchFilter() {
    const list = account.lists.find((w) => w.id === watchFilter.value);
    watchSymbols = list ? new Set(list.symbols) : null;
    orderDirty = true;
    scheduleRender();
  }

  function fillWatchSelects() {
    const keepFilter = watchFilter.value, keepTarget = watchTarget.value;
    const has = (id) => account.lists.some((w) => w.id === id);
    watchFilter.replaceChildren(new Option("All symbols", ""),
      ...account.lists.map((w) => new Option(`${w.name} (${w.symbols.length})`, w.id)));
    watchTarget.replaceChildren(...account.lists.map((w) => new Option(w.name, w.id)));
    watchFilter.value = has(keepFilter) ? keepFilter : "";
    if (has(keepTarget)) watchTarget.value = keepTarget;
    watchTarget.disabled = account.lists.length === 0;
  }

  function listsChanged() {
    fillWatchSelects();
    applyWatchFilter();
    redecorate();
  }

  async function loadWatchlists() {
    const answer = await window.MP.api("GET", "/api/v1/watchlist");
    if (!answer.ok) return;
    account.lists = answer.data.data;
    listsChanged();
  }

  async function loadSubscriptions() {
    // Subscriptions are for pro and up: a free plan's 403 simply means no marks.
    const answer = await window.MP.api("GET", "/api/v1/volume-alerts/subscriptions");
    account.subscribed = new Set(answer.ok ? answer.data.data.map((sub) => sub.symbol) : []);
    account.everything = account.subscribed.has("*");
    redecorate();
  }

  async function toggleSymbol(symbol) {
    const list = targetList();
    if (!list) return;
    const path = `/api/v1/watchlist/${encodeURIComponent(list.id)}/items`;
    const answer = list.symbols.includes(symbol)
      ? await window.MP.api("DELETE", `${path}?symbol=${encodeURIComponent(symbol)}`)
      : await window.MP.api("POST", path, { symbol });
    if (!answer.ok) {
      window.alert(window.MP.errorText(answer));
      return;
    }
    account.lists = account.lists.map((w) => (w.id === answer.data.id ? answer.data : w));
    listsChanged();
  }

  watchFilter.addEventListener("change", () => {
    if (watchFilter.value) watchTarget.value = watchFilter.value; // the stars edit the list being looked at
    applyWatchFilter();
    redecorate();
  });
  watchTarget.addEventListener("change", redecorate);
  document.getElementById("watchlist-new").addEventListener("click", async () => {
    const name = window.prompt("Name of the new watchlist");
    if (!name) return;
    const answer = await window.MP.api("POST", "/api/v1/watchlist", { name });
    if (!answer.ok) {
      window.alert(window.MP.errorText(answer));
      return;
    }
    account.lists.push(answer.data);
    fillWatchSelects();
    watchTarget.value = answer.data.id;
    redecorate();
  });

  async function startAccount() {
    const user = window.MP ? await window.MP.me() : null;
    if (!user) return;
    account.user = user;
    watchTools.hidden = false;
    await Promise.all([loadWatchlists(), loadSubscriptions()]);
  }

  // ---- volume alerts ----------------------------------------------------------------------------------------
  // Grouped by spike: a SPIKE card heads its symbol-hour, and that hour's HALF/FULL updates are listed under it,
  // so hourly updates never push a newer spike down. Groups are ordered by the spike's time, newest first. The
  // count is every stored alert (GET /api/v1/volume-alerts/count, plus live ones), not how many are loaded.
  // Times are market time (the replay's in the demo), with the date when it isn't the market's today.

  const alertList = document.getElementById("alerts");
  const alertsEmpty = document.getElementById("alerts-empty");
  const alertCount = document.getElementById("alert-count");
  const alertFilter = document.getElementById("alert-filter");
  const soundToggle = document.getElementById("alert-sound");
  const notifyToggle = document.getElementById("alert-notify");
  const seenAlerts = new Set();
  const groups = new Map(); // symbol|hour → {key, ts, spike, updates: [], node}
  const MAX_GROUPS = 100;
  let totalAlerts = null; // from the count endpoint; live alerts add to it
  let loadedAlerts = 0;

  const TYPE_HELP = {
    SPIKE: "SPIKE: this hour's volume so far is at least the threshold multiple of the whole previous hour's " +
      "(checked every 5 minutes).",
    HALF_UPDATE: "HALF: the spike hour's volume at half past (for spikes raised in the hour's first 20 minutes).",
    FULL_UPDATE: "FULL: the spike hour's complete volume, when the hour closed.",
  };
  const TYPE_SHORT = { SPIKE: "SPIKE", HALF_UPDATE: "HALF", FULL_UPDATE: "FULL" };

  function epochMs(t) {
    if (isNum(t)) return t;
    if (typeof t === "string") return /^\d+$/.test(t) ? Number(t) : Date.parse(t);
    return NaN;
  }

  function marketTimeText(ts) {
    if (!isNum(ts)) return "";
    if (window.MP && window.MP.formatTime) {
      return window.MP.formatTime(ts, { seconds: true, now: marketTime || Date.now() });
    }
    return new Date(ts).toISOString().slice(11, 19);
  }

  function typeBadge(kind) {
    const badge = el("span", "alert-type", TYPE_SHORT[kind] || kind.replace("_", " "));
    badge.title = TYPE_HELP[kind] || "";
    badge.tabIndex = 0; // the explanation is reachable from the keyboard too (focus shows the title)
    badge.setAttribute("aria-label", TYPE_HELP[kind] || kind);
    return badge;
  }

  function timeNode(ts) {
    const time = el("time", "alert-time", marketTimeText(ts));
    if (isNum(ts)) {
      time.dateTime = new Date(ts).toISOString();
      time.dataset.ts = String(ts);
      time.title = "Market time";
    }
    return time;
  }

  function alertCard(a) {
    const direction = String(a.candleDirection || "").toLowerCase() === "bullish" ? "bullish" : "bearish";
    const card = el("article", "alert-card " + direction);
    card.dataset.symbol = a.symbol || "";
    card.tabIndex = 0;
    card.dataset.direction = direction;
    card.dataset.type = a.alertType || "SPIKE";
    const ts = epochMs(a.timestamp);
    card.dataset.ts = String(isNum(ts) ? ts : 0);

    const head = el("div", "alert-head");
    const asset = a.asset || splitSymbol(a.symbol || "")[0];
    head.append(el("span", "alert-symbol", asset), typeBadge(a.alertType || "SPIKE"), timeNode(ts));

    const vols = el("div", "alert-vols");
    const line = (label, value) => {
      const div = el("div");
      div.append(el("span", "k", label + " "), usdCompact(value));
      return div;
    };
    vols.append(line("This hour:", a.currentVolume), line("Last hour:", a.previousVolume));

    const foot = el("div", "alert-foot");
    foot.append(
      el("span", "alert-ratio", isNum(a.volumeRatio) ? a.volumeRatio.toFixed(2) + "×" : "—"),
      el("span", "alert-dir", direction === "bullish" ? "▲ Bullish" : "▼ Bearish"),
    );
    if (isNum(a.price)) foot.append(el("span", "", "$" + price(a.price, rows.get(a.symbol)?.pricePrecision)));
    if (isNum(a.fundingRate)) foot.append(el("span", "", "funding " + funding(a.fundingRate)));
    card.append(head, vols, foot);
    if (a.message) card.title = a.message;
    return card;
  }

  // An update under its spike: one line (type, time, the hour's volume, the ratio).
  function updateLine(a) {
    const li = el("li", "alert-update");
    li.dataset.type = a.alertType;
    li.dataset.symbol = a.symbol || "";
    const ts = epochMs(a.timestamp);
    li.dataset.ts = String(isNum(ts) ? ts : 0);
    li.append(typeBadge(a.alertType), el("span", "k", "hour so far "), usdCompact(a.currentVolume),
      el("span", "alert-ratio", isNum(a.volumeRatio) ? " " + a.volumeRatio.toFixed(2) + "×" : ""), timeNode(ts));
    if (a.alertType === "FULL_UPDATE") li.childNodes[1].textContent = "whole hour ";
    if (a.message) li.title = a.message;
    return li;
  }

  function groupKey(a) {
    const hour = epochMs(a.hourTimestamp);
    const ts = epochMs(a.timestamp);
    return (a.symbol || "") + "|" + (isNum(hour) ? hour : isNum(ts) ? ts - (ts % 3600000) : "");
  }

  function renderGroup(g) {
    const node = g.node || el("section", "alert-group");
    g.node = node;
    node.dataset.key = g.key;
    node.dataset.ts = String(g.ts);
    node.dataset.kind = g.spike ? "spike" : "updates";
    node.dataset.symbol = g.symbol;
    const newest = [...g.updates].sort((a, b) => epochMs(b.timestamp) - epochMs(a.timestamp));
    const headAlert = g.spike || newest[0];
    const card = alertCard(headAlert);
    const parts = [card];
    const rest = g.spike ? newest : newest.slice(1);
    if (rest.length) {
      const list = el("ul", "alert-updates");
      list.setAttribute("aria-label", "Updates of this spike");
      list.append(...rest.map(updateLine));
      parts.push(list);
    }
    node.replaceChildren(...parts);
    return node;
  }

  function placeGroup(g) {
    const node = renderGroup(g);
    // Newest spike first: before the first group whose time is older (an update keeps its spike's place).
    const older = [...alertList.children].find((c) => c !== node && Number(c.dataset.ts) < g.ts);
    if (older) {
      if (node.nextSibling !== older) alertList.insertBefore(node, older);
    } else if (node.parentNode !== alertList || node.nextSibling) {
      alertList.append(node);
    }
    while (alertList.children.length > MAX_GROUPS) {
      const last = alertList.lastElementChild;
      groups.delete(last.dataset.key);
      last.remove();
    }
  }

  function addAlert(a, live) {
    if (!a || typeof a !== "object") return;
    const key = a.id || [a.symbol, a.alertType, a.hourTimestamp, a.timestamp].join("|");
    if (seenAlerts.has(key)) return; // the initial fetch and the live event may both carry one alert
    seenAlerts.add(key);
    const gk = groupKey(a);
    let g = groups.get(gk);
    if (!g) {
      g = { key: gk, symbol: a.symbol || "", ts: epochMs(a.timestamp), spike: null, updates: [], node: null };
      groups.set(gk, g);
    }
    const ts = epochMs(a.timestamp);
    if ((a.alertType || "SPIKE") === "SPIKE") {
      g.spike = a;
      g.ts = ts; // a group is placed at its spike's time
    } else {
      g.updates.push(a);
      if (!g.spike) g.ts = Math.min(g.ts, ts);
    }
    placeGroup(g);
    alertsEmpty.hidden = true;
    if (live) {
      if (totalAlerts !== null) totalAlerts += 1;
      announce(a);
    } else {
      loadedAlerts += 1;
    }
    showCount();
    applyAlertFilter();
  }

  function showCount() {
    const loaded = seenAlerts.size;
    const total = totalAlerts === null ? loaded : Math.max(totalAlerts, loaded);
    alertCount.textContent = total.toLocaleString("en-US");
    alertCount.dataset.total = String(total);
    alertCount.title = `${total.toLocaleString("en-US")} alerts stored; the newest ${loaded} are shown here`;
  }

  async function loadAlertCount() {
    try {
      const response = await fetch("/api/v1/volume-alerts/count", { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const body = await response.json();
      if (isNum(body.total)) totalAlerts = body.total + Math.max(0, seenAlerts.size - loadedAlerts);
      showCount();
    } catch (err) {
      console.warn("could not count alerts", err);
    }
  }

  // "All" shows every group; "Spikes" hides the groups made of updates only and the update lines.
  function applyAlertFilter() {
    const spikesOnly = alertFilter && alertFilter.value === "spikes";
    alertList.classList.toggle("spikes-only", Boolean(spikesOnly));
  }
  if (alertFilter) {
    alertFilter.value = localStorage.getItem("mp.alerts.filter") === "spikes" ? "spikes" : "all";
    alertFilter.addEventListener("change", () => {
      localStorage.setItem("mp.alerts.filter", alertFilter.value);
      applyAlertFilter();
    });
  }

  // ---- optional sound and browser notification for new (live) alerts -----------------------------------------

  function remembered(toggle, key) {
    if (!toggle) return;
    toggle.checked = localStorage.getItem(key) === "on";
    toggle.addEventListener("change", async () => {
      if (toggle === notifyToggle && toggle.checked && "Notification" in window &&
          Notification.permission !== "granted") {
        const answer = await Notification.requestPermission();
        if (answer !== "granted") toggle.checked = false;
      }
      localStorage.setItem(key, toggle.checked ? "on" : "off");
    });
  }
  remembered(soundToggle, "mp.alerts.sound");
  remembered(notifyToggle, "mp.alerts.notify");

  let audio = null;
  function beep(up) {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = up ? 880 : 440;
      gain.gain.setValueAtTime(0.12, audio.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.35);
      osc.connect(gain).connect(audio.destination);
      osc.start();
      osc.stop(audio.currentTime + 0.35);
      alertList.dataset.sounds = String(Number(alertList.dataset.sounds || 0) + 1);
    } catch (err) {
      console.warn("no sound", err);
    }
  }

  function announce(a) {
    if ((a.alertType || "SPIKE") !== "SPIKE") return; // updates are quiet: only new spikes ring
    const up = String(a.candleDirection).toLowerCase() === "bullish";
    if (soundToggle && soundToggle.checked) beep(up);
    if (notifyToggle && notifyToggle.checked && "Notification" in window && Notification.permission === "granted") {
      const ratio = isNum(a.volumeRatio) ? a.volumeRatio.toFixed(2) + "× " : "";
      const n = new Notification(`${a.symbol} volume spike ${ratio}${up ? "▲" : "▼"}`, {
        body: a.message || "", tag: groupKey(a) });
      n.onclick = () => { window.focus(); location.assign("/market/" + encodeURIComponent(a.symbol)); };
      alertList.dataset.notified = String(Number(alertList.dataset.notified || 0) + 1);
    }
  }

  // Times follow the nav's UTC/local switch.
  function refreshAlertTimes() {
    for (const t of alertList.querySelectorAll("time[data-ts]")) t.textContent = marketTimeText(Number(t.dataset.ts));
  }
  document.addEventListener("mp:zone", () => {
    refreshAlertTimes();
    render();
  });

  async function loadRecentAlerts() {
    try {
      const response = await fetch(boot.alertsUrl, { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const body = await response.json();
      const list = Array.isArray(body) ? body : body.data || body.alerts || [];
      list.forEach((a) => addAlert(a, false));
    } catch (err) {
      console.warn("could not load recent alerts", err);
    }
    loadAlertCount();
  }

  // ---- open-interest freshness: the column is kept, but flagged once the server says it is old ---------------

  const oiHeader = document.querySelector("th[data-sort=openInterestUsd]");
  async function checkOpenInterestFreshness() {
    try {
      const response = await fetch("/api/v1/market/open-interest");
      if (!response.ok) return;
      const oi = await response.json();
      const hasData = oi.data && Object.keys(oi.data).length > 0;
      const state = !hasData ? "" : oi.dangerouslyStale ? "very-stale" : oi.stale ? "stale" : "";
      oiHeader.dataset.freshness = state;
      oiHeader.title = state ? "Open interest last refreshed " + (oi.asOf ? new Date(oi.asOf).toISOString() : "?") : "";
    } catch (err) {
      console.warn("could not check open interest", err);
    }
  }

  // ---- plan and tier: name, open-interest column, countdown to the next alert batch ---------------------------

  const planNode = document.getElementById("plan-name");
  const countdownNode = document.getElementById("batch-countdown");
  let tier = null;
  let clockOffset = 0; // server time − this browser's: boundaries are the server's wall clock

  function setTier(info) {
    if (!info || typeof info !== "object") return;
    tier = info;
    if (isNum(info.serverTime)) clockOffset = info.serverTime - Date.now();
    planNode.textContent = info.planTitle || info.plan || "";
    planNode.dataset.plan = info.plan || "";
    planNode.dataset.tier = info.tier || "";
    oiHeader.classList.toggle("locked", info.openInterest === false);
    oiHeader.title = info.openInterest === false ? "Open interest: Pro plan and up" : oiHeader.title;
    renderCountdown();
  }

  function twoDigits(n) {
    return String(n).padStart(2, "0");
  }

  function renderCountdown() {
    if (!tier) return;
    const period = tier.alertBatchMs;
    if (!isNum(period) || period <= 0) {
      countdownNode.textContent = "Alerts: instant";
      countdownNode.dataset.nextAt = "";
      return;
    }
    const now = Date.now() + clockOffset;
    const next = now - (now % period) + period;
    const left = Math.max(0, Math.ceil((next - now) / 1000));
    countdownNode.textContent = "Next alerts in " + Math.floor(left / 60) + ":" + twoDigits(left % 60);
    countdownNode.dataset.nextAt = String(next);
  }

  function onAlertBatch(batch) {
    if (!batch || !Array.isArray(batch.alerts)) return;
    batch.alerts.forEach((a) => addAlert(a, true));
  }

  // ---- connection -------------------------------------------------------------------------------------------

  const conn = document.getElementById("conn-status");
  function setConnection(state, detail) {
    conn.dataset.state = state;
    conn.querySelector(".label").textContent = state;
    conn.title = detail || "Live connection: " + state;
  }

  // A row or an alert card opens the symbol's chart page (not when the click was on a control inside it).
  function openSymbol(event) {
    if (event.target.closest("button, a, input, select")) return;
    const holder = event.target.closest("[data-symbol]");
    if (holder && holder.dataset.symbol) location.assign("/market/" + encodeURIComponent(holder.dataset.symbol));
  }
  for (const id of ["market-body", "alerts"]) {
    const box = document.getElementById(id);
    box.addEventListener("click", openSymbol);
    box.addEventListener("keydown", (event) => { if (event.key === "Enter") openSymbol(event); });
  }

  // ---- the live liquidation feed -----------------------------------------------------------------------------

  const MAX_LIQUIDATIONS = 80;
  const BIG_LIQUIDATION_USD = 100000;
  const liqList = document.getElementById("liquidations");
  const liqEmpty = document.getElementById("liquidations-empty");
  const liqTotal = document.getElementById("liq-total");
  const seenLiquidations = new Set();
  const liqTime = new Intl.DateTimeFormat(undefined, {
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZone: "UTC",
  });

  function liquidationItem(l) {
    const item = el("li", l.side === "short" ? "short" : "long");
    if (l.usd >= BIG_LIQUIDATION_USD) item.classList.add("big");
    item.dataset.symbol = l.symbol;
    item.dataset.time = String(l.time);
    item.dataset.usd = String(l.usd);
    item.tabIndex = 0;
    const when = el("time", "liq-time", liqTime.format(new Date(l.time)));
    when.dateTime = new Date(l.time).toISOString();
    when.title = new Date(l.time).toISOString().replace("T", " ").slice(0, 19) + " UTC (market time)";
    item.append(when, el("span", "liq-symbol", splitSymbol(l.symbol)[0]),
      el("span", "liq-side", l.side === "short" ? "SHORT" : "LONG"), el("span", "liq-usd", usdCompact(l.usd)));
    item.title = `${l.symbol} ${l.side} liquidated: ${l.quantity} @ ${price(l.price, rows.get(l.symbol)?.pricePrecision)}`;
    return item;
  }

  function addLiquidations(list) {
    for (const l of list || []) {
      if (!l || !isNum(l.usd) || !isNum(l.time)) continue;
      const key = [l.symbol, l.time, l.side, l.price, l.quantity].join("|");
      if (seenLiquidations.has(key)) continue;
      seenLiquidations.add(key);
      const item = liquidationItem(l);
      const older = [...liqList.children].find((c) => Number(c.dataset.time) < l.time);
      liqList.insertBefore(item, older || null);
    }
    while (liqList.children.length > MAX_LIQUIDATIONS) liqList.lastElementChild.remove();
    liqEmpty.hidden = liqList.children.length > 0;
    const total = [...liqList.children].reduce((sum, c) => sum + Number(c.dataset.usd), 0);
    liqTotal.textContent = usdCompact(total);
  }

  async function loadLiquidations() {
    try {
      const response = await fetch(`/api/v1/market/liquidations?limit=${MAX_LIQUIDATIONS}`,
        { headers: { Accept: "application/json" } });
      if (response.ok) addLiquidations((await response.json()).data);
    } catch (err) {
      console.warn("could not load liquidations", err);
    }
  }
  liqList.addEventListener("click", openSymbol);
  liqList.addEventListener("keydown", (event) => { if (event.key === "Enter") openSymbol(event); });

  function connect() {
    if (typeof io !== "function") {
      setConnection("offline", "Socket.IO client missing: run `npm ci` in the repository root");
      return;
    }
    const socket = io({ transports: ["websocket", "polling"], reconnectionDelay: 1000, reconnectionDelayMax: 30000 });
    socket.on("connect", () => setConnection("connected"));
    socket.on("disconnect", (reason) => setConnection(reason === "io client disconnect" ? "offline" : "reconnecting"));
    socket.on("connect_error", () => setConnection(navigator.onLine ? "reconnecting" : "offline"));
    socket.io.on("reconnect_attempt", () => setConnection(navigator.onLine ? "reconnecting" : "offline"));
    socket.io.on("reconnect_failed", () => setConnection("offline"));
    socket.on("market", onMarket);
    socket.on("volume-alert", (a) => addAlert(a, true));
    socket.on("volume-alerts", onAlertBatch);
    socket.on("tier", setTier);
    socket.on("liquidations", (batch) => addLiquidations(batch && batch.liquidations));
    window.addEventListener("offline", () => setConnection("offline"));
  }

  markSortedHeader();
  setTier(boot.tier);
  setInterval(renderCountdown, 1000);
  applyPatches(boot.rows || []);
  loadRecentAlerts();
  loadLiquidations();
  loadSlowColumns();
  setInterval(loadSlowColumns, SLOW_COLUMNS_MS);
  startAccount();
  connect();
  checkOpenInterestFreshness();
  setInterval(checkOpenInterestFreshness, boot.openInterestCheckMs || 60000);
})();
