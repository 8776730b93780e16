// The NVR's web UI: live grid, single camera, status, recordings and events. Plain JavaScript, no
// build step, no network beyond this server. Pages are hash routes; data comes from the JSON API.
"use strict";

const main = document.getElementById("main");
let csrf = "1";

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

// ---- Status pushes: one WebSocket per page (/api/ws), nothing polled ----

const wsUrl = (path) => (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
let lastStatus = null;
const statusListeners = new Set();
let statusSocket = null;

function onStatus(fn) {
  statusListeners.add(fn);
  if (lastStatus) fn(lastStatus);
  return () => statusListeners.delete(fn);
}

function connectStatus(delay = 1000) {
  if (statusSocket) return;
  const ws = (statusSocket = new WebSocket(wsUrl("/api/ws")));
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type !== "status") return;
    lastStatus = msg.status;
    showHealth(msg.health);
    for (const fn of [...statusListeners]) fn(lastStatus);
    delay = 1000;
  };
  ws.onclose = () => {
    statusSocket = null;
    // Logged out, restarted, or the network went: try again, less often each time.
    setTimeout(() => connectStatus(Math.min(delay * 2, 10000)), delay);
  };
}

function showHealth(h) {
  const el = document.getElementById("health");
  el.textContent = h.ok ? "healthy" : "problems";
  el.className = "pill " + (h.ok ? "ok" : "bad");
  el.title = Object.entries(h.problems).map(([id, why]) => `${id}: ${why}`).join("\n");
}

// ---- Live players ----

// Plays one camera's stream in `box` (a .pic): fragmented MP4 over a WebSocket into Media Source
// Extensions, or JPEGs over a WebSocket when the browser cannot play the codec (then `label` says
// so). `opts.onClose(reason)` hears why the server closed the socket (`camera_down`,
// `main_not_connected`, ...); `opts.onInfo(info)` hears each init message.
class LivePlayer {
  constructor(box, camera, stream, opts = {}) {
    Object.assign(this, { box, camera, stream, opts, ws: null, wanted: false, retry: 1000, format: opts.format || "fmp4" });
    this.video = box.querySelector("video");
    this.img = box.querySelector("img");
    this.label = box.querySelector(".label");
    this.frames = 0;
  }

  start() {
    this.wanted = true;
    this.box.dataset.streaming = "1";
    if (this.ws) return;
    const q = this.format === "jpeg" ? `stream=sub&format=jpeg&fps=${this.opts.fps || 5}` : `stream=${this.stream}`;
    const ws = (this.ws = new WebSocket(wsUrl(`/api/cameras/${encodeURIComponent(this.camera)}/live?${q}`)));
    ws.binaryType = "arraybuffer";
    ws.onmessage = (m) => this.message(m.data);
    ws.onclose = (e) => this.closed(ws, e);
  }

