// The /alerts page: a rule built with a form (conditions in AND rows and OR groups), previewed over history,
// saved, listed, paused/resumed/deleted; the user's destinations; the alert history. Served from /static (the CSP
// allows no inline script); what the form offers comes from the bootstrap JSON (rules/model.py's vocabulary).
"use strict";

(function () {
  const boot = JSON.parse(document.getElementById("bootstrap").textContent);
  const $ = (id) => document.getElementById(id);
  const form = $("rule-form");
  const fieldByName = Object.fromEntries(boot.fields.map((f) => [f.name, f]));
  const opByName = Object.fromEntries(boot.ops.map((o) => [o.name, o]));
  const state = { destinations: [], watchlists: [], rules: [], editing: null };
  const PREVIEW_ROWS = 50;

  // A list answer: `{data: [...]}` (the list envelope), `{<key>: [...]}` or a bare array.
  function items(data, key) {
    if (Array.isArray(data)) return data;
    if (data && Array.isArray(data.data)) return data.data;
    return (data && data[key]) || [];
  }

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function option(value, label, selected) {
    return new Option(label, value, !!selected, !!selected);
  }

  // --- one condition row -----------------------------------------------------------------------------------------

  function conditionRow(cond) {
    const row = el("div", { className: "cond-row inline" });
    const what = el("select", { className: "cond-field", title: "Field or event" });
    const market = el("optgroup", { label: "Market" });
    const indicators = el("optgroup", { label: "Indicator (closed bars of the rule's interval)" });
    const events = el("optgroup", { label: "Event" });
    for (const f of boot.fields) (f.indicator ? indicators : market).append(option(f.name, f.label));
    for (const e of boot.events) events.append(option("event:" + e.name, e.label));
    what.append(market, indicators, events);
    const op = el("select", { className: "cond-op", title: "Operator" });
    const value = el("input", { className: "cond-value", type: "number", step: "any", placeholder: "value" });
    const lower = el("input", { className: "cond-lower", type: "number", step: "any", placeholder: "lower" });
    const upper = el("input", { className: "cond-upper", type: "number", step: "any", placeholder: "upper" });
    const window_ = el("select", { className: "cond-window", title: "Window" });
    for (const iv of boot.intervals) window_.append(option(iv, iv, iv === "1h"));
    const period = el("input", { className: "cond-period", type: "number", min: 1, max: 500, placeholder: "period" });
    const mult = el("input", { className: "cond-mult", type: "number", step: "any", min: 0, placeholder: "std devs" });
    const alertType = el("select", { className: "cond-alert-type", title: "Alert type" });
    alertType.append(option("", "any type"));
    for (const t of boot.alertTypes) alertType.append(option(t, t));
    const strategy = el("input", { className: "cond-strategy", placeholder: "strategy (optional)", maxLength: 64 });
    const remove = el("button", { type: "button", className: "btn secondary cond-remove", textContent: "×",
      title: "Remove this condition" });
    remove.addEventListener("click", () => {
      const group = row.closest(".cond-group");
      row.remove();
      if (group && !group.querySelector(".cond-row")) group.remove();
      labelGroups();
    });
    row.append(what, op, value, lower, upper, window_, period, mult, alertType, strategy, remove);

    function fillOps() {
      const f = fieldByName[what.value];
      const keep = op.value;
      op.replaceChildren();
      for (const o of boot.ops) {
        if (o.operands.includes("window") && !(f && f.movable)) continue;  // moves apply to movable fields only
        op.append(option(o.name, o.label, o.name === keep));
      }
    }
    function show() {
      const isEvent = what.value.startsWith("event:");
      const f = fieldByName[what.value];
      const operands = isEvent ? [] : opByName[op.value].operands;
      op.classList.toggle("hidden", isEvent);
      value.classList.toggle("hidden", !operands.includes("value"));
      value.placeholder = operands.includes("window") ? "percent" : "value";
      lower.classList.toggle("hidden", !operands.includes("lower"));
      upper.classList.toggle("hidden", !operands.includes("upper"));
      window_.classList.toggle("hidden", !operands.includes("window"));
      period.classList.toggle("hidden", !(f && f.indicator));
      mult.classList.toggle("hidden", !(f && f.name.startsWith("bb_")));
      alertType.classList.toggle("hidden", what.value !== "event:volume_spike");
      strategy.classList.toggle("hidden", what.value !== "event:strategy_signal");
    }
    what.addEventListener("change", () => { fillOps(); show(); });
    op.addEventListener("change", show);

    cond = cond || { field: "price", op: "crosses_above" };
    if (cond.event) {
      what.value = "event:" + cond.event;
      if (cond.alert_type) alertType.value = cond.alert_type;
      if (cond.strategy) strategy.value = cond.strategy;
    } else {
      what.value = cond.field;
    }
    fillOps();
    if (cond.op) op.value = cond.op;
    for (const [input, key] of [[value, "value"], [lower, "lower"], [upper, "upper"], [period, "period"],
      [mult, "mult"]]) {
      if (cond[key] !== undefined && cond[key] !== null) input.value = cond[key];
    }
    if (cond.window) window_.value = cond.window;
    show();

    row.read = () => {
      if (what.value.startsWith("event:")) {
        const out = { event: what.value.slice(6) };
        if (out.event === "volume_spike" && alertType.value) out.alert_type = alertType.value;
        if (out.event === "strategy_signal" && strategy.value.trim()) out.strategy = strategy.value.trim();
        return out;
      }
      const out = { field: what.value, op: op.value };
      const inputs = { value, lower, upper };
      for (const name of opByName[op.value].operands) {
        const input = inputs[name];
        out[name] = name === "window" ? window_.value : input.value.trim() === "" ? null : Number(input.value);
      }
      if (fieldByName[what.value].indicator && period.value.trim()) out.period = Number(period.value);
      if (what.value.startsWith("bb_") && mult.value.trim()) out.mult = Number(mult.value);
      return out;
    };
    return row;
  }

  // --- groups: AND rows in each, OR between groups ------------------------------------------------------------

  function group(conds) {
    const box = el("div", { className: "cond-group card" });
    const head = el("div", { className: "cond-group-head muted" });
    const rows = el("div", { className: "cond-rows" });
    const add = el("button", { type: "button", className: "btn secondary add-condition", textContent: "+ AND condition" });
    add.addEventListener("click", () => { rows.append(conditionRow()); });
    for (const c of conds && conds.length ? conds : [null]) rows.append(conditionRow(c));
    box.append(head, rows, add);
    return box;
  }

  function labelGroups() {
    const groups = [...document.querySelectorAll("#groups .cond-group")];
    groups.forEach((g, i) => {
      g.querySelector(".cond-group-head").textContent = groups.length > 1
        ? (i === 0 ? "Group 1: all of" : `OR group ${i + 1}: all of`) : "All of";
    });
  }

  function setConditions(tree) {
    const box = $("groups");
    box.replaceChildren();
    // {all: [leaves]} → one group; {any: [{all: [...]} | leaf, ...]} → a group per item.
    let groups;
    if (tree && tree.any) {
      groups = tree.any.map((item) => (item.all ? item.all : item.any ? null : [item]));
    } else {
      groups = [tree && tree.all ? tree.all : null];
    }
    const flat = (conds) => conds && conds.every((c) => !c.all && !c.any);
    if (!groups.every((g) => g === null || flat(g)) || groups.some((g) => g === null && tree)) {
      say("rule-msg", "This rule's conditions nest deeper than the form shows: saving replaces them with the form's.",
        "bad");
      groups = groups.map((g) => (flat(g) ? g : null));
    }
    for (const g of groups) box.append(group(g));
    labelGroups();
  }

  function readConditions() {
    const groups = [...document.querySelectorAll("#groups .cond-group")]
      .map((g) => [...g.querySelectorAll(".cond-row")].map((r) => r.read()))
      .filter((g) => g.length);
    if (groups.length === 1) return { all: groups[0] };
    return { any: groups.map((g) => ({ all: g })) };
  }

  $("add-group").addEventListener("click", () => { $("groups").append(group()); labelGroups(); });

  // --- the whole rule --------------------------------------------------------------------------------------------

  function target() {
    return form.querySelector("input[name=target]:checked").value;
  }
  function showTarget() {
    $("symbols-field").classList.toggle("hidden", target() !== "symbols");
    $("watchlist-field").classList.toggle("hidden", target() !== "watchlist");
  }
  form.querySelectorAll("input[name=target]").forEach((r) => r.addEventListener("change", showTarget));

  function readRule() {
    const f = form.elements;
    const rule = {
      name: f.name.value.trim(),
      conditions: readConditions(),
      channels: [...document.querySelectorAll("#channel-list input:checked")].map((c) => c.value),
      frequency: f.frequency.value,
      interval: f.interval.value,
      cooldown_s: Number(f.cooldown_s.value || 0),
      hysteresis_pct: Number(f.hysteresis_pct.value || 0),
      enabled: f.enabled.checked,
    };
    if (target() === "all") rule.symbols = "*";
    else if (target() === "watchlist") rule.watchlist = f.watchlist.value;
    else rule.symbols = f.symbols.value.split(/[\s,]+/).map((s) => s.trim().toUpperCase()).filter(Boolean);
    if (f.expires_at.value) rule.expires_at = Date.parse(f.expires_at.value + "Z");
    return rule;
  }

  function fillRule(rule) {
    const f = form.elements;
    f.name.value = rule ? rule.name : "";
    const kind = !rule ? "symbols" : rule.watchlist ? "watchlist" : rule.symbols === "*" ? "all" : "symbols";
    form.querySelector(`input[name=target][value=${kind}]`).checked = true;
    f.symbols.value = rule && Array.isArray(rule.symbols) ? rule.symbols.join(", ") : rule && rule.symbol ? rule.symbol : "";
    if (rule && rule.watchlist) f.watchlist.value = rule.watchlist;
    showTarget();
    setConditions(rule ? rule.conditions : null);
    f.frequency.value = rule ? rule.frequency : "once_per_bar";
    f.interval.value = rule ? rule.interval : "1m";
    f.cooldown_s.value = rule ? rule.cooldown_s : 0;
    f.hysteresis_pct.value = rule ? rule.hysteresis_pct : 0;
    f.expires_at.value = rule && rule.expires_at ? new Date(rule.expires_at).toISOString().slice(0, 16) : "";
    f.enabled.checked = rule ? rule.enabled : true;
    drawChannels(rule ? rule.channels : null);
    state.editing = rule ? rule.id : null;
    $("preview").classList.add("hidden");
    $("editor-title").textContent = rule ? `Edit “${rule.name}”` : "New rule";
    $("save-rule").textContent = rule ? "Save changes" : "Save rule";
    $("cancel-edit").classList.toggle("hidden", !rule);
  }

  $("cancel-edit").addEventListener("click", () => { fillRule(null); MP.say("rule-msg", ""); });

  function say(id, text, kind) { MP.say(id, text, kind); }

  for (const fr of boot.frequencies) form.elements.frequency.append(option(fr.name, fr.label, fr.name === "once_per_bar"));
  for (const iv of boot.intervals) form.elements.interval.append(option(iv, iv, iv === "1m"));
  form.elements.days.max = boot.previewMaxDays;

  // --- preview ---------------------------------------------------------------------------------------------------

  $("preview-rule").addEventListener("click", async () => {
    const body = Object.assign(readRule(), { days: Number(form.elements.days.value || 7) });
    say("rule-msg", "Replaying the stored history…", "ok");
    const answer = await MP.api("POST", "/api/v1/alerts/rules/preview", body);
    if (!answer.ok) {
      $("preview").classList.add("hidden");
      return say("rule-msg", MP.errorText(answer));
    }
    say("rule-msg", "");
    const p = answer.data;
    $("preview").classList.remove("hidden");
    $("preview").dataset.count = String(p.count);
    $("preview-summary").textContent = `Over the last ${body.days} day${body.days === 1 ? "" : "s"} it would have ` +
      `fired ${p.count} time${p.count === 1 ? "" : "s"}, costing ${p.credits} credit${p.credits === 1 ? "" : "s"} ` +
      `(${p.credits_per_fire} per notification on the chosen channels).`;
    const notes = [];
    if (p.no_data.length) notes.push(`No stored candles for ${p.no_data.join(", ")}.`);
    if (p.not_replayable.length) notes.push(`Not replayable from candles (never match here): ${p.not_replayable.join(", ")}.`);
    const body_ = $("preview-fires").tBodies[0];
    const shown = p.fires.slice(0, PREVIEW_ROWS);
    if (p.fires.length > shown.length) notes.push(`The first ${shown.length} of ${p.fires.length} are listed.`);
    $("preview-notes").textContent = notes.join(" ");
    body_.replaceChildren(...shown.map((f) => el("tr", {},
      el("td", { textContent: MP.when(f.time) }), el("td", { textContent: f.symbol }),
      el("td", { textContent: f.value === null ? (f.field || "event") : `${f.field} = ${fmt(f.value)}` }))));
  });

  function fmt(x) {
    return typeof x === "number" ? Number(x.toPrecision(8)).toString() : String(x);
  }

  // --- save ------------------------------------------------------------------------------------------------------

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const rule = readRule();
    const answer = state.editing
      ? await MP.api("PUT", `/api/v1/alerts/rules/${state.editing}`, rule)
      : await MP.api("POST", "/api/v1/alerts/rules", rule);
    if (!answer.ok) return say("rule-msg", MP.errorText(answer));
    say("rule-msg", state.editing ? `Saved “${answer.data.name}”.` : `Rule “${answer.data.name}” created.`, "ok");
    fillRule(null);
    await loadRules();
  });

  // --- the rules list --------------------------------------------------------------------------------------------

  function describe(tree) {
    const leaf = (c) => {
      if (c.all || c.any) return "(" + describe(c) + ")";
      if (c.event) return (boot.events.find((e) => e.name === c.event) || { label: c.event }).label +
        (c.alert_type ? ` ${c.alert_type}` : "") + (c.strategy ? ` ${c.strategy}` : "");
      const f = fieldByName[c.field] ? fieldByName[c.field].label : c.field;
      const p = c.period ? `(${c.period}${c.mult ? "," + c.mult : ""})` : "";
      const o = opByName[c.op] ? opByName[c.op].label : c.op;
      if (c.lower !== undefined) return `${f}${p} ${o} ${c.lower}–${c.upper}`;
      if (c.window) return `${f}${p} ${o.replace(" within", "")} ${c.value}% within ${c.window}`;
      return `${f}${p} ${o} ${c.value}`;
    };
    return (tree.all || tree.any).map(leaf).join(tree.all ? " AND " : " OR ");
  }

  function targetText(rule) {
    if (rule.watchlist) {
      const w = state.watchlists.find((x) => x.id === rule.watchlist);
      return "watchlist " + (w ? w.name : rule.watchlist);
    }
    if (rule.symbols === "*") return "every symbol";
    return (rule.symbols || [rule.symbol]).join(", ");
  }

  async function loadRules() {
    const answer = await MP.api("GET", "/api/v1/alerts/rules");
    if (answer.status === 401) return MP.signIn();
    if (!answer.ok) return say("rules-msg", MP.errorText(answer));
    state.rules = items(answer.data, "rules");
    const rows = state.rules.map((r) => {
      const tr = el("tr", {});
      tr.dataset.ruleId = r.id;
      tr.dataset.state = r.enabled ? "active" : "paused";
      const act = el("td", { className: "actions" });
      const button = (text, action, handler) => {
        const b = el("button", { type: "button", className: "btn secondary", textContent: text });
        b.dataset.action = action;
        b.addEventListener("click", handler);
        act.append(b, " ");
      };
      button(r.enabled ? "Pause" : "Resume", r.enabled ? "pause" : "resume", async () => {
        const a = await MP.api("POST", `/api/v1/alerts/rules/${r.id}/${r.enabled ? "pause" : "resume"}`);
        if (!a.ok) say("rules-msg", MP.errorText(a)); else say("rules-msg", "");
        await loadRules();
      });
      button("Edit", "edit", () => { fillRule(r); $("rule-editor").scrollIntoView(); });
      button("Delete", "delete", async () => {
        if (!confirm(`Delete the rule “${r.name}”?`)) return;
        const a = await MP.api("DELETE", `/api/v1/alerts/rules/${r.id}`);
        if (!a.ok) say("rules-msg", MP.errorText(a));
        await loadRules();
      });
      tr.append(el("td", { textContent: r.name }), el("td", { textContent: targetText(r) }),
        el("td", { textContent: describe(r.conditions) }),
        el("td", { textContent: `${r.frequency.replace(/_/g, " ")} · ${r.interval}` +
          (r.cooldown_s ? ` · cooldown ${r.cooldown_s}s` : "") + (r.expires_at ? ` · until ${MP.when(r.expires_at)}` : "") }),
        el("td", { className: "rule-state", textContent: r.enabled ? "active" : "paused" }),
        el("td", { className: "rule-fired", textContent: r.fired_count ? `${r.fired_count} · ${MP.when(r.last_fired_at)}` : "0" }),
        act);
      return tr;
    });
    if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 7, className: "muted", textContent: "No rules yet." })));
    $("rule-list").tBodies[0].replaceChildren(...rows);
  }

  async function loadHistory() {
    const answer = await MP.api("GET", "/api/v1/alerts/history?limit=50");
    if (!answer.ok) return;
    const rows = items(answer.data, "history").map((h) => {
      const tr = el("tr", {}, el("td", { textContent: MP.when(h.time) }), el("td", { textContent: h.rule_name }),
        el("td", {}, el("a", { href: `/market/${h.symbol}`, textContent: h.symbol })),
        el("td", { textContent: h.field ? `${h.field} = ${fmt(h.value)}` : h.message }));
      tr.dataset.ruleId = h.rule_id;
      return tr;
    });
    if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 4, className: "muted", textContent: "No alerts yet." })));
    $("history-list").tBodies[0].replaceChildren(...rows);
    const newest = rows[0].dataset.ruleId ? items(answer.data, "history")[0].id : "";
    const moved = state.newestAlert !== undefined && newest !== state.newestAlert;
    state.newestAlert = newest;
    return moved;
  }

  // --- destinations and channels ---------------------------------------------------------------------------------

  function drawChannels(chosen) {
    const keep = chosen || [...document.querySelectorAll("#channel-list input:checked")].map((c) => c.value);
    const verified = state.destinations.filter((d) => d.state === "verified");
    const box = $("channel-list");
    box.replaceChildren(...verified.map((d) => {
      const input = el("input", { type: "checkbox", value: d.id, checked: keep.includes(d.id) });
      input.dataset.channel = d.channel;
      return el("label", {}, input, ` ${d.channel === "in_app" ? "in-app" : d.channel}` +
        (d.channel === "in_app" ? "" : ` ${d.address}`));
    }));
    if (!verified.length) box.append(el("span", { className: "muted", textContent: "No verified destination yet: add one under “Where alerts go”." }));
  }

  async function loadDestinations() {
    const answer = await MP.api("GET", "/api/v1/account/destinations");
    if (!answer.ok) return;
    state.destinations = items(answer.data, "destinations");
    drawChannels();
    const rows = state.destinations.map((d) => {
      const tr = el("tr", {});
      tr.dataset.destinationId = d.id;
      tr.dataset.channel = d.channel;
      const act = el("td", {});
      if (d.state !== "verified") {
        const code = el("input", { placeholder: "code", maxLength: 16, className: "dest-code", size: 8 });
        const ok = el("button", { type: "button", className: "btn secondary", textContent: "Verify" });
        ok.addEventListener("click", async () => {
          const a = await MP.api("POST", `/api/v1/account/destinations/${d.id}/verify`, { code: code.value.trim() });
          say("destination-msg", a.ok ? "Verified." : MP.errorText(a), a.ok ? "ok" : "bad");
          await loadDestinations();
        });
        act.append(code, " ", ok, " ");
      }
      const del = el("button", { type: "button", className: "btn danger", textContent: "Remove" });
      del.addEventListener("click", async () => {
        const a = await MP.api("DELETE", `/api/v1/account/destinations/${d.id}`);
        if (!a.ok) say("destination-msg", MP.errorText(a));
        await loadDestinations();
      });
      act.append(del);
      tr.append(el("td", { textContent: d.channel }), el("td", { textContent: d.channel === "in_app" ? "this site" : d.address }),
        el("td", { className: "dest-state", textContent: d.state + (d.last_error ? ` (${d.last_error})` : "") }), act);
      return tr;
    });
    $("destination-list").tBodies[0].replaceChildren(...rows);
  }

  $("destination-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target.elements;
    const answer = await MP.api("POST", "/api/v1/account/destinations",
      { channel: f.channel.value, address: f.channel.value === "in_app" ? "" : f.address.value.trim() });
    if (!answer.ok) return say("destination-msg", MP.errorText(answer));
    say("destination-msg", answer.data.state === "verified" ? "Added." :
      `Added: enter the code sent to ${answer.data.address} to verify it.`, "ok");
    f.address.value = "";
    await loadDestinations();
  });

  async function loadWatchlists() {
    const answer = await MP.api("GET", "/api/v1/watchlist");
    if (!answer.ok) return;
    state.watchlists = items(answer.data, "watchlists");
    const select = form.elements.watchlist;
    select.replaceChildren(...state.watchlists.map((w) => option(w.id, `${w.name} (${w.symbols.length})`)));
    form.querySelector("input[name=target][value=watchlist]").disabled = !state.watchlists.length;
  }

  async function loadCredits() {
    const answer = await MP.api("GET", "/api/v1/account/credits?limit=1");
    $("credit-balance").textContent = answer.ok ? String(answer.data.balance) : "—";
  }

  async function start() {
    const me = await MP.me();
    if (!me) return MP.signIn();
    fillRule(null);
    await Promise.all([loadDestinations(), loadWatchlists(), loadCredits()]);
    await Promise.all([loadRules(), loadHistory()]);
    document.body.dataset.ready = "1";
    // History and credits move as rules fire: refresh them while the page is open.
    setInterval(async () => {
      if (document.hidden) return;
      loadCredits();
      if (await loadHistory()) loadRules();  // a new alert: the rules' fired counts (and a `once` rule's state) moved
    }, 5000);
  }
  start();
})();
