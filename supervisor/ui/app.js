// The NVR's web UI: live grid, single camera, status, recordings and events. Plain JavaScript, no
// build step, no network beyond this server. Pages are hash routes; data comes from the JSON API.
"use strict";

const main = document.getElementById("main");
let csrf = "1";
let timer = null;

async function api(path, opts = {}) {
  opts.headers = Object.assign({ "X-NVR-CSRF": csrf }, opts.headers || {});
  opts.credentials = "same-origin";
  const r = await fetch(path, opts);
  if (r.status === 401) {
    showLogin();
    throw new Error("login needed");
  }
  return r;
}

async function json(path) {
  const r = await api(path);
  return r.json();
}

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

const pill = (text, cls) => el("span", { class: "pill " + (cls || "") }, text);
const ago = (ms) => (ms == null ? "–" : ms < 1000 ? Math.round(ms) + " ms" : (ms / 1000).toFixed(1) + " s");
const time = (ms) => new Date(ms).toLocaleTimeString();

function streamState(c, which) {
  const s = c.worker && c.worker[which];
  return s ? s.state : c.state === "running" ? "connecting" : "down";
}

function cameraDown(c) {
  return c.state !== "running" || streamState(c, "sub") !== "up";
}

async function refreshHealth() {
  try {
    const r = await api("/health");
    const h = document.getElementById("health");
    h.textContent = r.ok ? "healthy" : "problems";
    h.className = "pill " + (r.ok ? "ok" : "bad");
  } catch (e) { /* login shown */ }
}

// ---- Live grid and single camera ----

async function gridPage() {
  const status = await json("/status");
  const grid = el("div", { class: "grid", id: "grid" });
  for (const c of status.cameras.filter((c) => c.enabled)) {
    const img = el("img", { alt: c.name, src: `/api/cameras/${c.id}/mjpeg?fps=5` });
    const tile = el("div", { class: "tile", "data-camera": c.id, onclick: () => (location.hash = `#/camera/${c.id}`) },
      el("div", { class: "pic" }, img, el("div", { class: "down" }, "camera down")),
      el("div", { class: "meta" }, el("span", { class: "name" }, c.name),
        el("span", { class: "state" }), el("span", { class: "fps" }),
        el("span", { class: "motion" }), el("span", { class: "rec" }), el("span", { class: "mode" })));
    grid.append(tile);
  }
  main.replaceChildren(grid);
  const update = async () => {
    const s = await json("/status");
    for (const c of s.cameras) {
      const tile = grid.querySelector(`[data-camera="${c.id}"]`);
      if (!tile) continue;
      const down = cameraDown(c);
      tile.classList.toggle("is-down", down);
      tile.querySelector(".state").replaceChildren(pill(down ? "down" : "live", down ? "bad" : "ok"));
      const sub = c.worker && c.worker.sub;
      tile.querySelector(".fps").textContent = sub ? sub.fps.toFixed(0) + " fps" : "";
      tile.querySelector(".motion").replaceChildren(c.motion.active ? pill("motion", "warn") : "");
      const rec = c.worker && c.worker.recording;
      tile.querySelector(".rec").replaceChildren(rec && rec.state === "recording" ? pill("● rec", "bad") : "");
      tile.querySelector(".mode").replaceChildren(nvrSchedule.modePill(c)); // schedule.js
      // A tile whose stream came back reconnects its picture.
      const img = tile.querySelector("img");
      if (!down && tile.dataset.wasDown === "1") img.src = `/api/cameras/${c.id}/mjpeg?fps=5&t=${Date.now()}`;
      tile.dataset.wasDown = down ? "1" : "0";
    }
  };
  await update();
  timer = setInterval(() => update().catch(() => {}), 2000);
}

