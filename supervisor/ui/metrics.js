// The metrics page (#/metrics?camera=ID&range=24h): charts of the metrics history drawn with the
// vendored uPlot (vendor/uPlot.iife.min.js, MIT), restart markers as red lines, and a storage view.
// Uses app.js's `json` and `el` (loaded after this file, called only once it has run).
"use strict";

const nvrMetrics = (() => {
  const RANGES = { "1h": 3600, "24h": 86400, "7d": 7 * 86400, "90d": 90 * 86400 };
  const CHARTS = [
    { title: "CPU (cores)", series: ["cpu"], scale: 1 },
    { title: "Memory (MB)", series: ["rss", "pss"], scale: 1e-6 },
    { title: "Frames per second", series: ["fps_sub", "fps_main"], scale: 1 },
    { title: "Bitrate (kbit/s)", series: ["bitrate_sub", "bitrate_main"], scale: 1e-3 },
    { title: "Restarts and reconnects", series: ["restarts", "reconnects"], scale: 1 },
  ];
  const COLOURS = ["#2a7ae2", "#e2822a", "#2ab36b", "#9b59b6"];
  const charts = []; // the uPlot instances on the page, for tests and cleanup

  const bytes = (b) => b == null ? "?" : b >= 1e9 ? (b / 1e9).toFixed(1) + " GB" : (b / 1e6).toFixed(1) + " MB";
  const last = (col) => { for (let i = col.length - 1; i >= 0; i--) if (col[i] != null) return col[i]; return null; };
  // What a counter grew by over the column, counting up from each reset (a supervisor restart).
  const growth = (col) => {
    let sum = 0, prev = null;
    for (const v of col) { if (v == null) continue; if (prev != null) sum += v >= prev ? v - prev : v; prev = v; }
    return sum;
  };

  function chart(box, spec, answer) {
    const t = answer.t.map((ms) => ms / 1000);
    const data = [t, ...spec.series.map((s) => (answer.series[s] || []).map((v) => v == null ? null : v * spec.scale))];
    const markers = (answer.markers || []).map((m) => m.t / 1000);
    const width = Math.max(300, Math.min(900, box.clientWidth || 900));
    const u = new uPlot({
      title: spec.title, width, height: 180,
      axes: [0, 1].map(() => ({ stroke: "#bbb", grid: { stroke: "#333" }, ticks: { stroke: "#333" } })),
      series: [{}, ...spec.series.map((s, i) => ({ label: s, stroke: COLOURS[i], width: 2, spanGaps: false }))],
      hooks: { draw: [(u) => {
        const ctx = u.ctx;
        ctx.save();
        ctx.strokeStyle = "#d62828";
        ctx.lineWidth = 2;
        for (const x of markers) {
          const px = u.valToPos(x, "x", true);
          if (px < u.bbox.left || px > u.bbox.left + u.bbox.width) continue;
          ctx.beginPath(); ctx.moveTo(px, u.bbox.top); ctx.lineTo(px, u.bbox.top + u.bbox.height); ctx.stroke();
        }
        ctx.restore();
      }] },
    }, data, box);
    u.root.dataset.series = spec.series.join(",");
    u.root.dataset.markers = String(markers.length);
    charts.push(u);
  }

  async function storage(box, status, range) {
    const [sys, ...cams] = await Promise.all([
      json(`/api/metrics/history?series=disk_free,disk_used,disk_size&from=${Date.now() - 3600e3}`),
      ...status.cameras.filter((c) => c.enabled).map((c) =>
        json(`/api/metrics/history?camera=${encodeURIComponent(c.id)}&series=stored_bytes,recorded_bytes&from=${Date.now() - 86400e3}`)),
    ]);
    const free = last(sys.series.disk_free), used = last(sys.series.disk_used);
    let perDay = 0;
    const rows = cams.map((a) => {
      const span = a.t.length > 1 ? (a.t[a.t.length - 1] - a.t[0]) / 1000 : 0;
      const day = span > 0 ? growth(a.series.recorded_bytes) * 86400 / span : 0;
      perDay += day;
      return el("tr", {}, el("td", {}, a.camera), el("td", {}, bytes(last(a.series.stored_bytes))), el("td", {}, bytes(day) + "/day"));
    });
    const days = perDay > 0 && free != null ? ((free + (used || 0)) / perDay).toFixed(1) : "?";
    box.replaceChildren(el("h3", {}, "Storage"),
      el("table", { class: "storage" }, el("tr", {}, el("th", {}, "Camera"), el("th", {}, "Used"), el("th", {}, "Writing")), ...rows),
      el("p", { class: "storage-summary" }, `Free: ${bytes(free)}; the disk holds about ${days} days of footage at the current rate.`));
  }

  async function page(main, params) {
    for (const u of charts.splice(0)) u.destroy();
    const status = await json("/status");
    const ids = status.cameras.filter((c) => c.enabled).map((c) => c.id);
    const camera = params.get("camera") || ids[0] || "";
    const range = RANGES[params.get("range")] ? params.get("range") : "1h";
    const go = (cam, r) => (location.hash = `#/metrics?camera=${encodeURIComponent(cam)}&range=${r}`);
    const pick = el("select", { name: "camera", onchange: (e) => go(e.target.value, range) },
      ...ids.map((id) => el("option", { value: id, ...(id === camera ? { selected: "" } : {}) }, id)));
    const ranges = el("span", { class: "switch", role: "group", "aria-label": "range" },
      ...Object.keys(RANGES).map((r) => el("button", { type: "button", "data-range": r, class: r === range ? "active" : "", onclick: () => go(camera, r) }, r)));
    const box = el("div", { class: "charts" });
    const store = el("div", { class: "storage-view" });
    main.replaceChildren(el("div", { class: "metrics" }, el("h2", {}, "Metrics"), el("div", { class: "controls" }, pick, ranges), box, store));
    if (!camera) return;
    const to = Date.now(), from = to - RANGES[range] * 1000;
    const names = [...new Set(CHARTS.flatMap((c) => c.series))].join(",");
    const answer = await json(`/api/metrics/history?camera=${encodeURIComponent(camera)}&series=${names}&from=${from}&to=${to}`);
    for (const spec of CHARTS) {
      const holder = el("div", { class: "chart" });
      box.append(holder);
      chart(holder, spec, answer);
    }
    box.dataset.points = String(answer.t.length);
    box.dataset.resolution = answer.resolution;
    await storage(store, status, range);
  }

  return { page, charts };
})();
