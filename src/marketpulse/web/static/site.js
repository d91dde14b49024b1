// Shared by every page: the nav bar (with the sign-in state) and the small helpers the account pages use.
// Browsers authenticate by cookie: writes echo the readable mp_csrf cookie in X-CSRF-Token (double submit).
"use strict";

(function () {
  const CSRF_COOKIE = "mp_csrf";

  function cookie(name) {
    const hit = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return hit ? decodeURIComponent(hit.slice(name.length + 1)) : null;
  }

  async function send(method, path, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") {
      const csrf = cookie(CSRF_COOKIE);
      if (csrf) headers["X-CSRF-Token"] = csrf;
    }
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(path, {
      method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    const text = await resp.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = { detail: text }; }
    }
    return { ok: resp.ok, status: resp.status, data };
  }

  // The access cookie is short-lived: on a 401 try the refresh cookie once, then repeat the request.
  async function api(method, path, body) {
    let answer = await send(method, path, body);
    if (answer.status === 401 && !path.startsWith("/api/v1/auth/") && cookie(CSRF_COOKIE)) {
      const refreshed = await send("POST", "/api/v1/auth/refresh");
      if (refreshed.ok) answer = await send(method, path, body);
    }
    return answer;
  }

  // The signed-out visitor of a personal page goes to sign in, and comes back here afterwards.
  function signIn() {
    location.assign("/signin?next=" + encodeURIComponent(location.pathname + location.search + location.hash));
  }

  // For scripts that work with fetch's own Response (/paper, /backtests): the CSRF header on writes, one refresh
  // on a 401, and to the sign-in page when the session is gone.
  async function authFetch(url, init = {}) {
    const method = (init.method || "GET").toUpperCase();
    const attempt = () => {
      const headers = new Headers(init.headers || {});
      const csrf = cookie(CSRF_COOKIE);
      if (method !== "GET" && method !== "HEAD" && csrf) headers.set("X-CSRF-Token", csrf);
      return fetch(url, Object.assign({}, init, { method, headers, credentials: "same-origin" }));
    };
    let resp = await attempt();
    if (resp.status === 401 && cookie(CSRF_COOKIE)) {
      const refreshed = await send("POST", "/api/v1/auth/refresh");
      if (refreshed.ok) resp = await attempt();
    }
    if (resp.status === 401) signIn();
    return resp;
  }

  // An error body as one readable line per problem: "email: value is not a valid email address".
  function errorText(answer) {
    const detail = answer && answer.data ? answer.data.detail : null;
    if (answer && answer.status === 404 && (!detail || detail === "Not Found")) {
      return "This isn't available on this server (not configured).";
    }
    if (answer && answer.status === 429) return "Too many attempts: wait a moment and try again.";
    if (Array.isArray(detail)) {
      return detail.map((e) => {
        const field = (e.loc || []).filter((p) => p !== "body").join(".");
        return field ? `${field}: ${e.msg}` : e.msg;
      }).join("\n");
    }
    if (detail && typeof detail === "object") return detail.message || detail.reason || JSON.stringify(detail);
    if (typeof detail === "string") return detail;
    return `The server answered ${answer ? answer.status : "nothing"}.`;
  }

  function say(el, text, kind) {
    if (typeof el === "string") el = document.getElementById(el);
    if (!el) return;
    el.textContent = text || "";
    el.className = "msg" + (text ? " " + (kind || "bad") : "");
  }

  let mePromise = null;
  function me() {  // the signed-in user, or null
    if (!mePromise) {
      mePromise = api("GET", "/api/v1/auth/me").then((a) => (a.ok ? a.data : null));
    }
    return mePromise;
  }

  // `next` only within this site: an absolute or protocol-relative URL would make sign-in an open redirect.
  function nextPath(fallback) {
    const next = new URLSearchParams(location.search).get("next");
    return next && next.startsWith("/") && !next.startsWith("//") ? next : fallback;
  }

  function link(href, text, extra) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    if (extra) Object.assign(a.dataset, extra);
    const here = location.pathname;
    if (here === href || (href !== "/" && here.startsWith(href + "/")) || (href === "/" && here.startsWith("/market/"))) {
      a.setAttribute("aria-current", "page");
    }
    return a;
  }

  // Every section of the app, in one place: each page's nav is built from this list (pages that later
  // capabilities add slot in here).
  const SECTIONS = [
    ["/", "Market", "market"], ["/alerts", "Alerts", "alerts"], ["/signals", "Signals", "signals"],
    ["/paper", "Paper", "paper"], ["/backtests", "Backtests", "backtests"], ["/portfolio", "Portfolio", "portfolio"],
    ["/tax", "Tax", "tax"], ["/pricing", "Pricing", "pricing"],
  ];

  // --- preferences every page shares: the theme (dark, or light) and the time zone times are shown in ---
  const THEME_KEY = "mp.theme", ZONE_KEY = "mp.tz";
  function stored(key) {
    try { return localStorage.getItem(key); } catch (e) { return null; }
  }
  function store(key, value) {
    try { localStorage.setItem(key, value); } catch (e) { /* private mode: this page only */ }
  }
  const theme = () => (document.documentElement.dataset.theme === "light" ? "light" : "dark");
  function setTheme(value) {
    document.documentElement.dataset.theme = value;
    store(THEME_KEY, value);
    document.dispatchEvent(new CustomEvent("mp:theme", { detail: value }));
  }
  const zone = () => (stored(ZONE_KEY) === "local" ? "local" : "utc");
  function setZone(value) {
    store(ZONE_KEY, value);
    document.documentElement.dataset.zone = value;
    document.dispatchEvent(new CustomEvent("mp:zone", { detail: value }));
  }
  const zoneLabel = () => (zone() === "utc" ? "UTC" : "local");
  // Headings that name the zone their column's times are in (`<span class="zone-label">`) follow the switch.
  function labelZones() {
    for (const el of document.querySelectorAll(".zone-label")) el.textContent = "(" + zoneLabel() + ")";
  }
  document.addEventListener("mp:zone", labelZones);

  const pad2 = (n) => String(n).padStart(2, "0");
  function fields(d, utc) {
    return utc
      ? [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()]
      : [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds()];
  }
  // A time as the chosen zone shows it: "20:01" today, "2025-10-10 20:01" on another day (`now`: the day it is
  // compared with, the market clock's for market times); `seconds`, `label` (" UTC"/" local"), `date: "always"`.
  function formatTime(ms, opts = {}) {
    if (typeof ms !== "number" || !Number.isFinite(ms)) return "—";
    const utc = (opts.zone || zone()) === "utc";
    const [y, mo, d, h, mi, s] = fields(new Date(ms), utc);
    const [ny, nmo, nd] = fields(new Date(opts.now === undefined ? Date.now() : opts.now), utc);
    const today = y === ny && mo === nmo && d === nd;
    let text = pad2(h) + ":" + pad2(mi) + (opts.seconds ? ":" + pad2(s) : "");
    if (!today || opts.date === "always") text = `${y}-${pad2(mo)}-${pad2(d)} ` + text;
    return opts.label ? text + " " + zoneLabel() : text;
  }

  function prefButton(id, label, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "linklike pref";
    b.id = id;
    b.addEventListener("click", onClick);
    label(b);
    return b;
  }
  function prefControls() {
    const themeLabel = (b) => {
      const light = theme() === "light";
      b.textContent = light ? "\u263E" : "\u2600";
      b.title = light ? "Switch to the dark theme" : "Switch to the light theme";
      b.setAttribute("aria-label", b.title);
    };
    const zoneText = (b) => {
      b.textContent = zone() === "utc" ? "UTC" : "Local";
      b.title = zone() === "utc" ? "Times are shown in UTC: switch to your local time"
        : "Times are shown in your local time: switch to UTC";
      b.setAttribute("aria-label", b.title);
    };
    const t = prefButton("pref-theme", themeLabel, () => { setTheme(theme() === "light" ? "dark" : "light"); themeLabel(t); });
    const z = prefButton("pref-zone", zoneText, () => { setZone(zone() === "utc" ? "local" : "utc"); zoneText(z); });
    return [z, t];
  }

  function menuToggle(nav) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "nav-toggle linklike";
    b.id = "nav-toggle";
    b.textContent = "\u2630 Menu";
    b.setAttribute("aria-expanded", "false");
    b.setAttribute("aria-controls", "site-nav");
    b.addEventListener("click", () => {
      const open = nav.classList.toggle("open");
      b.setAttribute("aria-expanded", String(open));
    });
    return b;
  }

  async function renderNav() {
    const nav = document.getElementById("site-nav");
    if (!nav) return;
    if (!document.getElementById("nav-toggle")) nav.before(menuToggle(nav));
    nav.replaceChildren(...SECTIONS.map(([href, text, key]) => link(href, text, { section: key })));
    const grow = document.createElement("span");
    grow.className = "grow";
    nav.append(grow);
    const user = await me();
    if (!user) {
      nav.append(link("/signin", "Sign in", { nav: "signin" }), link("/signup", "Sign up", { nav: "signup" }));
      nav.append(...prefControls());
      nav.dataset.state = "anonymous";
      return;
    }
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = user.email || (user.wallets && user.wallets[0] ? user.wallets[0].address : "signed in");
    const plan = document.createElement("span");
    plan.className = "plan-badge";
    plan.textContent = user.plan;
    nav.append(who);
    if (!document.getElementById("plan-name")) nav.append(plan);  // the dashboard shows the plan itself
    if (user.role === "admin") nav.append(link("/admin", "Admin", { nav: "admin" }));
    nav.append(bell());
    nav.append(link("/settings", "Settings", { nav: "settings" }));
    const out = document.createElement("button");
    out.className = "linklike";
    out.type = "button";
    out.textContent = "Sign out";
    out.dataset.nav = "signout";
    out.addEventListener("click", async () => {
      await api("POST", "/api/v1/auth/signout");
      location.href = "/signin";
    });
    nav.append(out);
    nav.append(...prefControls());
    nav.dataset.state = "signed-in";
  }

  // --- narrow screens: a table marked `stack-narrow` shows each row as a card, each cell labelled with its
  // column's heading (CSS reads data-label). Rows are labelled as they are added, whoever renders them.
  function labelRows(table) {
    const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
    for (const tr of table.tBodies[0] ? table.tBodies[0].rows : []) {
      [...tr.cells].forEach((td, i) => {
        if (!td.dataset.label && heads[i]) td.dataset.label = heads[i];
      });
    }
  }
  // Every page's list tables (`table.list`) stack too, but a comparison matrix (`.compare`, `.matrix`).
  function stackTables() {
    for (const table of document.querySelectorAll("table.list:not(.compare):not(.matrix)")) {
      if (table.tHead) table.classList.add("stack-narrow");
    }
    for (const table of document.querySelectorAll("table.stack-narrow")) {
      labelRows(table);
      if (table.tBodies[0]) new MutationObserver(() => labelRows(table)).observe(table.tBodies[0], { childList: true });
    }
  }

  // --- the notification centre: a bell with the unread in-app count, a dropdown of the latest, mark as read ---
  // The count and list come from GET /api/v1/account/notifications?channel=in_app; new ones arrive live as the
  // Socket.IO `notification` event in the user's room, and are added from the event itself (the row may not be
  // marked sent yet when the event lands, so a re-read could miss it).
  const BELL_LATEST = 10;
  const bellState = { unread: 0, items: [] };

  function bell() {
    const wrap = document.createElement("span");
    wrap.className = "bell";
    wrap.id = "nav-bell";
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "linklike";
    btn.id = "nav-bell-button";
    btn.setAttribute("aria-label", "Notifications");
    btn.append("\u{1F514} ");
    const count = document.createElement("span");
    count.className = "bell-count";
    count.id = "nav-bell-count";
    btn.append(count);
    const menu = document.createElement("div");
    menu.className = "bell-menu hidden";
    menu.id = "nav-bell-menu";
    btn.addEventListener("click", () => menu.classList.toggle("hidden"));
    wrap.append(btn, menu);
    loadBell().then(listenBell);
    return wrap;
  }

  async function loadBell() {
    const answer = await api("GET", `/api/v1/account/notifications?channel=in_app&limit=${BELL_LATEST}`);
    if (!answer.ok) return;
    bellState.unread = answer.data.unread || 0;
    bellState.items = answer.data.data.filter((n) => n.status === "sent").map((n) => ({
      id: n.id, title: n.title, text: n.text, url: n.url, time: n.sent_at_ms || n.created_at_ms,
      read: n.read_at_ms !== null,
    }));
    drawBell();
  }

  function drawBell() {
    const count = document.getElementById("nav-bell-count");
    const menu = document.getElementById("nav-bell-menu");
    if (!count || !menu) return;
    count.textContent = bellState.unread > 0 ? String(bellState.unread) : "";
    count.dataset.count = String(bellState.unread);
    const head = document.createElement("div");
    head.className = "bell-head";
    const all = document.createElement("button");
    all.type = "button";
    all.className = "linklike";
    all.id = "nav-bell-read-all";
    all.textContent = "Mark all read";
    all.disabled = bellState.unread === 0;
    all.addEventListener("click", () => markRead({ all: true }));
    head.append("Notifications", all);
    const list = document.createElement("ul");
    list.className = "bell-list";
    for (const n of bellState.items) {
      const li = document.createElement("li");
      li.dataset.notificationId = String(n.id);
      li.className = n.read ? "read" : "unread";
      const title = document.createElement(n.url ? "a" : "strong");
      if (n.url) title.href = n.url;
      title.textContent = n.title || "Notification";
      const text = document.createElement("div");
      text.className = "muted";
      text.textContent = [n.text || "", n.time ? new Date(n.time).toLocaleString() : ""].filter(Boolean).join(" · ");
      li.append(title, text);
      if (!n.read) li.addEventListener("click", () => markRead({ ids: [n.id] }));
      list.append(li);
    }
    if (!bellState.items.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "Nothing yet.";
      list.append(li);
    }
    menu.replaceChildren(head, list);
  }

  async function markRead(body) {
    const answer = await api("POST", "/api/v1/account/notifications/read", body);
    if (!answer.ok) return;
    await loadBell();
  }

  function onNotification(n) {
    if (!n || bellState.items.some((x) => x.id === n.id)) return;  // each once, however often it is pushed
    bellState.items.unshift({ id: n.id, title: n.title, text: n.text, url: n.url, time: n.time, read: false });
    bellState.items.length = Math.min(bellState.items.length, BELL_LATEST);
    bellState.unread += 1;
    drawBell();
  }

  // The Socket.IO client is vendored; pages that don't load it themselves get it here (a same-origin script,
  // which the CSP allows).
  function listenBell() {
    const connect = () => {
      const socket = window.io({ transports: ["websocket", "polling"], reconnectionDelay: 1000,
        reconnectionDelayMax: 30000 });
      socket.on("notification", onNotification);
      const wrap = document.getElementById("nav-bell");
      socket.on("connect", () => { if (wrap) wrap.dataset.live = "connected"; });
      socket.on("disconnect", () => { if (wrap) wrap.dataset.live = "off"; });
    };
    if (window.io) return connect();
    const script = document.createElement("script");
    script.src = "/vendor/socket.io.min.js";
    script.addEventListener("load", connect);
    document.head.append(script);
  }

  // --- WebAuthn: the JSON options the server sends (base64url strings) ⇄ the browser's ArrayBuffers ---
  function fromB64url(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer;
  }
  function toB64url(buffer) {
    let bin = "";
    new Uint8Array(buffer).forEach((b) => { bin += String.fromCharCode(b); });
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function publicKeyOptions(answer) {
    // Accept {options: {...}}, {publicKey: {...}} or the options themselves; options may arrive as a JSON string.
    let opts = answer.options || answer.publicKey || answer;
    if (typeof opts === "string") opts = JSON.parse(opts);
    if (opts.publicKey) opts = opts.publicKey;
    const out = Object.assign({}, opts, { challenge: fromB64url(opts.challenge) });
    if (opts.user) out.user = Object.assign({}, opts.user, { id: fromB64url(opts.user.id) });
    for (const key of ["allowCredentials", "excludeCredentials"]) {
      if (opts[key]) out[key] = opts[key].map((c) => Object.assign({}, c, { id: fromB64url(c.id) }));
    }
    return out;
  }
  function credentialJson(cred) {
    const r = cred.response;
    const response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      if (r.getTransports) response.transports = r.getTransports();
    }
    if (r.authenticatorData) response.authenticatorData = toB64url(r.authenticatorData);
    if (r.signature) response.signature = toB64url(r.signature);
    if (r.userHandle) response.userHandle = toB64url(r.userHandle);
    return { id: cred.id, rawId: toB64url(cred.rawId), type: cred.type, response,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      authenticatorAttachment: cred.authenticatorAttachment || undefined };
  }

  // A wall-clock moment with its date, in the chosen zone: "2025-10-10 20:01 UTC".
  function when(ms) {
    return ms ? formatTime(ms, { date: "always", label: true }) : "—";
  }

  window.MP = { api, fetch: authFetch, signIn, errorText, say, me, nextPath, fromB64url, toB64url, publicKeyOptions,
    credentialJson, when, formatTime, zone, zoneLabel, theme };
  document.documentElement.dataset.zone = zone();
  document.addEventListener("DOMContentLoaded", () => { labelZones(); stackTables(); renderNav(); });
})();