  // Stops streaming (tile off screen, page hidden); the picture stays. `start` resumes at the next
  // keyframe: the server starts every socket at the newest one.
  stop() {
    this.wanted = false;
    this.box.dataset.streaming = "0";
    clearTimeout(this.again);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      ws.close();
    }
  }

  closed(ws, e) {
    if (this.ws !== ws) return;
    this.ws = null;
    if (this.opts.onClose) this.opts.onClose(e.reason || "closed", this);
    if (!this.wanted) return;
    if (e.reason === "camera_down" || e.reason === "main_not_connected" || e.reason === "unknown_camera") {
      // Opened again by whoever listens (the status push says when the camera is back).
      this.wanted = false;
      this.box.dataset.streaming = "0";
      return;
    }
    this.again = setTimeout(() => this.wanted && this.start(), this.retry);
    this.retry = Math.min(this.retry * 2, 10000);
  }

  message(data) {
    this.retry = 1000;
    if (typeof data === "string") {
      const msg = JSON.parse(data);
      if (msg.type === "init") this.init(msg);
      return;
    }
    if (this.format === "jpeg") return this.jpeg(data);
    this.queue.push(data);
    this.pump();
  }

  init(info) {
    this.info = info;
    this.box.dataset.inits = String(Number(this.box.dataset.inits || 0) + 1);
    if (this.opts.onInfo) this.opts.onInfo(info, this);
    if (!window.MediaSource || !MediaSource.isTypeSupported(info.mime)) {
      this.fallback(`${codecName(info.codec)} cannot play in this browser`);
      return;
    }
    // A new MediaSource for every init segment: a restarted worker or a new size plays on
    // without a reload.
    this.queue = [];
    this.sb = null;
    const ms = new MediaSource();
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = URL.createObjectURL(ms);
    this.video.src = this.url;
    this.video.hidden = false;
    this.img.hidden = true;
    ms.addEventListener("sourceopen", () => {
      this.sb = ms.addSourceBuffer(info.mime);
      this.sb.mode = "segments";
      this.sb.addEventListener("updateend", () => this.pump());
      this.pump();
    }, { once: true });
    this.ms = ms;
  }

  pump() {
    const sb = this.sb;
    if (!sb || sb.updating || this.ms.readyState !== "open") return;
    const v = this.video;
    const b = sb.buffered;
    if (b.length) {
      const end = b.end(b.length - 1);
      // Live edge: never more than a second behind; a gap (a skipped stretch) is jumped over.
      if (end - v.currentTime > 1.0 || v.currentTime < b.start(b.length - 1)) v.currentTime = Math.max(b.start(b.length - 1), end - 0.2);
      if (v.paused) v.play().catch(() => {});
      // Keep ten seconds at most.
      if (v.currentTime - b.start(0) > 15) {
        sb.remove(b.start(0), v.currentTime - 10);
        return;
      }
    }
    const next = this.queue.shift();
    if (!next) return;
    try {
      sb.appendBuffer(next);
    } catch (e) {
      // Quota or a decode error: start over from the next keyframe.
      this.stop();
      this.start();
    }
  }

  fallback(why) {
    this.stop();
    if (this.stream !== "sub" || this.opts.noFallback) {
      if (this.opts.onUnplayable) this.opts.onUnplayable(why, this);
      return;
    }
    this.format = "jpeg";
    this.label.textContent = `MJPEG: ${why}`;
    this.label.hidden = false;
    this.start();
  }

  jpeg(data) {
    const url = URL.createObjectURL(new Blob([data], { type: "image/jpeg" }));
    const old = this.imgUrl;
    this.imgUrl = url;
    this.img.onload = () => old && URL.revokeObjectURL(old);
    this.img.src = url;
    this.img.hidden = false;
    this.video.hidden = true;
    this.frames += 1;
    this.img.dataset.frames = String(this.frames);
  }
}

const codecName = (c) => ({ h264: "H.264", h265: "H.265" })[c] || c;

function picture(name) {
  const video = el("video", { muted: "", playsinline: "", "aria-label": name });
  // The attribute alone does not mute an element made by script; live audio starts muted.
  video.muted = true;
  return el("div", { class: "pic" }, video,
    el("img", { alt: name, hidden: "" }),
    el("span", { class: "label", hidden: "" }),
    el("div", { class: "down" }, "camera down"));
}

function cameraUp(c) {
  return c && c.enabled && !cameraDown(c);
}

// ---- Live grid and single camera ----

let pageCleanup = [];

