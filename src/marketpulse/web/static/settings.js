// /settings: profile and wallets, password, API keys, two-factor, passkeys, sessions, notification preferences,
// export and account deletion. Each section talks to its own endpoints and reports in its own message box.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);

  function cells(row, values) {
    for (const v of values) {
      const td = document.createElement("td");
      if (v instanceof Node) td.append(v); else td.textContent = v;
      row.append(td);
    }
    return row;
  }

  function button(text, onClick, cls) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "btn " + (cls || "secondary");
    b.textContent = text;
    b.addEventListener("click", onClick);
    return b;
  }

  // --- profile and wallets ---
  async function profile() {
    const answer = await MP.api("GET", "/api/v1/auth/me");
    if (!answer.ok) {
      location.href = "/signin?next=/settings";
      return null;
    }
    const me = answer.data;
    $("profile-email").textContent = me.email || "— (wallet account)";
    $("profile-plan").textContent = me.plan;
    $("profile-role").textContent = me.role;
    $("profile-status").textContent = me.status;
    $("profile-wallets").textContent = me.wallets.length
      ? me.wallets.map((w) => `${w.chain}: ${w.address}`).join("\n") : "none linked";
    showSecurity(me);
    return me;
  }

  // Offer only the action that applies: "set up" while two-factor is off, "turn off" while it is on.
  function showSecurity(me) {
    $("two-factor-state").textContent = me.two_factor ? "on" : "off";
    $("two-factor-state").dataset.on = String(Boolean(me.two_factor));
    $("totp-enrol").classList.toggle("hidden", Boolean(me.two_factor));
    $("totp-off").classList.toggle("hidden", !me.two_factor);
    const n = me.passkeys || 0;
    $("passkey-state").textContent = n ? `${n} passkey${n === 1 ? "" : "s"} registered.` : "No passkeys registered.";
    $("passkey-state").dataset.count = String(n);
  }

  for (const chain of ["ethereum", "solana"]) {
    $(`link-${chain}`).addEventListener("click", async () => {
      try {
        const answer = await MPWallet[chain]();
        if (!answer.ok) return MP.say("profile-msg", MP.errorText(answer));
        MP.say("profile-msg", "Wallet linked.", "ok");
        profile();
      } catch (err) {
        MP.say("profile-msg", `The wallet refused: ${err.message || err}`);
      }
    });
  }

  $("password-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(ev.target);
    const answer = await MP.api("POST", "/api/v1/auth/change-password",
      { current_password: data.get("current_password"), new_password: data.get("new_password") });
    MP.say("password-msg", answer.ok ? "Password changed: your other sessions have ended." : MP.errorText(answer),
      answer.ok ? "ok" : "bad");
    if (answer.ok) { ev.target.reset(); sessions(); }
  });

  // --- API keys ---
  async function keys() {
    const answer = await MP.api("GET", "/api/v1/account/api-keys");
    if (!answer.ok) return MP.say("key-msg", MP.errorText(answer));
    $("key-list").tBodies[0].replaceChildren(...answer.data.data.map((k) => {
      const row = document.createElement("tr");
      row.dataset.keyId = k.id;
      return cells(row, [k.name, k.prefix, k.scopes.join(", "), MP.when(k.created_at_ms), MP.when(k.last_used_at_ms),
        button("Revoke", async () => {
          const gone = await MP.api("DELETE", `/api/v1/account/api-keys/${encodeURIComponent(k.id)}`);
          MP.say("key-msg", gone.ok ? `Key ${k.name} revoked.` : MP.errorText(gone), gone.ok ? "ok" : "bad");
          keys();
        }, "danger")]);
    }));
  }

  $("key-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(ev.target);
    const answer = await MP.api("POST", "/api/v1/account/api-keys",
      { name: data.get("name"), scopes: data.getAll("scopes") });
    if (!answer.ok) return MP.say("key-msg", MP.errorText(answer));
    MP.say("key-msg", "");
    $("new-key").textContent = answer.data.key;
    $("new-key-box").classList.remove("hidden");
    ev.target.reset();
    keys();
  });

  // --- two-factor (TOTP) ---
  $("totp-enrol").addEventListener("click", async () => {
    const answer = await MP.api("POST", "/api/v1/account/two-factor/enrol");
    if (!answer.ok) return MP.say("totp-msg", MP.errorText(answer));
    $("totp-secret").textContent = answer.data.secret;
    $("totp-uri").textContent = answer.data.otpauth_uri;
    $("totp-setup").classList.remove("hidden");
    MP.say("totp-msg", "");
  });

  $("totp-confirm-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const answer = await MP.api("POST", "/api/v1/account/two-factor/confirm",
      { code: String(new FormData(ev.target).get("code")).trim() });
    if (!answer.ok) return MP.say("totp-msg", MP.errorText(answer));
    $("totp-setup").classList.add("hidden");
    $("recovery-codes").textContent = answer.data.recovery_codes.join("\n");
    $("recovery-box").classList.remove("hidden");
    MP.say("totp-msg", "Two-factor is on.", "ok");
    profile();
  });

  $("totp-disable-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const answer = await MP.api("POST", "/api/v1/account/two-factor/disable",
      { code: String(new FormData(ev.target).get("code")).trim() });
    MP.say("totp-msg", answer.ok ? "Two-factor is off." : MP.errorText(answer), answer.ok ? "ok" : "bad");
    if (answer.ok) { ev.target.reset(); $("recovery-box").classList.add("hidden"); profile(); }
  });

  // --- passkeys ---
  async function passkeys() {
    const answer = await MP.api("GET", "/api/v1/account/passkeys");
    if (answer.status === 404) {
      $("passkey-register").disabled = true;
      return MP.say("passkey-msg", "Passkeys aren't available on this server.");
    }
    if (!answer.ok) return MP.say("passkey-msg", MP.errorText(answer));
    $("passkey-list").tBodies[0].replaceChildren(...answer.data.data.map((p) => {
      const row = document.createElement("tr");
      row.dataset.passkeyId = p.id;
      return cells(row, [p.name, MP.when(p.created_at_ms), MP.when(p.last_used_at_ms),
        button("Delete", async () => {
          const gone = await MP.api("DELETE", `/api/v1/account/passkeys/${encodeURIComponent(p.id)}`);
          MP.say("passkey-msg", gone.ok ? "Passkey deleted." : MP.errorText(gone), gone.ok ? "ok" : "bad");
          passkeys();
          profile();
        }, "danger")]);
    }));
  }

  $("passkey-register").addEventListener("click", async () => {
    if (!window.PublicKeyCredential) return MP.say("passkey-msg", "This browser has no passkey support.");
    const options = await MP.api("POST", "/api/v1/account/passkeys/register/options");
    if (!options.ok) return MP.say("passkey-msg", MP.errorText(options));
    try {
      const cred = await navigator.credentials.create({ publicKey: MP.publicKeyOptions(options.data) });
      const name = $("passkey-name").value.trim() || "passkey";
      const answer = await MP.api("POST", "/api/v1/account/passkeys/register/verify",
        { credential: MP.credentialJson(cred), name });
      MP.say("passkey-msg", answer.ok ? "Passkey added." : MP.errorText(answer), answer.ok ? "ok" : "bad");
      passkeys();
      profile();
    } catch (err) {
      MP.say("passkey-msg", `No passkey was made: ${err.message || err}`);
    }
  });

  // --- sessions ---
  async function sessions() {
    const answer = await MP.api("GET", "/api/v1/account/sessions");
    if (!answer.ok) return MP.say("sessions-msg", MP.errorText(answer));
    $("session-list").tBodies[0].replaceChildren(...answer.data.data.map((s) => {
      const row = document.createElement("tr");
      row.dataset.sessionId = s.id;
      const action = s.current ? "this session" : button("Sign out", () => endSession(s.id));
      return cells(row, [MP.when(s.created_at_ms), MP.when(s.last_used_at_ms), s.client || "—", action]);
    }));
    $("sessions-others").onclick = async () => {
      for (const s of answer.data.data.filter((x) => !x.current)) await endSession(s.id, true);
      sessions();
    };
  }

  async function endSession(id, quiet) {
    const answer = await MP.api("DELETE", `/api/v1/account/sessions/${encodeURIComponent(id)}`);
    MP.say("sessions-msg", answer.ok ? "Signed out." : MP.errorText(answer), answer.ok ? "ok" : "bad");
    if (!quiet) sessions();
  }

  // --- notifications, export, deletion ---
  $("prefs-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const saved = await MPPrefs.save(ev.target);
    MP.say("prefs-msg", saved.ok ? "Preferences saved." : MP.errorText(saved), saved.ok ? "ok" : "bad");
  });

  $("export").addEventListener("click", async () => {
    const answer = await MP.api("GET", "/api/v1/account/export");
    if (!answer.ok) return MP.say("erase-msg", MP.errorText(answer));
    const link = $("export-link");
    link.href = URL.createObjectURL(new Blob([JSON.stringify(answer.data, null, 2)], { type: "application/json" }));
    link.classList.remove("hidden");
    link.click();
  });

  $("erase-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!window.confirm("Delete your account and everything it owns? This can't be undone.")) return;
    const answer = await MP.api("DELETE", "/api/v1/account", { password: new FormData(ev.target).get("password") });
    if (answer.ok) { location.href = "/"; return; }
    MP.say("erase-msg", MP.errorText(answer));
  });

  (async () => {
    const me = await profile();
    if (!me) return;
    keys();
    passkeys();
    sessions();
    MPPrefs.fill($("prefs-form"), me);
  })();
})();
