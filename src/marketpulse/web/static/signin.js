// /signin: email + password (with the TOTP or passkey second step), Google, Ethereum and Solana wallets, passkeys.
"use strict";

(function () {
  let challenge = null;  // the second-factor challenge a 403 second_factor_required handed out
  let secondFactorOptions = null;  // passkey options for the second step, when the server offered them

  const done = () => { location.href = MP.nextPath("/"); };
  const otherMsg = (text, kind) => MP.say("other-msg", text, kind);

  function askSecondFactor(detail) {
    challenge = detail.challenge;
    secondFactorOptions = detail.passkey_options || null;
    document.getElementById("password-step").classList.add("hidden");
    document.getElementById("second-factor-step").classList.remove("hidden");
    document.getElementById("second-factor-passkey").classList.toggle("hidden", !secondFactorOptions);
    document.querySelector("#second-factor-form [name=code]").focus();
  }

  // Every sign-in path answers alike: tokens (cookies are set) → go on; 403 second_factor_required → step two.
  function finish(answer, msgId) {
    if (answer.ok) return done();
    const detail = answer.data && answer.data.detail;
    if (answer.status === 403 && detail && detail.reason === "second_factor_required") return askSecondFactor(detail);
    if (answer.status === 403 && detail && detail.reason === "email_not_verified") {
      MP.say(msgId, "Confirm your address first: open the link we mailed you (or ask for a new one on the verify page).");
      return;
    }
    MP.say(msgId, MP.errorText(answer));
  }

  // Google sign-in of a two-factor user comes back as /signin?next=…#second_factor=<challenge>.
  const fromGoogle = new URLSearchParams(location.hash.slice(1)).get("second_factor");
  if (fromGoogle) {
    history.replaceState(null, "", location.pathname + location.search);  // the challenge leaves the address bar
    askSecondFactor({ challenge: fromGoogle });
  }

  document.getElementById("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    MP.say("signin-msg", "");
    finish(await MP.api("POST", "/api/v1/auth/signin",
      { email: form.get("email"), password: form.get("password") }), "signin-msg");
  });

  document.getElementById("second-factor-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const code = String(new FormData(ev.target).get("code")).trim();
    const answer = await MP.api("POST", "/api/v1/auth/signin/second-factor", { challenge, code });
    if (answer.ok) return done();
    MP.say("second-factor-msg", MP.errorText(answer));
  });

  document.getElementById("second-factor-passkey").addEventListener("click", async () => {
    try {
      const cred = await navigator.credentials.get({ publicKey: MP.publicKeyOptions(secondFactorOptions) });
      const answer = await MP.api("POST", "/api/v1/auth/signin/second-factor",
        { challenge, credential: MP.credentialJson(cred) });
      if (answer.ok) return done();
      MP.say("second-factor-msg", MP.errorText(answer));
    } catch (err) {
      MP.say("second-factor-msg", `The passkey didn't answer: ${err.message || err}`);
    }
  });

  // Google: the start endpoint redirects to Google; it answers 404 where Google sign-in isn't configured.
  document.getElementById("signin-google").addEventListener("click", async () => {
    const start = "/api/v1/auth/google/start?next=" + encodeURIComponent(MP.nextPath("/"));
    const probe = await fetch(start, { method: "GET", redirect: "manual", credentials: "same-origin" });
    if (probe.status === 404 || probe.status >= 500) {
      otherMsg("Google sign-in isn't set up on this server.");
      return;
    }
    location.href = start;
  });

  for (const chain of ["ethereum", "solana"]) {
    document.getElementById(`signin-${chain}`).addEventListener("click", async () => {
      try {
        finish(await MPWallet[chain](), "other-msg");
      } catch (err) {
        otherMsg(`The wallet refused: ${err.message || err}`);
      }
    });
  }

  // Google's callback hands a second step over in the fragment (#second_factor=<challenge>, never sent to a
  // server): ask for it here, with a passkey challenge in case the account has one.
  const handed = new URLSearchParams(location.hash.slice(1)).get("second_factor");
  if (handed) {
    history.replaceState(null, "", location.pathname + location.search);
    MP.api("POST", "/api/v1/auth/passkeys/signin/options").then((options) => {
      askSecondFactor({ challenge: handed, passkey_options: options.ok ? options.data.options : null });
    });
  }

  document.getElementById("signin-passkey").addEventListener("click", async () => {
    if (!window.PublicKeyCredential) return otherMsg("This browser has no passkey support.");
    // With an address typed in, that account's passkeys are offered; without, the browser's discoverable ones.
    const email = document.querySelector("#signin-form [name=email]").value.trim();
    const options = await MP.api("POST", "/api/v1/auth/passkeys/signin/options", email ? { email } : undefined);
    if (!options.ok) {
      return otherMsg(options.status === 404 ? "Passkey sign-in isn't available on this server." : MP.errorText(options));
    }
    try {
      const cred = await navigator.credentials.get({ publicKey: MP.publicKeyOptions(options.data) });
      finish(await MP.api("POST", "/api/v1/auth/passkeys/signin/verify",
        { challenge_id: options.data.challenge_id, credential: MP.credentialJson(cred) }), "other-msg");
    } catch (err) {
      otherMsg(`No passkey was used: ${err.message || err}`);
    }
  });
})();
