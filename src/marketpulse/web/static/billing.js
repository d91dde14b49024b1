// The billing section of /settings (GET /api/v1/payments/subscription: plan, renewal, invoices, credits), the
// Stripe Customer Portal button, paying in USDT (chain and product → an invoice with address, exact amount and
// expiry; the transaction hash; the invoices' status; in `pulse demo` a demo wallet that pays), and the checkout
// pages' summary after a payment.
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
    text("billing-usdt", b.usdt_plan ? `${b.usdt_plan} until ${MP.when(b.usdt_paid_until_ms)} (renew with a new ` +
      "invoice before then)" : "—");
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

  // --- USDT: chains, an invoice (address, exact amount, expiry), its transaction hash, the invoices' status ---

  const PRODUCT_TITLES = { pro: "Pro plan (a month)", elite: "Elite plan (a month)", credits_100: "100 credits",
    credits_1000: "1,000 credits" };
  let current = null; // the invoice on show

  function showInvoice(inv) {
    current = inv;
    const box = document.getElementById("usdt-invoice");
    if (!box || !inv) return;
    box.hidden = false;
    box.dataset.invoice = inv.id;
    text("usdt-amount", inv.amount);
    text("usdt-token", inv.token);
    text("usdt-inv-chain", inv.chain);
    text("usdt-address", inv.receiving_address);
    text("usdt-expiry", MP.when(inv.expires_at_ms));
    text("usdt-status", inv.status);
    text("usdt-note", inv.note || "");
    const done = !["pending", "confirming", "expired"].includes(inv.status);
    document.getElementById("usdt-tx-form").hidden = done;
  }

  async function loadUsdt() {
    const form = document.getElementById("usdt-form");
    if (!form) return;
    const chains = await MP.api("GET", "/api/v1/payments/usdt/chains");
    const list = chains.ok ? chains.data.data : [];
    document.getElementById("usdt-off").hidden = list.length > 0;
    form.hidden = list.length === 0;
    const select = document.getElementById("usdt-chain");
    if (select.options.length !== list.length) {
      select.replaceChildren(...list.map((c) => new Option(`${c.name} (chain ${c.chain_id})`, c.name)));
    }
    const wallet = await MP.api("GET", "/dev/usdt/wallet");
    const demoPay = document.getElementById("usdt-demo-pay");
    demoPay.hidden = !wallet.ok;
    if (wallet.ok) demoPay.title = `demo wallet ${wallet.data.address}: ${wallet.data.balance} USDT`;
    const answer = await MP.api("GET", "/api/v1/payments/usdt/invoices?limit=20");
    if (!answer.ok) return;
    const tbody = document.querySelector("#usdt-list tbody");
    tbody.replaceChildren(...answer.data.data.map((i) => {
      const tr = row([MP.when(i.created_at_ms), PRODUCT_TITLES[i.product] || i.product, `${i.amount} USDT`, i.chain,
        i.status, i.note || ""]);
      tr.dataset.invoice = i.id;
      tr.dataset.status = i.status;
      return tr;
    }));
    if (current) {
      const fresh = answer.data.data.find((i) => i.id === current.id);
      if (fresh) showInvoice(fresh);
    }
  }

  async function createInvoice(event) {
    event.preventDefault();
    const [field, name] = document.getElementById("usdt-product").value.split(":");
    const body = { chain: document.getElementById("usdt-chain").value, [field]: name };
    const answer = await MP.api("POST", "/api/v1/payments/usdt/invoice", body);
    if (!answer.ok) return MP.say("usdt-msg", MP.errorText(answer), "bad");
    MP.say("usdt-msg", "");
    showInvoice(answer.data);
    await loadUsdt();
  }

  async function submitTx(hash) {
    if (!current) return;
    const answer = await MP.api("POST", `/api/v1/payments/usdt/invoice/${current.id}/tx`, { tx_hash: hash });
    if (!answer.ok) return MP.say("usdt-msg", MP.errorText(answer), "bad");
    MP.say("usdt-msg", answer.data.status === "confirming" ? "Found: waiting for confirmations." : "", "ok");
    showInvoice(answer.data);
    await Promise.all([loadUsdt(), load()]);
  }

  async function demoPay() {
    if (!current) return;
    const answer = await MP.api("POST", "/dev/usdt/pay", { invoice_id: current.id });
    if (!answer.ok) return MP.say("usdt-msg", MP.errorText(answer), "bad");
    document.getElementById("usdt-tx").value = answer.data.tx_hash;
    await submitTx(answer.data.tx_hash);
  }

  function preselect() {
    // /pricing's "Pay with USDT" links here with ?pay=usdt&product=<plan or pack>
    const params = new URLSearchParams(location.search);
    const product = params.get("product");
    if (params.get("pay") !== "usdt" || !product) return;
    const select = document.getElementById("usdt-product");
    const option = [...select.options].find((o) => o.value.endsWith(":" + product));
    if (option) select.value = option.value;
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
    if (document.getElementById("usdt-form")) {
      preselect();
      document.getElementById("usdt-form").addEventListener("submit", createInvoice);
      document.getElementById("usdt-tx-form").addEventListener("submit", (event) => {
        event.preventDefault();
        submitTx(document.getElementById("usdt-tx").value.trim());
      });
      document.getElementById("usdt-demo-pay").addEventListener("click", demoPay);
      loadUsdt();
      // The watcher may find a payment without a submitted hash, and confirmations come with new blocks.
      setInterval(() => { if (current && ["pending", "confirming"].includes(current.status)) loadUsdt(); }, 5000);
    }
    // After a checkout the webhook may land a moment after the browser does: look again a few times.
    if (document.getElementById("checkout-plan")) {
      let tries = 0;
      const timer = setInterval(() => { if (++tries > 10) clearInterval(timer); else load(); }, 1500);
    }
  });
})();