async function cameraPage(id) {
  const status = await json("/status");
  const c = status.cameras.find((c) => c.id === id);
  if (!c) return main.replaceChildren(el("p", {}, `No camera ${id}.`));
  main.replaceChildren(el("div", { class: "single" },
    el("h2", {}, c.name),
    el("img", { alt: c.name, src: `/api/cameras/${id}/mjpeg?fps=30` }),
    el("p", {}, el("a", { href: `#/recordings?camera=${id}` }, "Recordings of this camera")),
    nvrSchedule.panel(id, api))); // schedule.js
}

// ---- Status ----

async function statusPage() {
  const table = el("table", { id: "status-table" });
  const wrap = el("div", { class: "scroll" }, table);
  main.replaceChildren(el("h2", {}, "Workers"), wrap);
  const update = async () => {
    const s = await json("/status");
    const head = el("tr", {}, ...["camera", "state", "pid", "uptime", "restarts (last reason)", "heartbeat",
      "CPU", "RSS", "sub", "main", "recording", "last error", ""].map((h) => el("th", {}, h)));
    const rows = s.cameras.map((c) => {
      const last = c.last_restart ? ` (${c.last_restart.reason}: ${c.last_restart.detail})` : "";
      const rec = c.worker && c.worker.recording;
      const sub = c.worker && c.worker.sub;
      const err = c.last_error || (sub && sub.last_error) || (rec && rec.last_error) || "";
      const restart = el("button", { onclick: async () => {
        if (!confirm(`Restart the worker of ${c.name}?`)) return;
        await api(`/api/cameras/${c.id}/restart`, { method: "POST" });
      } }, "Restart");
      return el("tr", { "data-camera": c.id },
        el("td", {}, c.name), el("td", { class: "state" }, pill(c.state, c.state === "running" ? "ok" : "bad")),
        el("td", {}, c.pid ?? "–"), el("td", {}, c.uptime_s != null ? c.uptime_s.toFixed(0) + " s" : "–"),
        el("td", { class: "restarts" }, String(c.restarts) + last), el("td", {}, ago(c.heartbeat_age_ms)),
        el("td", {}, c.cpu_percent != null ? c.cpu_percent.toFixed(1) + " %" : "–"),
        el("td", {}, c.rss_mb != null ? c.rss_mb.toFixed(0) + " MB" : "–"),
        el("td", {}, streamState(c, "sub")), el("td", {}, c.worker && c.worker.main ? c.worker.main.state : "–"),
        el("td", {}, rec ? rec.state : "off"), el("td", {}, err), el("td", {}, restart));
    });
    table.replaceChildren(head, ...rows);
  };
  await update();
  timer = setInterval(() => update().catch(() => {}), 2000);
}

// ---- Recordings and events ----

function dayRange(day) {
  const from = new Date(day + "T00:00:00");
  return [from.getTime(), from.getTime() + 86400000 - 1];
}

