// The billing section of /settings (GET /api/v1/payments/subscription: plan, renewal, invoices, credits) and the
// Stripe Customer Portal button; the checkout pages' summary after a payment.
"use strict";

(function () {
  const money = (cents, currency) => `${(cents / 100).toFixed(2)} ${String(currency || "usd").toUpperCase()}`;

  function text(id, value) {
    const el = document.getElementById(id);
    if (el) el.textContent = value;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const c of cells) {
      const td = document.createElement("td");
      if (c instanceof Node) td.append(c); else td.textContent = c;
      tr.append(td);
    }
    return tr;
  }

  function invoiceLink(url) {
    if (!url) return "";
    const a = document.createElement("a");
    a.href = url;
    a.textContent = "View";
    a.rel = "noopener";
    return a;
  }

  async function load() {
    const answer = await MP.api("GET", "/api/v1/payments/subscription");
    if (answer.status === 401) return MP.signIn();
    if (!answer.ok) return MP.say("billing-msg", MP.errorText(answer));
    const b = answer.data;
    text("billing-plan", b.plan);
    text("billing-status", b.status === "none" ? "none" : `${b.status}${b.subscription_plan ? " (" +
      b.subscription_plan + ")" : ""}${b.cancel_at_period_end ? ", ends at the period's end" : ""}`);
    text("billing-renews", MP.when(b.renews_at_ms));
    text("billing-credits", `${b.credit_balance.toLocaleString("en-US")}${b.credit_debt ? ` (owed: ${b.credit_debt})`
      : ""}`);
    MP.say("billing-grace", b.grace_ends_at_ms ? `Your last payment failed: update your card before ` +
      `${MP.when(b.grace_ends_at_ms)}, or the plan becomes free.` : "", "bad");
    const portal = document.getElementById("billing-portal");
    if (portal) portal.disabled = !b.has_customer;
    const invoices = document.querySelector("#invoice-list tbody");
    if (invoices) {
      invoices.replaceChildren(...b.invoices.map((i) => row([MP.when(i.created_ms), i.status,
        money(i.status === "paid" ? i.amount_paid : i.amount_due, i.currency), invoiceLink(i.hosted_invoice_url)])));
    }
    const purchases = document.querySelector("#purchase-list tbody");
    if (purchases) {
      purchases.replaceChildren(...b.purchases.map((p) => row([MP.when(p.created_at_ms), p.pack,
        p.credits.toLocaleString("en-US"), p.taken_back ? String(p.taken_back) : "—"])));
    }
    text("checkout-plan", b.plan);
    text("checkout-credits", b.credit_balance.toLocaleString("en-US"));
    return b;
  }

  async function openPortal() {
    const answer = await MP.api("POST", "/api/v1/payments/portal");
    if (!answer.ok) return MP.say("billing-msg", MP.errorText(answer));
    location.assign(answer.data.url);
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (!document.getElementById("billing") && !document.getElementById("checkout-plan")) return;
    const portal = document.getElementById("billing-portal");
    if (portal) portal.addEventListener("click", openPortal);
    load();
    // After a checkout the webhook may land a moment after the browser does: look again a few times.
    if (document.getElementById("checkout-plan")) {
      let tries = 0;
      const timer = setInterval(() => { if (++tries > 10) clearInterval(timer); else load(); }, 1500);
    }
  });
})();
