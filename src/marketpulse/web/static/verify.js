// /verify: "check your mail", with a resend.
"use strict";

(function () {
  const email = new URLSearchParams(location.search).get("email");
  if (email) {
    document.getElementById("verify-email").textContent = email;
    document.querySelector("#resend-form [name=email]").value = email;
  }
  document.getElementById("resend-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const answer = await MP.api("POST", "/api/v1/auth/resend-verification",
      { email: new FormData(ev.target).get("email") });
    MP.say("resend-msg", answer.ok ? "If that address needs it, a new link is on its way." : MP.errorText(answer),
      answer.ok ? "ok" : "bad");
  });
})();
