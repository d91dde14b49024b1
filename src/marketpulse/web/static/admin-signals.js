// The admin console's Signals tab: signal configs (create, edit, delete; UT Bot and every built-in strategy, their
// parameters from GET /api/v1/signals/strategies), a config's webhook URL and Pine script with copy buttons, token
// rotation, its figures, the live queue (refreshed while the tab shows) and the malformed-payload review list.
// admin.js owns sign-in and the tabs; it announces a shown tab with the `admin-tab` event.
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const api = (...args) => window.MP.api(...args);
  const explain = (answer) => window.MP.errorText(answer);
  const CONFIGS = "/api/v1/admin/signal-configs";
  const QUEUE_EVERY_MS = 5000;
  const when = (ms) => (ms ? new Date(ms).toISOString().slice(0, 19).replace("T", " ") : "—");
  const items = (data, key) => (Array.isArray(data) ? data : (data && (data.data || data[key])) || []);

  const state = { strategies: [], configs: [], selected: null, editing: null, timer: null };

  function say(text, bad) {
    const message = $("message");
    message.textContent = text;
    message.classList.toggle("bad", Boolean(bad));
    message.hidden = !text;
  }

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  const paramText = (params) => Object.entries(params || {}).map(([k, v]) => `${k}=${v}`).join(" ");

  // ---- strategies and the form ----------------------------------------------------------------------------------

  async function loadStrategies() {
    if (state.strategies.length) return;
    const answer = await api("GET", "/api/v1/signals/strategies");
    if (!answer.ok) return say(explain(answer), true);
    state.strategies = items(answer.data, "strategies");
    $("signal-form").strategy.replaceChildren(...state.strategies.map((s) => el("option", s.name)));
  }

  function paramInputs(strategyName, values) {
    const spec = state.strategies.find((s) => s.name === strategyName);
    $("signal-strategy-help").textContent = spec ? spec.description : "";
    $("signal-params").replaceChildren(...(spec ? spec.params : []).map((p) => {
      const label = el("label", p.name + " ");
      label.title = p.help || "";
      const given = values && values[p.name] !== undefined ? values[p.name] : p.default;
      let input;
      if (p.choices) {
        input = el("select");
        input.append(...p.choices.map((c) => el("option", c)));
        input.value = String(given);
      } else if (p.kind === "bool") {
        input = el("input");
        input.type = "checkbox";
        input.checked = Boolean(given);
      } else {
        input = el("input");
        input.type = p.kind === "str" ? "text" : "number";
        if (p.kind === "float") input.step = "any";
        if (p.low !== null) input.min = String(p.low);
        if (p.high !== null) input.max = String(p.high);
        input.value = String(given);
        input.size = 6;
      }
      input.name = "param-" + p.name;
      input.dataset.param = p.name;
      input.dataset.kind = p.kind;
      label.append(input);
      return label;
    }));
  }

  function formParams() {
    const out = {};
    for (const input of $("signal-params").querySelectorAll("[data-param]")) {
      const kind = input.dataset.kind;
      if (kind === "bool") out[input.dataset.param] = input.checked;
      else if (kind === "int" || kind === "float") out[input.dataset.param] = input.value === "" ? null : Number(input.value);
      else out[input.dataset.param] = input.value;
    }
    return out;
  }

  function openForm(config) {
    const form = $("signal-form");
    state.editing = config ? config.id : null;
    $("signal-form-title").textContent = config ? `Edit ${config.strategy} ${config.symbol} ${config.timeframe}`
      : "New signal config";
    $("signal-save").textContent = config ? "Save changes" : "Create";
    form.symbol.value = config ? config.symbol : "";
    form.timeframe.value = config ? config.timeframe : "1h";
    form.strategy.value = config ? config.strategy : (state.strategies.some((s) => s.name === "ut_bot") ? "ut_bot"
      : form.strategy.value);
    form.active.checked = config ? config.active : true;
    form.computed.checked = config ? config.computed : false;
    paramInputs(form.strategy.value, config ? config.parameters : null);
    form.hidden = false;
    form.symbol.focus();
  }

  $("signal-form").strategy.addEventListener("change", (event) => paramInputs(event.target.value, null));
  $("signal-new").addEventListener("click", async () => { await loadStrategies(); openForm(null); });
  $("signal-cancel").addEventListener("click", () => { $("signal-form").hidden = true; });

  $("signal-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const body = { symbol: form.symbol.value.trim(), timeframe: form.timeframe.value, strategy: form.strategy.value,
                   active: form.active.checked, computed: form.computed.checked, ...formParams() };
    const answer = state.editing
      ? await api("PATCH", `${CONFIGS}/${encodeURIComponent(state.editing)}`, body)
      : await api("POST", CONFIGS, body);
    if (!answer.ok) return say(explain(answer), true);
    say(state.editing ? "Config saved." : `Config created: ${answer.data.strategy} ${answer.data.symbol} ` +
        `${answer.data.timeframe}. Paste its webhook URL and Pine script into TradingView.`);
    form.hidden = true;
    state.selected = answer.data.id;
    await loadConfigs();
  });

  // ---- the list and a config's details --------------------------------------------------------------------------

  async function loadConfigs() {
    const answer = await api("GET", CONFIGS);
    if (!answer.ok) return say(explain(answer), true);
    state.configs = items(answer.data, "configs");
    $("signal-configs-total").textContent = String(state.configs.length);
    const tbody = $("signal-configs").tBodies[0];
    tbody.replaceChildren(...state.configs.map((c) => {
      const tr = el("tr");
      tr.dataset.id = c.id;
      tr.classList.toggle("selected", c.id === state.selected);
      for (const [text, cls] of [[c.symbol], [c.timeframe], [c.strategy], [paramText(c.parameters), "mono"],
                                 [c.active ? "yes" : "no"], [c.computed ? "yes" : "no"]]) {
        tr.append(el("td", text, cls));
      }
      tr.addEventListener("click", () => { state.selected = c.id; showConfig(); });
      return tr;
    }));
    await showConfig();
  }

  async function showConfig() {
    const config = state.configs.find((c) => c.id === state.selected);
    for (const tr of $("signal-configs").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.id === state.selected);
    $("signal-detail").hidden = !config;
    if (!config) return;
    $("signal-detail-title").textContent = `${config.strategy} · ${config.symbol} · ${config.timeframe}` +
      (config.active ? "" : " (paused)");
    $("signal-detail-id").textContent = config.id;
    $("signal-webhook-url").value = config.webhook_url;
    $("signal-pine").textContent = config.pine;
    const answer = await api("GET", `${CONFIGS}/${encodeURIComponent(config.id)}/stats`);
    if (!answer.ok) return say(explain(answer), true);
    const s = answer.data;
    const ms = (v) => (v === null || v === undefined ? "—" : `${Math.round(v)} ms`);
    $("signal-stats").replaceChildren(...[
      ["signals received", s.signals_received], ["duplicates", s.duplicates], ["stale (not sent)", s.stale],
      ["waiting", s.pending], ["users notified", s.users_notified], ["deliveries queued", s.deliveries],
      ["deliveries failed", s.deliveries_failed], ["median delivery latency", ms(s.median_delivery_ms)],
      ["median processing", ms(s.median_processing_ms)], ["payloads refused", s.rejected],
    ].flatMap(([k, v]) => {
      const dd = el("dd", v);
      dd.dataset.stat = k;
      return [el("dt", k), dd];
    }));
  }

  $("signal-edit").addEventListener("click", async () => {
    await loadStrategies();
    const config = state.configs.find((c) => c.id === state.selected);
    if (config) openForm(config);
  });

  $("signal-rotate").addEventListener("click", async () => {
    if (!state.selected) return;
    if (!window.confirm("Rotate the token? The current webhook URL stops working at once; paste the new one " +
                        "into every TradingView alert.")) return;
    const answer = await api("POST", `${CONFIGS}/${encodeURIComponent(state.selected)}/rotate-token`);
    if (!answer.ok) return say(explain(answer), true);
    say("New token: the webhook URL and the Pine script below changed.");
    await loadConfigs();
  });

  $("signal-delete").addEventListener("click", async () => {
    const config = state.configs.find((c) => c.id === state.selected);
    if (!config) return;
    if (!window.confirm(`Delete ${config.strategy} ${config.symbol} ${config.timeframe} and its subscriptions?`)) return;
    const answer = await api("DELETE", `${CONFIGS}/${encodeURIComponent(config.id)}`);
    if (!answer.ok) return say(explain(answer), true);
    state.selected = null;
    say(`Deleted ${config.strategy} ${config.symbol} ${config.timeframe}.`);
    await loadConfigs();
  });

  // Copy buttons: the clipboard API where the page may use it, else a selection and execCommand.
  for (const button of document.querySelectorAll("#signals button.copy")) {
    button.addEventListener("click", async () => {
      const source = $(button.dataset.copy);
      const text = source.value !== undefined ? source.value : source.textContent;
      let copied = false;
      try {
        await navigator.clipboard.writeText(text);
        copied = true;
      } catch (e) {
        const area = el("textarea");
        area.value = text;
        document.body.append(area);
        area.select();
        copied = document.execCommand("copy");
        area.remove();
      }
      button.textContent = copied ? "Copied" : "Copy failed";
      button.dataset.copied = String(copied);
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  }

  // ---- queue and review list ------------------------------------------------------------------------------------

  async function loadQueue() {
    const answer = await api("GET", "/api/v1/admin/signals/queue");
    if (!answer.ok) return;
    $("signal-queue-depth").textContent = String(answer.data.depth);
    $("signal-queue-rate").textContent = `${answer.data.processed_last_minute}/min`;
  }

  async function loadRejects() {
    const answer = await api("GET", "/api/v1/admin/signals/rejected?limit=50");
    if (!answer.ok) return say(explain(answer), true);
    const rows = items(answer.data, "rejected");
    $("signal-rejects-total").textContent = String(answer.data.total !== undefined ? answer.data.total : rows.length);
    $("signal-rejects").tBodies[0].replaceChildren(...rows.map((r) => {
      const tr = el("tr");
      const config = state.configs.find((c) => c.id === r.config_id);
      for (const [text, cls] of [[when(r.received_at)], [config ? `${config.symbol} ${config.timeframe}` : r.config_id],
                                 [r.status_code], [r.field], [r.reason], [r.client || "—"], [r.raw, "raw"]]) {
        tr.append(el("td", text, cls));
      }
      return tr;
    }));
  }

  async function load() {
    await loadStrategies();
    await loadConfigs();
    await Promise.all([loadQueue(), loadRejects()]);
    if (state.timer === null) {
      state.timer = setInterval(() => {
        if ($("signals").hidden) return;
        loadQueue();
      }, QUEUE_EVERY_MS);
    }
  }

  document.addEventListener("admin-tab", (event) => { if (event.detail === "signals") load(); });
})();