async function gridPage() {
  const status = lastStatus || (await json("/status"));
  const grid = el("div", { class: "grid", id: "grid" });
  const players = new Map();
  for (const c of status.cameras.filter((c) => c.enabled)) {
    const tile = el("a", { class: "tile", href: `#/camera/${encodeURIComponent(c.id)}`, "data-camera": c.id, "aria-label": `${c.name}: open live view` },
      picture(c.name),
      el("div", { class: "meta" }, el("span", { class: "name" }, c.name),
        el("span", { class: "state" }), el("span", { class: "fps" }),
        el("span", { class: "motion" }), el("span", { class: "rec" }), el("span", { class: "mode" })));
    grid.append(tile);
    const player = new LivePlayer(tile.querySelector(".pic"), c.id, "sub", {
      onClose: (reason) => { tile.dataset.closed = reason; },
    });
    player.visible = false;
    players.set(c.id, player);
  }
  main.replaceChildren(grid);
  // Tiles stream only while on screen and while the page is visible.
  const want = (p) => p.visible && document.visibilityState === "visible" && !p.down;
  const apply = (p) => (want(p) ? p.start() : p.stop());
  const seen = new IntersectionObserver((entries) => {
    for (const e of entries) {
      const p = players.get(e.target.dataset.camera);
      p.visible = e.isIntersecting;
      apply(p);
    }
  });
  for (const tile of grid.children) seen.observe(tile);
  const onVisibility = () => players.forEach(apply);
  document.addEventListener("visibilitychange", onVisibility);
  const update = (s) => {
    for (const c of s.cameras) {
      const tile = grid.querySelector(`[data-camera="${CSS.escape(c.id)}"]`);
      if (!tile) continue;
      const down = cameraDown(c);
      tile.classList.toggle("is-down", down);
      tile.querySelector(".state").replaceChildren(pill(down ? "down" : "live", down ? "bad" : "ok"));
      const sub = c.worker && c.worker.sub;
      tile.querySelector(".fps").textContent = sub ? sub.fps.toFixed(0) + " fps" : "";
      tile.querySelector(".motion").replaceChildren(c.motion.active ? pill("motion", "warn") : "");
      const rec = c.worker && c.worker.recording;
      tile.querySelector(".rec").replaceChildren(rec && rec.state === "recording" ? pill("● rec", "bad") : "");
      tile.setAttribute("aria-label", `${c.name}, ${down ? "down" : "live"}: open live view`);
      // A camera that came back gets its stream again (a socket closed as camera_down is not
      // reopened by the player itself).
      tile.querySelector(".mode").replaceChildren(nvrSchedule.modePill(c)); // schedule.js
      const p = players.get(c.id);
      if (p) {
        p.down = down;
        apply(p);
      }
    }
  };
  const off = onStatus(update);
  pageCleanup.push(() => {
    off();
    seen.disconnect();
    document.removeEventListener("visibilitychange", onVisibility);
    players.forEach((p) => p.stop());
  });
}

async function cameraPage(id) {
  const status = lastStatus || (await json("/status"));
  const c = status.cameras.find((c) => c.id === id);
  if (!c) return main.replaceChildren(el("p", {}, `No camera ${id}.`));
  const box = picture(c.name);
  const info = el("span", { class: "stream-info" });
  const note = el("p", { class: "note", hidden: "" });
  const single = el("div", { class: "single", "data-camera": id });
  let player = null;
  const play = (stream, format) => {
    if (player) player.stop();
    box.querySelector(".label").hidden = true;
    single.dataset.stream = stream;
    for (const b of switches.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.dataset.stream === stream));
    player = new LivePlayer(box, id, stream, {
      format,
      fps: 30,
      onInfo: (i) => { info.textContent = `${stream.toUpperCase()} ${i.width}×${i.height} ${codecName(i.codec)}${i.audio ? " + audio" : ""}`; },
      onClose: (reason) => {
        single.dataset.closed = reason;
        if (reason === "main_not_connected") {
          note.textContent = "The full-resolution stream is not connected (recording is off for this camera): showing the sub stream.";
          note.hidden = false;
          play("sub");
        }
      },
      onUnplayable: (why) => {
        note.textContent = `The full-resolution stream is ${why.replace(" cannot play in this browser", "")}, which this browser cannot play: showing the sub stream.`;
        note.hidden = false;
        play("sub");
      },
    });
    player.start();
  };
  const video = box.querySelector("video");
  video.muted = true;
  const mute = el("button", { type: "button", class: "mute", onclick: () => {
    video.muted = !video.muted;
    mute.textContent = video.muted ? "Unmute" : "Mute";
  } }, "Unmute");
  const full = el("button", { type: "button", class: "fullscreen", onclick: () => box.requestFullscreen().catch(() => {}) }, "Fullscreen");
  const switches = el("span", { class: "switch", role: "group", "aria-label": "stream" },
    el("button", { type: "button", "data-stream": "main", onclick: () => { note.hidden = true; play("main"); } }, "Full resolution"),
    el("button", { type: "button", "data-stream": "sub", onclick: () => play("sub") }, "Sub stream"));
  single.append(el("h2", {}, c.name), box, el("div", { class: "controls" }, switches, mute, full, info), note,
    el("p", {}, el("a", { href: `#/recordings?camera=${encodeURIComponent(id)}` }, "Recordings of this camera"),
      " · ", el("a", { href: `#/metrics?camera=${encodeURIComponent(id)}&range=24h` }, "Metrics of this camera")),
    nvrSchedule.panel(id, api)); // schedule.js
  if (c.ptz) single.append(nvrPtz.panel(id, api, pageCleanup)); // ptz.js
  main.replaceChildren(single);
  play("main");
  // A camera that comes back (a restarted worker whose socket was closed as down) plays again.
  const off = onStatus((s) => {
    const now = s.cameras.find((x) => x.id === id);
    single.classList.toggle("is-down", !cameraUp(now));
    if (player && !player.ws && !player.wanted && cameraUp(now) && single.dataset.closed === "camera_down") {
      single.dataset.closed = "";
      player.start();
    }
  });
  const onVisibility = () => player && (document.visibilityState === "visible" ? player.start() : player.stop());
  document.addEventListener("visibilitychange", onVisibility);
  pageCleanup.push(() => {
    off();
    document.removeEventListener("visibilitychange", onVisibility);
    if (player) player.stop();
  });
}

