// /signals: every active signal config with its recent signals and last year's backtest (trades, win rate,
// return); subscribe with the channels you choose (your destinations; "in-app" is made for you if you have none),
// change or drop a subscription; the history of the signals of the configs you follow. Signed-out visitors go to
// sign in. Text goes in through textContent only.
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const api = (...args) => window.MP.api(...args);
  const items = (data, key) => (Array.isArray(data) ? data : (data && (data.data || data[key])) || []);
  const when = (ms) => (ms ? new Date(ms).toISOString().slice(0, 16).replace("T", " ") : "—");
  const state = { configs: [], subs: [], destinations: [] };

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  const say = (text, kind) => window.MP.say("signals-msg", text, kind);
  const pct = (v) => (v === null || v === undefined ? "—" : `${(100 * v).toFixed(1)}%`);
  const configName = (c) => (c ? `${c.strategy} ${c.symbol} ${c.timeframe}` : "a config");

  async function loadAll() {
    const [configs, subs, dests] = await Promise.all([
      api("GET", "/api/v1/signals/configs"), api("GET", "/api/v1/signals/subscriptions"),
      api("GET", "/api/v1/account/destinations")]);
    if (configs.status === 401) return window.MP.signIn();
    if (!configs.ok) return say(window.MP.errorText(configs));
    state.configs = items(configs.data, "configs");
    state.subs = subs.ok ? items(subs.data, "subscriptions") : [];
    state.destinations = dests.ok ? items(dests.data, "destinations").filter((d) => d.state === "verified") : [];
    drawCards();
    await loadHistory();
    for (const config of state.configs) await loadBacktest(config);  // one at a time: each is a year of candles
  }

  function channelLabel(d) {
    return d.channel === "in_app" ? "in-app" : `${d.channel}: ${d.address}`;
  }

  function channelChoices(config, sub) {
    const box = el("div", null, "checks");
    box.dataset.channels = config.id;
    const chosen = new Set(sub ? sub.channels : []);
    const hasInApp = state.destinations.some((d) => d.channel === "in_app");
    const options = state.destinations.map((d) => [d.id, channelLabel(d)]);
    if (!hasInApp) options.unshift(["new:in_app", "in-app"]);
    options.forEach(([id, label], i) => {
      const wrap = el("label");
      const input = el("input");
      input.type = "checkbox";
      input.value = id;
      input.checked = sub ? chosen.has(id) : i === 0;
      wrap.append(input, label);
      box.append(wrap);
    });
    return box;
  }

  async function chosenChannels(config) {
    const ids = [...document.querySelectorAll(`[data-channels="${CSS.escape(config.id)}"] input:checked`)]
      .map((i) => i.value);
    const out = [];
    for (const id of ids) {
      if (id !== "new:in_app") { out.push(id); continue; }
      const made = await api("POST", "/api/v1/account/destinations", { channel: "in_app", address: "" });
      if (!made.ok) throw new Error(window.MP.errorText(made));
      state.destinations.push(made.data);
      out.push(made.data.id);
    }
    return out;
  }

  function drawCards() {
    const box = $("signal-cards");
    if (!state.configs.length) {
      box.replaceChildren(el("p", "No signal configs yet: an administrator adds them in the admin console.", "muted"));
      return;
    }
    box.replaceChildren(...state.configs.map((c) => {
      const sub = state.subs.find((s) => s.config_id === c.id);
      const card = el("article", null, "signal-card" + (sub ? " subscribed" : ""));
      card.dataset.configId = c.id;
      card.append(el("h3", configName(c)),
                  el("div", Object.entries(c.parameters).map(([k, v]) => `${k}=${v}`).join(" "), "params"),
                  el("div", c.computed ? "computed live by the platform" : "from TradingView alerts", "muted"));
      const backtest = el("dl", null, "facts backtest");
      backtest.dataset.backtest = c.id;
      backtest.append(el("dt", "last year"), el("dd", "backtesting…", "muted"));
      card.append(backtest);
      const recent = el("ul", null, "recent");
      const signals = c.recent_signals || [];
      if (!signals.length) recent.append(el("li", "No signals yet.", "muted"));
      for (const s of signals.slice(0, 5)) {
        const li = el("li");
        li.append(el("span", s.action.toUpperCase(), s.action), ` ${when(s.bar_time)}` +
                  (s.price !== null ? ` at ${s.price}` : "") + (s.status === "stale" ? " (stale)" : ""));
        recent.append(li);
      }
      card.append(el("h3", "Recent signals"), recent, channelChoices(c, sub));
      const actions = el("div", null, "inline");
      const button = el("button", sub ? "Save channels" : "Subscribe", "btn");
      button.type = "button";
      button.dataset.action = sub ? "update" : "subscribe";
      button.addEventListener("click", () => (sub ? update(c, sub) : subscribe(c)));
      actions.append(button);
      if (sub) {
        const drop = el("button", "Unsubscribe", "btn secondary");
        drop.type = "button";
        drop.dataset.action = "unsubscribe";
        drop.addEventListener("click", () => unsubscribe(c, sub));
        actions.append(drop);
      }
      card.append(actions);
      return card;
    }));
  }

  async function subscribe(config) {
    let channels;
    try { channels = await chosenChannels(config); } catch (e) { return say(e.message); }
    if (!channels.length) return say("Choose at least one channel.");
    const answer = await api("POST", "/api/v1/signals/subscriptions", { config_id: config.id, channels });
    if (!answer.ok) return say(window.MP.errorText(answer));
    say(`Subscribed to ${configName(config)}.`, "ok");
    await refresh();
  }

  async function update(config, sub) {
    let channels;
    try { channels = await chosenChannels(config); } catch (e) { return say(e.message); }
    if (!channels.length) return say("Choose at least one channel, or unsubscribe.");
    const answer = await api("PATCH", `/api/v1/signals/subscriptions/${encodeURIComponent(sub.id)}`, { channels });
    if (!answer.ok) return say(window.MP.errorText(answer));
    say(`Channels saved for ${configName(config)}.`, "ok");
    await refresh();
  }

  async function unsubscribe(config, sub) {
    const answer = await api("DELETE", `/api/v1/signals/subscriptions/${encodeURIComponent(sub.id)}`);
    if (!answer.ok) return say(window.MP.errorText(answer));
    say(`Unsubscribed from ${configName(config)}.`, "ok");
    await refresh();
  }

  async function refresh() {
    const subs = await api("GET", "/api/v1/signals/subscriptions");
    state.subs = subs.ok ? items(subs.data, "subscriptions") : [];
    drawCards();
    await loadHistory();
    for (const config of state.configs) await loadBacktest(config);
  }

  const backtests = new Map();  // config id → the answer (a year's backtest does not change while the page is open)

  async function loadBacktest(config) {
    if (!backtests.has(config.id)) {
      backtests.set(config.id, await api("GET", `/api/v1/signals/configs/${encodeURIComponent(config.id)}/backtest`));
    }
    const answer = backtests.get(config.id);
    const dl = document.querySelector(`[data-backtest="${CSS.escape(config.id)}"]`);
    if (!dl) return;
    if (!answer.ok) {
      dl.replaceChildren(el("dt", "last year"), el("dd", answer.status === 404 ? "no candles to backtest" :
        window.MP.errorText(answer), "muted"));
      return;
    }
    const b = answer.data;
    dl.replaceChildren(...[["trades", b.trades], ["win rate", pct(b.win_rate)], ["return", pct(b.total_return)],
                           ["period", `${when(b.start).slice(0, 10)} → ${when(b.end).slice(0, 10)}`]]
      .flatMap(([k, v]) => {
        const dd = el("dd", v);
        dd.dataset.figure = k;
        return [el("dt", k), dd];
      }));
  }

  async function loadHistory() {
    const answer = await api("GET", "/api/v1/signals/history?limit=100");
    const rows = answer.ok ? items(answer.data, "signals") : [];
    $("signal-history-empty").hidden = rows.length > 0;
    $("signal-history").tBodies[0].replaceChildren(...rows.map((s) => {
      const tr = el("tr");
      const config = state.configs.find((c) => c.id === s.config_id);
      for (const [text, cls] of [[when(s.bar_time)], [config ? configName(config) : `${s.symbol} ${s.timeframe}`],
                                 [s.action.toUpperCase(), s.action], [s.price === null ? "—" : s.price], [s.source],
                                 [s.status]]) {
        tr.append(el("td", text, cls));
      }
      return tr;
    }));
  }

  document.addEventListener("DOMContentLoaded", loadAll);
})();
