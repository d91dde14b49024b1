// /tax: import a transactions file, the transfers matched between own accounts (undo one), run a report (its
// progress polled until done), the reports, and one report's summary, downloads and per-lot explanation (from its
// gains.csv). Signed-out visitors go to sign in. Text goes in
// through textContent only.
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const api = (...args) => window.MP.api(...args);
  const say = (text, kind) => window.MP.say("tax-msg", text, kind);
  const BASE = "/api/v1/tax";
  const LOT_ROWS = 200;
  const FILES = [["form8949.pdf", "Form 8949 (PDF)"], ["form8949.csv", "Form 8949 (CSV)"],
    ["schedule-d.csv", "Schedule D"], ["gains.csv", "Gains with lots"], ["income.csv", "Income"]];

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  const when = (ms) => (ms ? new Date(ms).toISOString().slice(0, 16).replace("T", " ") : "—");
  const row = (cells) => { const tr = el("tr"); cells.forEach((c) => tr.append(el("td", c))); return tr; };

  function csvFields(line) {  // one CSV line (RFC 4180 quoting) → its fields
    const out = [];
    let field = "";
    let quoted = false;
    for (let i = 0; i < line.length; i += 1) {
      const c = line[i];
      if (quoted) {
        if (c === '"' && line[i + 1] === '"') { field += '"'; i += 1; } else if (c === '"') quoted = false;
        else field += c;
      } else if (c === '"') quoted = true;
      else if (c === ",") { out.push(field); field = ""; } else field += c;
    }
    out.push(field);
    return out;
  }

  async function importFile(event) {
    event.preventDefault();
    const file = $("tax-file").files[0];
    if (!file) return say("Choose a CSV file first.");
    const form = new FormData();
    form.append("file", file);
    const account = $("tax-account").value.trim();
    const query = account ? `?account=${encodeURIComponent(account)}` : "";
    $("tax-import-button").disabled = true;
    try {
      const resp = await window.MP.fetch(`${BASE}/transactions/import${query}`, { method: "POST", body: form });
      const data = await resp.json().catch(() => ({}));
      if (resp.status === 401) return window.MP.signIn();
      if (!resp.ok) return say(window.MP.errorText({ status: resp.status, data }));
      $("tax-import-result").textContent = `${file.name}: ${data.layout} layout, ${data.rows_read} rows read, ` +
        `${data.imported} transactions imported, ${data.duplicates} duplicates skipped, ` +
        `${data.ignored.length} rows ignored, ${data.rejected.length} rejected.`;
      const problems = $("tax-import-problems");
      const body = problems.querySelector("tbody");
      body.replaceChildren(...data.rejected.map((r) => row([r.line, r.field, r.reason])),
        ...data.ignored.map((r) => row([r.line, "(ignored)", r.reason])));
      problems.hidden = !(data.rejected.length || data.ignored.length);
      say(data.rejected.length ? "Some rows were not imported: see the list." : "Imported.",
        data.rejected.length ? "bad" : "ok");
      await loadTransfers();
    } finally {
      $("tax-import-button").disabled = false;
    }
  }

  async function runReport(event) {
    event.preventDefault();
    const body = { year: Number($("tax-year").value), method: $("tax-method").value,
      per_wallet: $("tax-per-wallet").checked };
    const answer = await api("POST", `${BASE}/reports`, body);
    if (answer.status === 401) return window.MP.signIn();
    if (!answer.ok) return say(window.MP.errorText(answer));
    say("");
    await follow(answer.data.id);
  }

  async function follow(id) {
    $("tax-progress-line").hidden = false;
    for (;;) {
      const answer = await api("GET", `${BASE}/reports/${id}`);
      if (!answer.ok) return say(window.MP.errorText(answer));
      const report = answer.data;
      $("tax-progress").value = report.progress;
      $("tax-progress-text").textContent = `${report.status} ${report.progress}%`;
      if (report.status === "done" || report.status === "failed") {
        await loadReports();
        if (report.status === "failed") return say(`The report failed: ${report.error || "unknown error"}`);
        return show(report);
      }
      await new Promise((resolve) => setTimeout(resolve, 700));  // the browser's own clock: a UI poll
    }
  }

  async function loadTransfers() {
    const answer = await api("GET", `${BASE}/transfers`);
    if (!answer.ok) return say(window.MP.errorText(answer));
    const body = $("tax-transfers").querySelector("tbody");
    body.replaceChildren(...answer.data.data.map((t) => {
      const sent = t.sent;
      const tr = row([when(t.received.timestamp_ms), t.received.asset, t.received.amount, t.received.account,
        sent ? sent.account : "—", sent ? when(sent.timestamp_ms) : "—", t.status]);
      const cell = el("td");
      if (sent) {
        const undo = el("button", "Undo", "link");
        undo.type = "button";
        undo.dataset.undo = t.received.id;
        undo.addEventListener("click", async () => {
          const done = await api("POST", `${BASE}/transfers/undo`, { out_id: sent.id, in_id: t.received.id });
          if (!done.ok) return say(window.MP.errorText(done));
          say("Match undone: reports you run from now on treat it as a deposit.", "ok");
          await loadTransfers();
        });
        cell.append(undo);
      }
      tr.append(cell);
      return tr;
    }));
    $("tax-transfers-empty").hidden = answer.data.data.length > 0;
  }

  async function loadReports() {
    const answer = await api("GET", `${BASE}/reports`);
    if (answer.status === 401) return window.MP.signIn();
    if (!answer.ok) return say(window.MP.errorText(answer));
    const reports = answer.data.reports || answer.data.data || [];
    const body = $("tax-reports").querySelector("tbody");
    body.replaceChildren(...reports.map((r) => {
      const tr = row([r.year, `${r.method.toUpperCase()}${r.per_wallet ? " per wallet" : ""}`,
        r.status === "running" || r.status === "queued" ? `${r.status} ${r.progress}%` : r.status,
        when(r.created_at_ms)]);
      const cell = el("td");
      if (r.status === "done") {
        const open = el("button", "Open", "link");
        open.type = "button";
        open.dataset.report = r.id;
        open.addEventListener("click", () => show(r));
        cell.append(open);
      }
      tr.append(cell);
      return tr;
    }));
    $("tax-reports-empty").hidden = reports.length > 0;
  }

  async function show(report) {
    $("tax-report").hidden = false;
    $("tax-report").dataset.report = report.id;
    $("tax-report-title").textContent =
      `${report.year}, ${report.method.toUpperCase()}${report.per_wallet ? " per wallet" : ""}`;
    const s = report.summary || {};
    const money = (part) => (s[part] ? [s[part].proceeds, s[part].cost_basis, s[part].gain_loss] : ["", "", ""]);
    $("tax-summary").querySelector("tbody").replaceChildren(row(["Short-term", ...money("short")]),
      row(["Long-term", ...money("long")]), row(["Total", ...money("total")]));
    $("tax-summary-notes").textContent = `${s.disposals ?? 0} disposals (${s.disposals_missing_basis ?? 0} with ` +
      `basis missing), income ${s.income_usd ?? "0"} USD from ${s.income_events ?? 0} events, ` +
      `${s.transactions ?? 0} transactions in the history.`;
    const links = $("tax-downloads");
    links.replaceChildren(...FILES.map(([name, label]) => {
      const a = el("a", label, "button");
      a.href = `${BASE}/reports/${report.id}/${name}`;
      a.download = "";
      a.dataset.file = name;
      return a;
    }));
    const resp = await window.MP.fetch(`${BASE}/reports/${report.id}/gains.csv`);
    if (!resp.ok) return;
    const lines = (await resp.text()).trim().split("\n").slice(1);
    const body = $("tax-lots").querySelector("tbody");
    // gains.csv: date_sold,type,asset,amount,account,tx_id,lot_id,date_acquired,lot_account,lot_amount,proceeds,
    // cost_basis,gain_loss,term,missing_basis
    body.replaceChildren(...lines.slice(0, LOT_ROWS).map((line) => {
      const f = csvFields(line);
      const cut = (v) => (v.includes(".") ? Number(v).toFixed(2) : v);
      return row([f[0], f[1], f[2], f[3], f[4], f[7], f[8], f[9], cut(f[10]), cut(f[11]), cut(f[12]), f[13], f[14]]);
    }));
    $("tax-lots-more").textContent = lines.length > LOT_ROWS
      ? `The first ${LOT_ROWS} of ${lines.length} lines: download "Gains with lots" for all of them.` : "";
  }

  document.addEventListener("DOMContentLoaded", async () => {
    $("tax-year").value = String(new Date().getUTCFullYear() - 1);
    $("tax-import-form").addEventListener("submit", importFile);
    $("tax-report-form").addEventListener("submit", runReport);
    const user = await window.MP.me();
    if (!user) return window.MP.signIn();
    await loadReports();
    await loadTransfers();
  });
})();
