// The /backtests page (served from /static: the Content-Security-Policy allows no inline script).
"use strict";
const boot = JSON.parse(document.getElementById("bootstrap").textContent);
const $ = (id) => document.getElementById(id);
const byName = Object.fromEntries(boot.strategies.map((s) => [s.name, s]));

for (const s of boot.strategies) $("strategy").add(new Option(s.name, s.name));
for (const iv of boot.intervals) $("interval").add(new Option(iv, iv, iv === "1h", iv === "1h"));
if (byName.ema_cross) $("strategy").value = "ema_cross";

function renderParams() {
  const s = byName[$("strategy").value];
  $("strategy-help").textContent = s.description || "";
  const box = $("params");
  box.querySelectorAll(".param").forEach((el) => el.remove());
  for (const p of s.params) {
    const wrap = document.createElement("div");
    wrap.className = "param";
    const label = document.createElement("label");
    label.textContent = p.name + (p.help ? " — " + p.help : "");
    let input;
    if (p.choices) {
      input = document.createElement("select");
      for (const c of p.choices) input.add(new Option(String(c), String(c), c === p.default, c === p.default));
    } else if (p.kind === "bool") {
      input = document.createElement("select");
      input.add(new Option("false", "false", !p.default, !p.default));
      input.add(new Option("true", "true", p.default, p.default));
    } else {
      input = document.createElement("input");
      input.type = p.kind === "str" ? "text" : "number";
      if (p.kind === "float") input.step = "any";
      if (p.low !== null) input.min = p.low;
      if (p.high !== null) input.max = p.high;
      input.value = p.default;
    }
    input.dataset.param = p.name;
    input.dataset.kind = p.kind;
    label.htmlFor = input.id = "param-" + p.name;
    wrap.append(label, input);
    box.append(wrap);
  }
}
$("strategy").addEventListener("change", renderParams);
renderParams();

function readParams() {
  const out = {};
  for (const el of document.querySelectorAll("[data-param]")) {
    const k = el.dataset.kind;
    out[el.dataset.param] = k === "bool" ? el.value === "true" : k === "int" || k === "float" ? Number(el.value) : el.value;
  }
  return out;
}

function body() {
  const b = {
    strategy: $("strategy").value, symbol: $("symbol").value.trim(), interval: $("interval").value,
    params: readParams(), fee_bps: Number($("fee_bps").value), cash: Number($("cash").value),
    size: Number($("size").value), long_only: $("long_only").checked,
  };
  if ($("from").value) b.from = $("from").value;
  if ($("to").value) b.to = $("to").value;
  return b;
}

function showError(detail) {
  // 422: [{loc: ["body", field, ...], msg}] → one line per field; other errors: their message.
  if (Array.isArray(detail)) {
    $("error").textContent = detail.map((e) => e.loc.slice(1).join(".") + ": " + e.msg).join("\n");
  } else {
    $("error").textContent = typeof detail === "string" ? detail : (detail && detail.message) || "request failed";
  }
}

const PCT = new Set(["total_return", "cagr", "max_drawdown", "win_rate", "exposure"]);
function fmt(key, v) {
  if (v === null || v === undefined) return "—";
  if (typeof v !== "number") return String(v);
  if (PCT.has(key)) return (v * 100).toFixed(2) + " %";
  return Number.isInteger(v) ? String(v) : v.toFixed(4);
}

function showJob(job) {
  $("idle").classList.add("hidden");
  $("job").classList.remove("hidden");
  $("job-status").textContent = job.status === "failed" ? "failed: " + job.error : job.status;
  $("progress").value = job.progress;
  const data = job.result && job.result.data;
  $("job-source").textContent = data ? `${data.bars} bars from ${data.source}` : "";
  const tbody = $("stats").querySelector("tbody");
  tbody.replaceChildren();
  if (job.result) {
    for (const [k, v] of Object.entries(job.result.stats)) {
      const tr = tbody.insertRow();
      tr.insertCell().outerHTML = "<th></th>";
      tr.cells[0].textContent = k;
      tr.insertCell().textContent = fmt(k, v);
    }
    $("stats").classList.remove("hidden");
  } else {
    $("stats").classList.add("hidden");
  }
  if (job.report_url) {
    $("report-link").href = job.report_url;
    $("report-link").classList.remove("hidden");
    if ($("report").getAttribute("src") !== job.report_url) $("report").src = job.report_url;
    $("report").classList.remove("hidden");
  } else {
    $("report-link").classList.add("hidden");
    $("report").classList.add("hidden");
  }
}

async function poll(id) {
  const resp = await window.MP.fetch(`/api/v1/backtests/${encodeURIComponent(id)}`);
  const job = await resp.json();
  if (!resp.ok) { showError(job.detail); $("run").disabled = false; return; }
  showJob(job);
  if (job.status === "queued" || job.status === "running") setTimeout(() => poll(id), 400);
  else $("run").disabled = false;
}

$("form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("error").textContent = "";
  $("run").disabled = true;
  try {
    const resp = await window.MP.fetch("/api/v1/backtests", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body()),
    });
    const job = await resp.json();
    if (!resp.ok) { showError(job.detail); $("run").disabled = false; return; }
    history.replaceState(null, "", "#" + job.id);
    showJob(job);
    poll(job.id);
  } catch (err) {
    showError(String(err));
    $("run").disabled = false;
  }
});

if (location.hash.length > 1) poll(location.hash.slice(1));
