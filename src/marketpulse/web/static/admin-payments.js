// The admin console's payments block in a user's details: their plan, subscription and credits
// (GET /api/v1/admin/users/{id}/payments) and a Refund button per card purchase of credits. It follows whichever
// user admin.js shows (the details' id), so admin.js needs no knowledge of payments. And the Payments tab: every
// payment (GET /api/v1/admin/payments: card invoices, card credit purchases, USDT invoices), newest first, with a
// Refund button on card credit purchases not refunded yet.
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

  // ---- the Payments tab ----
  const KINDS = { card_invoice: "card invoice", card_purchase: "card credits", usdt_invoice: "USDT invoice" };
  let nextCursor = null;

  async function refundListed(p) {
    if (!window.confirm(`Refund ${p.product} (${p.amount} ${p.currency}) of ${p.email || p.owner_id} by card? ` +
                        "The credits leave the balance.")) return;
    const result = await window.MP.api("POST", `/api/v1/admin/users/${encodeURIComponent(p.owner_id)}/payments/` +
                                       `${encodeURIComponent(p.id)}/refund`);
    if (!result.ok) window.alert(window.MP.errorText(result));
    await listPayments(false);
  }

  async function listPayments(more) {
    const kind = $("payment-filters").elements.kind.value;
    const params = new URLSearchParams({ limit: "50" });
    if (kind) params.set("kind", kind);
    if (more && nextCursor) params.set("cursor", nextCursor);
    const result = await window.MP.api("GET", `/api/v1/admin/payments?${params}`);
    const tbody = $("payments-table").tBodies[0];
    if (!result.ok) {
      tbody.replaceChildren();
      window.alert(window.MP.errorText(result));
      return;
    }
    const rows = result.data.data.map((p) => {
      const tr = document.createElement("tr");
      tr.dataset.kind = p.kind;
      tr.dataset.id = p.id;
      let action = "";
      if (p.kind === "card_purchase") {
        action = document.createElement("button");
        action.type = "button";
        action.textContent = "Refund";
        action.disabled = !p.refundable;
        action.addEventListener("click", () => refundListed(p));
      }
      tr.append(cell(when(p.created_at_ms)), cell(KINDS[p.kind] || p.kind), cell(p.email || p.owner_id),
                cell(p.product), cell(`${p.amount} ${p.currency}`), cell(p.status), cell(p.note || ""), cell(action));
      return tr;
    });
    if (more) tbody.append(...rows); else tbody.replaceChildren(...rows);
    nextCursor = result.data.next;
    $("payments-more").hidden = !nextCursor;
  }

  document.addEventListener("admin-tab", (event) => { if (event.detail === "payments") listPayments(false); });

  document.addEventListener("DOMContentLoaded", () => {
    const filters = $("payment-filters");
    if (filters) {
      filters.addEventListener("submit", (event) => { event.preventDefault(); listPayments(false); });
      $("payments-more").addEventListener("click", () => listPayments(true));
    }
    const id = $("detail-id");
    if (!id) return;
    new MutationObserver(() => { if (id.textContent) load(id.textContent); })
      .observe(id, { childList: true, characterData: true, subtree: true });
  });
})();
