// /forgot-password: ask for a reset link (the answer is the same whether or not the address has an account).
"use strict";

document.getElementById("forgot-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const answer = await MP.api("POST", "/api/v1/auth/request-password-reset",
    { email: new FormData(ev.target).get("email") });
  MP.say("forgot-msg", answer.ok ? "If the address has an account, a reset link is on its way." : MP.errorText(answer),
    answer.ok ? "ok" : "bad");
});
