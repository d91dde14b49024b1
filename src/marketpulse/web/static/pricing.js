// /pricing: one column per plan and one row per field of GET /api/v1/plans, so a new row in the plan table shows
// up here without touching this file. Labels are only a nicer name for known fields; unknown ones read as-is.
"use strict";

(function () {
  const LABELS = {
    price_per_month_usd: "Price per month", symbols_in_table: "Symbols in the live table",
    table_refresh_s: "Table refresh", volume_alerts_listed: "Volume alerts listed",
    open_interest_column: "Open-interest column", alert_batch_minutes: "Alert delivery",
    alert_channels: "Alert channels", active_alert_rules: "Active alert rules", backtests_per_day: "Backtests per day",
    concurrent_paper_positions: "Concurrent paper positions", api_requests_per_minute: "API requests per minute",
    api_requests_per_day: "API requests per day", api_calls_included_per_month: "API calls included per month",
    metered_api_calls: "Calls past the quota billed (card subscription)", monthly_credits: "Monthly credits",
    aliases: "Also called",
    watchlists: "Watchlists", watchlist_symbols: "Symbols per watchlist",
    volume_alert_subscriptions: "Volume-alert subscriptions",
  };
  const FORMAT = {
    price_per_month_usd: (v) => (v === null ? "Contact us" : v === 0 ? "Free" : `$${v}`),
    table_refresh_s: (v) => (v === 0 ? "real time" : v % 60 === 0 ? `every ${v / 60} min` : `every ${v} s`),
    alert_batch_minutes: (v) => (v === 0 ? "instant" : `batched every ${v} min`),
  };

  function cell(key, value) {
    if (FORMAT[key]) return FORMAT[key](value);
    if (value === null) return "Unlimited";
    if (value === true) return "✓";
    if (value === false) return "—";
    if (Array.isArray(value)) return value.length ? value.join(", ") : "—";
    if (typeof value === "number") return value.toLocaleString("en-US");
    return String(value);
  }

  function tr(cells, tag, key) {
    const row = document.createElement("tr");
    if (key) row.dataset.row = key;
    for (const c of cells) {
      const el = document.createElement(tag);
      el.textContent = c;
      row.append(el);
    }
    return row;
  }

  async function render() {
    const answer = await MP.api("GET", "/api/v1/plans");
    if (!answer.ok) return MP.say("pricing-msg", MP.errorText(answer));
    const plans = answer.data.data;
    const table = document.getElementById("plan-table");
    table.tHead.replaceChildren(tr(["", ...plans.map((p) => p.title)], "th"));
    const keys = Object.keys(plans[0]).filter((k) => k !== "name" && k !== "title");
    table.tBodies[0].replaceChildren(...keys.map((k) =>
      tr([LABELS[k] || k.replace(/_/g, " "), ...plans.map((p) => cell(k, p[k]))], "td", k)));
  }

  render();
})();
