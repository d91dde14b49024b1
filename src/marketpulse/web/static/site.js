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
    if (location.pathname === href) a.setAttribute("aria-current", "page");
    return a;
  }

  async function renderNav() {
    const nav = document.getElementById("site-nav");
    if (!nav) return;
    nav.replaceChildren(link("/", "Dashboard"), link("/alerts", "Alerts"), link("/backtests", "Backtests"),
      link("/paper", "Paper"), link("/signals", "Signals"), link("/pricing", "Pricing"));
    const grow = document.createElement("span");
    grow.className = "grow";
    nav.append(grow);
    const user = await me();
    if (!user) {
      nav.append(link("/signin", "Sign in", { nav: "signin" }), link("/signup", "Sign up", { nav: "signup" }));
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
    nav.dataset.state = "signed-in";
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
    bellState.items = answer.data.notifications.filter((n) => n.status === "sent").map((n) => ({
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

  function when(ms) {
    return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 16) + " UTC" : "—";
  }

  window.MP = { api, fetch: authFetch, signIn, errorText, say, me, nextPath, fromB64url, toB64url, publicKeyOptions,
    credentialJson, when };
  document.addEventListener("DOMContentLoaded", renderNav);
})();
