// Paying by card: POST /api/v1/payments/checkout and off to Stripe's Checkout page (the fake Stripe's in `pulse
// demo`). Used by /pricing (a row per paid plan and credit pack, from GET /api/v1/payments/products) and by the
// billing section of /settings (the credit-pack buttons).
"use strict";

(function () {
  async function checkout(body, msg) {
    if (!(await MP.me())) return MP.signIn();
    MP.say(msg, "Opening the payment page…", "ok");
    const answer = await MP.api("POST", "/api/v1/payments/checkout", body);
    if (!answer.ok) return MP.say(msg, MP.errorText(answer));
    location.assign(answer.data.url);
  }

  function button(text, onClick, data) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "btn";
    b.textContent = text;
    Object.assign(b.dataset, data || {});
    b.addEventListener("click", onClick);
    return b;
  }

  async function renderPricing(table) {
    const answer = await MP.api("GET", "/api/v1/payments/products");
    if (!answer.ok) return MP.say("pay-msg", MP.errorText(answer));
    table.tBodies[0].replaceChildren(...answer.data.data.map((p) => {
      const row = document.createElement("tr");
      row.dataset.product = p.name;
      const what = document.createElement("td");
      what.textContent = p.title;
      const price = document.createElement("td");
      price.textContent = `$${p.price_usd} ${p.per === "month" ? "/ month" : "once"}`;
      const actions = document.createElement("td");
      const body = p.kind === "plan" ? { plan: p.name } : { credit_pack: p.name };
      const card = button("Pay by card", () => checkout(body, "pay-msg"), { pay: "card", product: p.name });
      card.disabled = !p.available;
      if (!p.available) card.title = "Card payments are not configured on this server";
      const usdt = document.createElement("a");
      usdt.className = "btn secondary";
      usdt.textContent = "Pay with USDT";
      usdt.dataset.pay = "usdt";
      usdt.href = "/settings?pay=usdt&product=" + encodeURIComponent(p.name) + "#billing";
      actions.append(card, " ", usdt);
      row.append(what, price, actions);
      return row;
    }));
  }

  document.addEventListener("DOMContentLoaded", () => {
    const table = document.getElementById("pay-table");
    if (table) renderPricing(table);
    for (const b of document.querySelectorAll("[data-credit-pack]")) {
      b.addEventListener("click", () => checkout({ credit_pack: b.dataset.creditPack }, "billing-msg"));
    }
  });
  window.MPPay = { checkout };
})();
