// marketpulse admin console: users (search, filters, paging, details and actions), system metrics and health,
// the audit log. Vanilla JS over the admin API through site.js's MP.api (the browser's session cookies
// authenticate; every change echoes the CSRF cookie in X-CSRF-Token). Text only ever goes in through textContent.
(() => {
  "use strict";

  const DAY_MS = 86400000;
  const PAGE = 25;
  const $ = (id) => document.getElementById(id);
  const message = $("message");

  const api = window.MP.api; // site.js: cookies, the CSRF header on writes, one refresh on a 401
  const explain = window.MP.errorText;

  function say(text, bad) {
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

  const when = (ms) => (ms ? new Date(ms).toISOString().slice(0, 19).replace("T", " ") : "—");
  const dayMs = (value) => (value ? Date.parse(value + "T00:00:00Z") : null);
  const json = (v) => (v === null || v === undefined ? "" : JSON.stringify(v));

  function fillTable(tbody, rows, cells) {
    tbody.replaceChildren(...rows.map((r) => {
      const tr = el("tr");
      for (const [text, cls] of cells(r)) tr.appendChild(el("td", text, cls));
      return tr;
    }));
  }

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
    return q.toString();
  }

  // ---- sign-in ------------------------------------------------------------------------------------------------

  let challenge = null;
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const result = challenge
      ? await api("POST", "/api/v1/auth/signin/second-factor", { challenge, code: form.code.value })
      : await api("POST", "/api/v1/auth/signin", { email: form.email.value, password: form.password.value });
    const detail = result.data && result.data.detail;
    if (!result.ok && detail && detail.reason === "second_factor_required") {
      challenge = detail.challenge;
      $("code-field").hidden = false;
      say("Enter the code from your authenticator.");
      return;
    }
    if (!result.ok) return say(explain(result), true);
    challenge = null;
    say("");
    start();
  });

  // ---- tabs ---------------------------------------------------------------------------------------------------

  const loaders = {};
  function show(tab) {
    for (const button of document.querySelectorAll("#tabs button")) {
      button.classList.toggle("active", button.dataset.tab === tab);
    }
    for (const section of document.querySelectorAll("section.tab")) section.hidden = section.id !== tab;
    if (loaders[tab]) loaders[tab]();
    // Tabs kept in scripts of their own (admin-signals.js) load on this event.
    document.dispatchEvent(new CustomEvent("admin-tab", { detail: tab }));
  }
  for (const button of document.querySelectorAll("#tabs button")) {
    button.addEventListener("click", () => show(button.dataset.tab));
  }

  // ---- users --------------------------------------------------------------------------------------------------

  const users = { offset: 0, total: 0, selected: null };

  function userFilters() {
    const f = $("user-filters");
    const to = dayMs(f.signed_up_to.value);
    return {
      q: f.q.value.trim(), plan: f.plan.value, status: f.status.value, role: f.role.value,
      signed_up_from: dayMs(f.signed_up_from.value), signed_up_to: to === null ? null : to + DAY_MS,
    };
  }

  async function loadUsers() {
    const result = await api("GET", "/api/v1/admin/users?" + query({ ...userFilters(), limit: PAGE,
                                                                     offset: users.offset }));
    if (!result.ok) return say(explain(result), true);
    users.total = result.data.total;
    $("users-total").textContent = String(users.total);
    const tbody = $("users-table").querySelector("tbody");
    fillTable(tbody, result.data.data, (u) => [[u.email || "(wallet only)"], [u.plan], [u.status], [u.role],
                                                 [when(u.created_at_ms)]]);
    [...tbody.children].forEach((tr, i) => {
      const u = result.data.data[i];
      tr.dataset.id = u.id;
      tr.classList.toggle("selected", u.id === users.selected);
      tr.addEventListener("click", () => loadUser(u.id));
    });
    const last = Math.min(users.offset + PAGE, users.total);
    $("users-range").textContent = users.total ? `${users.offset + 1}–${last} of ${users.total}` : "no users match";
    $("users-prev").disabled = users.offset === 0;
    $("users-next").disabled = last >= users.total;
  }
  loaders.users = loadUsers;

  $("user-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    users.offset = 0;
    loadUsers();
  });
  $("users-prev").addEventListener("click", () => { users.offset = Math.max(0, users.offset - PAGE); loadUsers(); });
  $("users-next").addEventListener("click", () => { users.offset += PAGE; loadUsers(); });

  let current = null;
  async function loadUser(id) {
    const result = await api("GET", "/api/v1/admin/users/" + encodeURIComponent(id));
    if (!result.ok) return say(explain(result), true);
    current = result.data;
    users.selected = id;
    for (const tr of $("users-table").querySelectorAll("tbody tr")) tr.classList.toggle("selected", tr.dataset.id === id);
    $("user-detail").hidden = false;
    $("detail-email").textContent = current.email || "(wallet-only account)";
    $("detail-id").textContent = current.id;
    $("detail-created").textContent = when(current.created_at_ms);
    $("detail-last").textContent = when(current.last_activity_ms);
    $("detail-verified").textContent = current.email_verified ? "yes" : "no";
    const form = $("detail-form");
    form.plan.value = current.plan;
    form.status.value = current.status;
    form.role.value = current.role;
    fillTable($("detail-sessions").querySelector("tbody"), current.sessions || [],
              (s) => [[when(s.created_at_ms)], [when(s.last_used_at_ms)], [when(s.expires_at_ms)], [s.client || "—"]]);
    fillTable($("detail-keys").querySelector("tbody"), current.api_keys || [],
              (k) => [[k.name], [k.prefix, "mono"], [(k.scopes || []).join(", ")], [when(k.last_used_at_ms)]]);
  }

  async function afterChange(result, done) {
    if (!result.ok) return say(explain(result), true);
    say(done);
    await loadUsers();
    if (current && users.selected) await loadUser(users.selected);
  }

  $("detail-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!current) return;
    const form = event.target;
    const changes = {};
    for (const key of ["plan", "status", "role"]) if (form[key].value !== current[key]) changes[key] = form[key].value;
    if (!Object.keys(changes).length) return say("Nothing to change.");
    const result = await api("PATCH", "/api/v1/admin/users/" + encodeURIComponent(current.id), changes);
    await afterChange(result, "Saved: " + Object.entries(changes).map(([k, v]) => `${k} → ${v}`).join(", "));
  });

  $("detail-reset").addEventListener("click", async () => {
    if (!current) return;
    const result = await api("POST", `/api/v1/admin/users/${encodeURIComponent(current.id)}/password-reset`);
    await afterChange(result, "The password no longer works; a reset link was mailed.");
  });

  $("detail-signout").addEventListener("click", async () => {
    if (!current) return;
    const result = await api("POST", `/api/v1/admin/users/${encodeURIComponent(current.id)}/signout`);
    await afterChange(result, result.ok ? `Ended ${result.data.sessions_ended} session(s).` : "");
  });

  $("detail-delete").addEventListener("click", async () => {
    if (!current) return;
    const who = current.email || current.id;
    if (!window.confirm(`Delete ${who} and everything they own? This can't be undone.`)) return;
    const result = await api("DELETE", "/api/v1/admin/users/" + encodeURIComponent(current.id));
    if (!result.ok) return say(explain(result), true);
    current = null;
    users.selected = null;
    $("user-detail").hidden = true;
    say(`Deleted ${who}.`);
    await loadUsers();
  });

  // ---- system -------------------------------------------------------------------------------------------------

  function facts(dl, entries) {
    dl.replaceChildren(...entries.flatMap(([k, v, cls]) => [el("dt", k), el("dd", v, cls)]));
  }

  async function loadMetrics() {
    const [metrics, health] = await Promise.all([api("GET", "/api/v1/admin/metrics"),
                                                 api("GET", "/api/v1/admin/health")]);
    if (!metrics.ok) return say(explain(metrics), true);
    const m = metrics.data;
    facts($("by-plan"), Object.entries(m.users_by_plan));
    facts($("by-status"), Object.entries(m.users_by_status));
    $("active-sessions").textContent = String(m.active_sessions);
    const top = Math.max(1, ...m.signups_per_day.map((d) => d.count));
    $("signups").replaceChildren(...m.signups_per_day.map((d) => {
      const bar = el("div");
      bar.style.height = `${(100 * d.count) / top}%`;
      bar.title = `${d.day}: ${d.count}`;
      return bar;
    }));
    if (!health.ok) return say(explain(health), true);
    const h = health.data;
    const dead = Object.values(h.dead_letters).reduce((a, b) => a + b, 0);
    const uptime = h.uptime_s === null ? "—" : `${Math.floor(h.uptime_s / 3600)} h ${Math.floor(h.uptime_s / 60) % 60} min`;
    facts($("health"), [
      ["status", h.status, h.status === "ok" ? "ok" : "bad"],
      ...Object.entries(h.checks).map(([k, v]) => [k, v, v === "ok" ? "ok" : "bad"]),
      ["dead letters", String(dead), dead ? "bad" : "ok"],
      ["uptime", uptime],
    ]);
    fillTable($("bus-groups").querySelector("tbody"), h.bus_groups,
              (g) => [[g.topic], [g.group], [g.lag === null ? "?" : g.lag], [g.pending]]);
  }
  loaders.metrics = loadMetrics;

  // ---- audit log ----------------------------------------------------------------------------------------------

  const audit = { offset: 0 };
  async function loadAudit() {
    const f = $("audit-filters");
    const until = dayMs(f.until.value);
    const params = { action: f.action.value.trim(), actor_id: f.actor_id.value.trim(),
                     target_id: f.target_id.value.trim(), since: dayMs(f.since.value),
                     until: until === null ? null : until + DAY_MS, limit: PAGE, offset: audit.offset };
    const result = await api("GET", "/api/v1/admin/audit-log?" + query(params));
    if (!result.ok) return say(explain(result), true);
    const { data: entries, total } = result.data;
    $("audit-total").textContent = String(total);
    fillTable($("audit-table").querySelector("tbody"), entries, (e) => [
      [when(e.created_at_ms)], [e.action], [e.actor_id || "system", "mono"], [e.target_id || "", "mono"],
      [json(e.old_values), "json"], [json(e.new_values), "json"], [e.client || ""]]);
    const last = Math.min(audit.offset + PAGE, total);
    $("audit-range").textContent = total ? `${audit.offset + 1}–${last} of ${total}` : "no entries match";
    $("audit-prev").disabled = audit.offset === 0;
    $("audit-next").disabled = last >= total;
  }
  loaders.audit = loadAudit;

  $("audit-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    audit.offset = 0;
    loadAudit();
  });
  $("audit-prev").addEventListener("click", () => { audit.offset = Math.max(0, audit.offset - PAGE); loadAudit(); });
  $("audit-next").addEventListener("click", () => { audit.offset += PAGE; loadAudit(); });

  // ---- start --------------------------------------------------------------------------------------------------

  async function start() {
    const me = await api("GET", "/api/v1/auth/me");
    const admin = me.ok && me.data.role === "admin";
    $("signin").hidden = admin;
    $("tabs").hidden = !admin;
    if (me.ok && !admin) say("This account is not an administrator.", true);
    if (!admin) {
      for (const section of document.querySelectorAll("section.tab")) section.hidden = true;
      return;
    }
    $("whoami").textContent = me.data.email || me.data.id;
    const wanted = location.hash.slice(1);  // /admin#signals opens that tab
    show(document.querySelector(`#tabs button[data-tab="${CSS.escape(wanted)}"]`) ? wanted : "users");
  }

  start();
})();
