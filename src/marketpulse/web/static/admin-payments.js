// The admin console's payments block in a user's details: their plan, subscription and credits
// (GET /api/v1/admin/users/{id}/payments) and a Refund button per card purchase of credits. It follows whichever
// user admin.js shows (the details' id), so admin.js needs no knowledge of payments.
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const when = (ms) => (ms ? new Date(ms).toISOString().slice(0, 19).replace("T", " ") : "—");

  function cell(content) {
    const td = document.createElement("td");
    if (content instanceof Node) td.append(content); else td.textContent = String(content);
    return td;
  }

  async function refund(userId, purchase) {
    if (!window.confirm(`Refund ${purchase.pack} (${purchase.credits} credits) by card? The credits leave the ` +
                        "balance.")) return;
    const result = await window.MP.api("POST", `/api/v1/admin/users/${encodeURIComponent(userId)}/payments/` +
                                       `${encodeURIComponent(purchase.session_id)}/refund`);
    if (!result.ok) window.alert(window.MP.errorText(result));
    await load(userId);
  }

  async function load(userId) {
    const result = await window.MP.api("GET", `/api/v1/admin/users/${encodeURIComponent(userId)}/payments`);
    const summary = $("detail-billing");
    if (!result.ok) {
      summary.textContent = window.MP.errorText(result);
      return;
    }
    const b = result.data.billing;
    summary.textContent = `Subscription: ${b.status}${b.subscription_plan ? " (" + b.subscription_plan + ")" : ""}, ` +
      `renews ${when(b.renews_at_ms)}; credits ${b.credit_balance}${b.credit_debt ? ", owed " + b.credit_debt : ""}; ` +
      `invoices ${b.invoices.length}`;
    $("detail-purchases").tBodies[0].replaceChildren(...result.data.purchases.map((p) => {
      const tr = document.createElement("tr");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Refund";
      button.disabled = p.taken_back >= p.credits || !p.payment_intent;
      button.addEventListener("click", () => refund(userId, p));
      tr.append(cell(when(p.created_at_ms)), cell(p.pack), cell(p.credits), cell(p.taken_back || "—"), cell(button));
      return tr;
    }));
  }

  document.addEventListener("DOMContentLoaded", () => {
    const id = $("detail-id");
    if (!id) return;
    new MutationObserver(() => { if (id.textContent) load(id.textContent); })
      .observe(id, { childList: true, characterData: true, subtree: true });
  });
})();