async function recordingsPage(params) {
  const status = await json("/status");
  const cams = status.cameras.map((c) => c.id);
  const camera = params.get("camera") || cams[0] || "";
  const today = new Date();
  const day = params.get("day") || new Date(today.getTime() - today.getTimezoneOffset() * 60000).toISOString().slice(0, 10);
  const go = (cam, d) => (location.hash = `#/recordings?camera=${cam}&day=${d}`);
  const select = el("select", { id: "camera", onchange: (e) => go(e.target.value, day) },
    ...cams.map((id) => el("option", id === camera ? { value: id, selected: "" } : { value: id }, id)));
  const date = el("input", { type: "date", id: "day", value: day, onchange: (e) => go(camera, e.target.value) });
  const player = el("div", { id: "player" });
  const clips = el("div", { id: "clips" }, el("h3", {}, "Clips"));
  const events = el("div", { id: "events" }, el("h3", {}, "Motion events"));
  main.replaceChildren(el("div", { class: "controls" }, select, date), player, el("div", { class: "lists" }, clips, events));
  const [from, to] = dayRange(day);
  const q = `camera=${encodeURIComponent(camera)}&from=${from}&to=${to}`;
  const [recs, evs] = await Promise.all([json(`/api/recordings?${q}`), json(`/api/events?${q}`)]);
  const play = (rec, at) => {
    const url = `/api/recordings/${rec.id}/file`;
    const hevc = rec.codec === "hevc";
    const canHevc = document.createElement("video").canPlayType('video/mp4; codecs="hvc1"') !== "";
    const video = el("video", { controls: "", src: url, id: "video" });
    video.addEventListener("loadedmetadata", () => { if (at) video.currentTime = at; video.play().catch(() => {}); });
    player.replaceChildren(
      el("p", {}, `${rec.camera_id} ${time(rec.start)} `, el("a", { href: url, download: rec.path.split("/").pop() }, "Download")),
      ...(hevc && !canHevc ? [el("p", { class: "note" }, "This clip is H.265, which this browser may not play: download it.")] : []),
      video);
  };
  for (const r of recs.filter((r) => r.state === "finished")) {
    const secs = r.end ? ((r.end - r.start) / 1000).toFixed(0) + " s" : "";
    clips.append(el("div", { class: "clip", "data-id": r.id, onclick: () => play(r) },
      el("span", {}, time(r.start)), el("span", {}, secs), el("span", {}, r.codec || ""),
      el("span", {}, (r.bytes / 1e6).toFixed(1) + " MB")));
  }
  if (clips.childElementCount === 1) clips.append(el("p", {}, "No clips that day."));
  for (const e of evs) {
    const rec = recs.find((r) => r.id === e.recording_id && r.state === "finished");
    events.append(el("div", { class: "event", "data-id": e.id, onclick: () => rec && play(rec, Math.max(0, (e.start - rec.start) / 1000 - 2)) },
      e.thumbnail_url ? el("img", { src: e.thumbnail_url, alt: "motion" }) : "",
      el("span", {}, time(e.start)), el("span", {}, `score ${e.score.toFixed(1)}`),
      el("span", {}, rec ? "▶" : "(no clip)")));
  }
  if (events.childElementCount === 1) events.append(el("p", {}, "No motion that day."));
}

// ---- Login ----

function showLogin() {
  clearInterval(timer);
  const user = el("input", { name: "username", placeholder: "user", autocomplete: "username" });
  const pass = el("input", { name: "password", type: "password", placeholder: "password", autocomplete: "current-password" });
  const msg = el("p", { class: "note" });
  const form = el("form", { class: "login", onsubmit: async (ev) => {
    ev.preventDefault();
    const r = await fetch("/api/login", { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ username: user.value, password: pass.value }) });
    if (r.ok) { csrf = (await r.json()).csrf; route(); }
    else if (r.status === 429) msg.textContent = `Too many attempts; try again in ${r.headers.get("Retry-After") || "a few"} s.`;
    else msg.textContent = "Wrong user or password.";
  } }, el("h2", {}, "Log in"), user, pass, el("button", { type: "submit" }, "Log in"), msg);
  main.replaceChildren(form);
}

// ---- Routing ----

async function route() {
  clearInterval(timer);
  const [path, query] = location.hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  const page = path.startsWith("/camera/") ? "grid" : (path.slice(1) || "grid");
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page);
  try {
    const s = await fetch("/api/session", { credentials: "same-origin" });
    if (s.ok) csrf = (await s.json()).csrf;
    if (path.startsWith("/camera/")) await cameraPage(decodeURIComponent(path.slice(8)));
    else if (path === "/status") await statusPage();
    else if (path === "/recordings") await recordingsPage(params);
    else await gridPage();
    refreshHealth();
  } catch (e) {
    if (e.message !== "login needed") main.replaceChildren(el("p", { class: "note" }, "Error: " + e.message));
  }
}

window.addEventListener("hashchange", route);
setInterval(refreshHealth, 5000);
route();
