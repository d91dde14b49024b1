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
    nav.replaceChildren(link("/", "Dashboard"), link("/backtests", "Backtests"), link("/paper", "Paper"),
      link("/pricing", "Pricing"));
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
