// Recording modes in the web UI: the grid tile's mode pill, and a camera page's panel with its week
// as a strip (mode by colour, now marked), the next change, and the override control. Kept apart
// from app.js, which calls only `nvrSchedule.modePill(camera)` and `nvrSchedule.panel(id, api)`.
"use strict";

(function () {
  const DAY = 86400000;
  const MODES = ["off", "motion", "continuous"];
  // Its own stylesheet (the Content-Security-Policy allows no inline styles).
  document.head.append(Object.assign(document.createElement("link"), { rel: "stylesheet", href: "/ui/schedule.css" }));

  function h(tag, attrs = {}, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "style") Object.assign(e.style, v); // CSSOM: allowed by the CSP, unlike the attribute
      else if (v !== null && v !== undefined) e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return e;
  }

  const when = (ms) => new Date(ms).toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit" });

  function source(m) {
    if (m.source !== "override") return m.source;
    return m.override_until_ms ? `override until ${when(m.override_until_ms)}` : "override (no end)";
  }

  function nextText(m) {
    return m.next ? `${m.next.mode} at ${when(m.next.at_ms)}` : "no change ahead";
  }

  // The mode in force, for a grid tile: "motion", "continuous (override)", ...
  function modePill(c) {
    const m = c.mode;
    if (!m) return "";
    const label = m.current + (m.source === "override" ? " (override)" : "");
    return h("span", { class: `pill mode mode-${m.current}`, title: `${source(m)}; next: ${nextText(m)}` }, label);
  }

  // Monday 00:00 of this week, in the browser's time zone.
  function weekStart(now) {
    const d = new Date(now);
    d.setHours(0, 0, 0, 0);
    d.setDate(d.getDate() - ((d.getDay() + 6) % 7));
    return d.getTime();
  }

  // A camera's schedule panel; it refreshes itself while it is on the page.
  function panel(id, api) {
    const box = h("section", { class: "schedule", "data-camera": id }, h("h3", {}, "Recording mode"));
    const body = h("div");
    const mode = h("select", { name: "mode" }, ...MODES.map((m) => h("option", { value: m }, m)));
    const length = h("select", { name: "for" },
      h("option", { value: "3600" }, "for 1 hour"), h("option", { value: "10800" }, "for 3 hours"),
      h("option", { value: "28800" }, "for 8 hours"), h("option", { value: "86400" }, "for 24 hours"),
      h("option", { value: "" }, "until ended"));
    const message = h("span", { class: "error" });
    const send = async (method, payload) => {
      message.textContent = "";
      const r = await api(`/api/cameras/${id}/mode`, {
        method, headers: { "Content-Type": "application/json" }, body: payload ? JSON.stringify(payload) : undefined,
      });
      if (!r.ok) message.textContent = (await r.json()).error || `failed (${r.status})`;
      await load();
    };
    const set = h("button", { class: "override", onclick: () => {
      const payload = { mode: mode.value };
      if (length.value) payload.for_s = Number(length.value);
      return send("POST", payload);
    } }, "Override");
    const end = h("button", { class: "end-override", onclick: () => send("DELETE") }, "End override");
    box.append(body, h("div", { class: "controls" }, mode, length, set, end, message));

    async function load() {
      const now = Date.now();
      const from = weekStart(now);
      const to = from + 7 * DAY;
      const [sched, status] = await Promise.all([
        api(`/api/cameras/${id}/schedule?from=${from}&to=${to}`).then((r) => r.json()),
        api("/status").then((r) => r.json()),
      ]);
      const c = status.cameras.find((c) => c.id === id);
      if (!c || !sched.intervals) return;
      const pct = (ms) => (100 * (ms - from)) / (to - from);
      const strip = h("div", { class: "week", title: sched.schedule ? `schedule ${sched.schedule} (${sched.timezone})` : "fixed mode" });
      for (const i of sched.intervals) {
        strip.append(h("div", {
          class: `seg mode-${i.mode}`, "data-mode": i.mode,
          style: { left: `${pct(i.from_ms)}%`, width: `${pct(i.to_ms) - pct(i.from_ms)}%` },
          title: `${i.mode}: ${when(i.from_ms)} – ${when(i.to_ms)}`,
        }));
      }
      strip.append(h("div", { class: "now", style: { left: `${pct(now)}%` }, title: "now" }));
      const days = h("div", { class: "days" },
        ...[0, 1, 2, 3, 4, 5, 6].map((d) => h("span", {}, new Date(from + d * DAY + DAY / 2).toLocaleDateString([], { weekday: "short" }))));
      const m = c.mode;
      body.replaceChildren(
        h("div", { class: "legend" }, ...MODES.map((x) => h("span", { class: `pill mode-${x}` }, x))),
        strip, days,
        h("p", { class: "in-force" }, "In force: ", modePill(c), ` from ${source(m)}; next: ${nextText(m)}`));
      end.disabled = m.source !== "override";
    }

    load().catch(() => {});
    const refresh = setInterval(() => {
      if (!box.isConnected) return clearInterval(refresh);
      load().catch(() => {});
    }, 10000);
    return box;
  }

  window.nvrSchedule = { modePill, panel };
})();
