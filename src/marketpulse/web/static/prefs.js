// The notification preferences form, used by /onboarding and /settings: fills a <form class="prefs-form"> from
// GET /api/v1/account/preferences and saves it with PUT. Channels the user's plan doesn't offer are disabled.
"use strict";

(function () {
  async function fill(form, user) {
    const [prefs, plans] = await Promise.all([MP.api("GET", "/api/v1/account/preferences"),
      MP.api("GET", "/api/v1/plans")]);
    const plan = plans.ok ? plans.data.data.find((p) => p.name === user.plan) : null;
    const allowed = plan ? plan.alert_channels : ["email"];
    const all = plans.ok ? [...new Set(plans.data.data.flatMap((p) => p.alert_channels))] : allowed;
    const current = prefs.ok ? prefs.data : { time_zone: "UTC", channels: ["email"] };
    const zone = form.querySelector("[name=time_zone]");
    const guess = Intl.DateTimeFormat().resolvedOptions().timeZone;
    zone.value = prefs.ok && current.time_zone !== "UTC" ? current.time_zone : (guess || current.time_zone);
    form.querySelector("[name=quiet_hours_start]").value = current.quiet_hours_start || "";
    form.querySelector("[name=quiet_hours_end]").value = current.quiet_hours_end || "";
    form.querySelector("[name=quiet_hours_low_priority]").value = current.quiet_hours_low_priority || "hold";
    form.querySelector("[name=flood_limit_per_minute]").value = String(current.flood_limit_per_minute ?? 20);
    const box = form.querySelector(".channels");
    box.replaceChildren(...all.map((channel) => {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "checkbox";
      input.name = "channels";
      input.value = channel;
      input.checked = current.channels.includes(channel);
      input.disabled = !allowed.includes(channel);
      label.append(input, " " + channel + (input.disabled ? " (higher plan)" : ""));
      return label;
    }));
  }

  async function save(form) {
    const data = new FormData(form);
    return MP.api("PUT", "/api/v1/account/preferences", {
      time_zone: String(data.get("time_zone")).trim() || "UTC",
      quiet_hours_start: data.get("quiet_hours_start") || null,
      quiet_hours_end: data.get("quiet_hours_end") || null,
      channels: data.getAll("channels"),
      quiet_hours_low_priority: data.get("quiet_hours_low_priority") || "hold",
      flood_limit_per_minute: Number(data.get("flood_limit_per_minute") || 0),
    });
  }

  window.MPPrefs = { fill, save };
})();