// ---- Status ----

async function statusPage() {
  const table = el("table", { id: "status-table" });
  const wrap = el("div", { class: "scroll" }, table);
  main.replaceChildren(el("h2", {}, "Workers"), wrap);
  const update = (s) => {
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
  update(lastStatus || (await json("/status")));
  const off = onStatus(update);
  pageCleanup.push(off);
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
  cleanup();
  const user = el("input", { name: "username", placeholder: "user", autocomplete: "username" });
  const pass = el("input", { name: "password", type: "password", placeholder: "password", autocomplete: "current-password" });
  const msg = el("p", { class: "note" });
  const form = el("form", { class: "login", onsubmit: async (ev) => {
    ev.preventDefault();
    const r = await fetch("/api/login", { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ username: user.value, password: pass.value }) });
    if (r.ok) {
      csrf = (await r.json()).csrf;
      // The status socket opened before the login was refused: open it again now.
      if (statusSocket) statusSocket.close();
      route();
    }
    else if (r.status === 429) msg.textContent = `Too many attempts; try again in ${r.headers.get("Retry-After") || "a few"} s.`;
    else msg.textContent = "Wrong user or password.";
  } }, el("h2", {}, "Log in"), user, pass, el("button", { type: "submit" }, "Log in"), msg);
  main.replaceChildren(form);
}

// ---- Routing ----

function cleanup() {
  for (const f of pageCleanup.splice(0)) f();
}

async function route() {
  cleanup();
  const [path, query] = location.hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  const page = path.startsWith("/camera/") ? "grid" : path.startsWith("/setup") ? "setup" : (path.slice(1) || "grid");
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page);
  try {
    const s = await fetch("/api/session", { credentials: "same-origin" });
    if (s.ok) csrf = (await s.json()).csrf;
    if (path.startsWith("/camera/")) await cameraPage(decodeURIComponent(path.slice(8)));
    else if (path === "/status") await statusPage();
    else if (path === "/recordings") await recordingsPage(params);
    else if (path.startsWith("/setup")) await nvrSetup.page(path, { main, api, onStatus, cleanup: pageCleanup, showLogin }); // setup.js
    else if (path === "/metrics") await nvrMetrics.page(main, params); // metrics.js
    else await gridPage();
    connectStatus();
  } catch (e) {
    if (e.message !== "login needed") main.replaceChildren(el("p", { class: "note" }, "Error: " + e.message));
  }
}

window.addEventListener("hashchange", route);
route();
nvrSetup.banner(api); // setup.js
