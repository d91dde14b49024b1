// /signup: create the account, then the "check your mail" page.
"use strict";

document.getElementById("signup-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const email = String(form.get("email"));
  const answer = await MP.api("POST", "/api/v1/auth/signup", { email, password: form.get("password") });
  if (answer.ok) {
    location.href = "/verify?email=" + encodeURIComponent(email);
    return;
  }
  MP.say("signup-msg", MP.errorText(answer));
});
