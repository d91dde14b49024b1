// /onboarding: a new user's three steps: plan, a first watchlist, notification preferences.
// Paid plans need checkout, which comes with payments later: choosing one keeps the user on their current plan.
"use strict";

(function () {
  let user = null;
  let chosen = null;

  function show(step) {
    document.querySelectorAll("section[data-step]").forEach((s) => s.classList.toggle("hidden", s.dataset.step !== step));
    document.querySelectorAll("#steps span[data-step]").forEach((s) => {
      if (s.dataset.step === step) s.setAttribute("aria-current", "step"); else s.removeAttribute("aria-current");
    });
  }

  function planCard(plan) {
    const card = document.createElement("button");
    card.type = "button";
    card.className = "plan-card" + (plan.name === user.plan ? " chosen" : "");
    card.dataset.plan = plan.name;
    const price = plan.price_per_month_usd === null ? "Contact us"
      : plan.price_per_month_usd === 0 ? "Free" : `$${plan.price_per_month_usd}/month`;
    const symbols = plan.symbols_in_table === null ? "every symbol" : `top ${plan.symbols_in_table} symbols`;
    const title = document.createElement("b");
    title.textContent = plan.title;
    const priceEl = document.createElement("div");
    priceEl.className = "price";
    priceEl.textContent = price;
    const what = document.createElement("div");
    what.className = "muted";
    what.textContent = `${symbols} · ${plan.open_interest_column ? "open interest" : "no open interest"}`;
    card.append(title, priceEl, what);
    card.addEventListener("click", () => {
      chosen = plan;
      document.querySelectorAll(".plan-card").forEach((c) => c.classList.toggle("chosen", c === card));
      const paid = plan.price_per_month_usd !== 0 && plan.name !== user.plan;
      MP.say("plan-msg", paid ? `Checkout for ${plan.title} comes later (payments aren't open yet): you continue on ` +
        `${user.plan} for now.` : "", "ok");
    });
    return card;
  }

  async function start() {
    user = await MP.me();
    if (!user) {
      location.href = "/signin?next=/onboarding";
      return;
    }
    const plans = await MP.api("GET", "/api/v1/plans");
    if (plans.ok) document.getElementById("plans").replaceChildren(...plans.data.data.map(planCard));
    else MP.say("plan-msg", MP.errorText(plans));
    show("plan");
    MPPrefs.fill(document.getElementById("prefs-form"), user);
  }

  document.getElementById("plan-next").addEventListener("click", () => show("watchlist"));
  document.getElementById("watchlist-skip").addEventListener("click", () => show("prefs"));

  document.getElementById("watchlist-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(ev.target);
    const symbols = String(data.get("symbols")).split(",").map((s) => s.trim().toUpperCase()).filter(Boolean);
    const made = await MP.api("POST", "/api/v1/watchlist", { name: data.get("name"), symbols });
    if (made.status === 404) {
      MP.say("watchlist-msg", "Watchlists aren't available on this server yet: skip this step for now.");
      return;
    }
    if (!made.ok) return MP.say("watchlist-msg", MP.errorText(made));
    show("prefs");
  });

  document.getElementById("prefs-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const saved = await MPPrefs.save(ev.target);
    if (!saved.ok) return MP.say("prefs-msg", MP.errorText(saved));
    MP.say("prefs-msg", "Saved. You're all set.", "ok");
    document.getElementById("onboarding-done").className = "btn";
  });

  start();
})();
