// Camera set-up in the web UI: the first login, "Add camera" with its connectivity test, a camera's
// settings with the live motion level, and the zone and mask editor over the live SUB picture.
// Every change goes through the config API (`/api/config`, `If-Match` with the ETag read), so
// `cameras.json` stays the one truth. Kept apart from app.js, which calls only
// `nvrSetup.page(path, ctx)` for `#/setup...` routes and `nvrSetup.banner(api)` once.
"use strict";

(function () {
  // Its own stylesheet (the Content-Security-Policy allows no inline styles).
  document.head.append(Object.assign(document.createElement("link"), { rel: "stylesheet", href: "/ui/setup.css" }));

  function h(tag, attrs = {}, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "style") Object.assign(e.style, v); // CSSOM: allowed by the CSP, unlike the attribute
      else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? "" : v);
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return e;
  }

  const loopback = () => ["127.0.0.1", "localhost", "[::1]", "::1"].includes(location.hostname);
  const field = (label, input, help) => h("label", { class: "field" }, h("span", {}, label), input, help ? h("small", {}, help) : null);
  const pct = (x) => (x == null ? "–" : x.toFixed(1) + " %");

  // URL patterns of common cameras: what "Fill in" writes for a host.
  const BRANDS = {
    tapo: { name: "TP-Link Tapo", main: "rtsp://HOST:554/stream1", sub: "rtsp://HOST:554/stream2",
      note: "User and password: the camera account made in the Tapo app (Advanced settings → Camera account), not the TP-Link cloud login." },
    reolink: { name: "Reolink", main: "rtsp://HOST:554/h264Preview_01_main", sub: "rtsp://HOST:554/h264Preview_01_sub",
      note: "Models that stream H.265 use h265Preview_01_main. RTSP must be on (Settings → Network → Advanced → Server settings)." },
    hikvision: { name: "Hikvision", main: "rtsp://HOST:554/Streaming/Channels/101", sub: "rtsp://HOST:554/Streaming/Channels/102",
      note: "Channel 1: 101 is the main stream, 102 the sub stream (201/202 for channel 2 of a recorder)." },
  };

  // What the API said went wrong: its error and every problem with its JSON path.
  async function problems(r, box) {
    let body = {};
    try { body = await r.json(); } catch (e) { /* no JSON */ }
    const list = (body.problems || []).map((p) => h("li", {}, h("code", {}, p.path), " ", p.message));
    box.replaceChildren(h("p", {}, body.error || `failed (${r.status})`), ...(list.length ? [h("ul", {}, ...list)] : []));
    box.hidden = false;
    return body;
  }

  async function loadConfig(api) {
    const r = await api("/api/config");
    if (!r.ok) throw new Error(`GET /api/config: ${r.status}`);
    return r.json();
  }

  // ---- First start: no login yet ----

  // A link in the header on first start: until the admin login exists the config is read-only.
  async function banner(api) {
    try {
      const s = await (await fetch("/api/session", { credentials: "same-origin" })).json();
      if (s.auth) return;
      const cfg = await loadConfig(api);
      if (!cfg.setup_needed || document.getElementById("setup-banner")) return;
      // In the header's row, so the pages below do not move.
      document.getElementById("health").before(h("a", { id: "setup-banner", class: "pill warn", href: "#/setup",
        title: "No admin login yet: the configuration is read-only. Create the admin login on the set-up page." },
      "no login: set up"));
    } catch (e) { /* logged in elsewhere or offline: nothing to say */ }
  }

  function loginForm(ctx) {
    if (!loopback()) {
      return h("section", { class: "setup-login" }, h("h2", {}, "Create the admin login"),
        h("p", {}, "For safety the first login can only be made on this machine itself: open ",
          h("code", {}, `http://127.0.0.1:${location.port || 80}/#/setup`),
          " there (an SSH tunnel works), or put a hash from ", h("code", {}, "supervisor hash-password"),
          " into api.auth of the config."));
    }
    const user = h("input", { name: "username", value: "admin", autocomplete: "username", required: true });
    const pass = h("input", { name: "password", type: "password", autocomplete: "new-password", minlength: "8", required: true });
    const again = h("input", { name: "password2", type: "password", autocomplete: "new-password", required: true });
    const msg = h("div", { class: "note", hidden: true });
    const form = h("form", { class: "setup-login", onsubmit: async (ev) => {
      ev.preventDefault();
      msg.hidden = true;
      if (pass.value !== again.value) {
        msg.textContent = "The two passwords differ.";
        msg.hidden = false;
        return;
      }
      const r = await ctx.api("/api/setup", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username: user.value, password: pass.value }) });
      if (!r.ok) return problems(r, msg);
      const b = document.getElementById("setup-banner");
      if (b) b.remove();
      location.hash = "#/setup";
      // The login exists now: the next request asks for it.
      ctx.showLogin();
    } },
    h("h2", {}, "Create the admin login"),
    h("p", {}, "Cameras, zones and settings can be changed here once there is a login. It is written to the config file (the password as an Argon2 hash)."),
    field("User", user), field("Password (at least 8 characters)", pass), field("Password again", again),
    h("button", { type: "submit" }, "Create login"), msg);
    return form;
  }

  // ---- Camera list ----

  async function home(ctx) {
    const cfg = await loadConfig(ctx.api);
    const parts = [];
    if (cfg.setup_needed) parts.push(loginForm(ctx));
    const rows = cfg.cameras.map((c) => h("tr", { "data-camera": c.id },
      h("td", {}, c.name), h("td", {}, h("code", {}, c.id)), h("td", {}, c.enabled ? "on" : "off"),
      h("td", {}, c.schedule ? `schedule ${c.schedule}` : c.recording.mode),
      h("td", {}, String(c.motion.zones.length), " / ", String(c.motion.masks.length)),
      h("td", { class: "actions" },
        h("a", { href: `#/setup/camera/${encodeURIComponent(c.id)}`, class: "button" }, "Settings"),
        h("a", { href: `#/setup/zones/${encodeURIComponent(c.id)}`, class: "button" }, "Zones"))));
    parts.push(h("section", {},
      h("div", { class: "controls" }, h("h2", {}, "Cameras"),
        cfg.editable ? h("a", { href: "#/setup/add", class: "button", id: "add-camera" }, "Add camera") : null),
      cfg.problems.length ? h("ul", { class: "note" }, ...cfg.problems.map((p) => h("li", {}, `${p.path}: ${p.message}`))) : null,
      h("div", { class: "scroll" }, h("table", { id: "setup-cameras" },
        h("tr", {}, ...["name", "id", "enabled", "recording", "zones / masks", ""].map((x) => h("th", {}, x))), ...rows)),
      cfg.editable ? null : h("p", { class: "note" }, "Read-only until the admin login exists.")));
    ctx.main.replaceChildren(h("div", { class: "setup" }, ...parts));
  }

  // ---- Add camera: the form, its test, its save ----

  function slug(name) {
    return name.toLowerCase().normalize("NFKD").replace(/[^a-z0-9_-]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 48);
  }

  // The probe's answer, one row per stream.
  function probeTable(answer) {
    const row = (s) => {
      const size = s.width ? `${s.width}×${s.height}` : "";
      const fps = s.fps ? `${Math.round(s.fps * 10) / 10} fps` : "";
      const what = s.failure ? h("span", { class: "pill bad" }, s.failure.replace(/_/g, " ")) : h("span", { class: "pill ok" }, "ok");
      return h("tr", { "data-stream": s.role, "data-failure": s.failure || "" },
        h("td", {}, s.role.toUpperCase()), h("td", {}, what),
        h("td", { class: "codec" }, [s.codec, s.profile].filter(Boolean).join(" ")), h("td", { class: "size" }, size),
        h("td", { class: "fps" }, fps), h("td", {}, s.gop_s ? `GOP ${s.gop_s} s` : ""),
        h("td", {}, s.audio ? `audio ${s.audio}` : ""),
        h("td", {}, s.recordable === false ? "cannot be recorded without transcoding" : s.recordable ? "recordable" : ""),
        h("td", { class: "detail" }, s.failure ? s.detail || "" : ""));
    };
    return h("div", { class: "scroll" }, h("table", { class: "probe", "data-usable": String(answer.usable) }, ...answer.streams.map(row)));
  }

  async function addPage(ctx) {
    const cfg = await loadConfig(ctx.api);
    let etag = cfg.etag;
    const d = cfg.new_camera || { recording: { mode: "motion" } };
    if (!cfg.editable) return home(ctx);
    const name = h("input", { name: "name", required: true, placeholder: "Front door" });
    const id = h("input", { name: "id", required: true, pattern: "[A-Za-z0-9_\\-]+", placeholder: "front_door" });
    let idTyped = false;
    id.addEventListener("input", () => { idTyped = true; });
    name.addEventListener("input", () => { if (!idTyped) id.value = slug(name.value); });
    const brand = h("select", { name: "brand" }, h("option", { value: "" }, "Other / type the URLs"),
      ...Object.entries(BRANDS).map(([k, b]) => h("option", { value: k }, b.name)));
    const host = h("input", { name: "host", placeholder: "192.168.1.20" });
    const hint = h("p", { class: "hint" });
    const mainUrl = h("input", { name: "main_url", required: true, placeholder: "rtsp://192.168.1.20:554/stream1", inputmode: "url" });
    const subUrl = h("input", { name: "sub_url", placeholder: "rtsp://192.168.1.20:554/stream2 (empty: the main stream)", inputmode: "url" });
    const user = h("input", { name: "username", autocomplete: "off" });
    const pass = h("input", { name: "password", type: "password", autocomplete: "new-password" });
    const mode = h("select", { name: "mode" }, ...["motion", "continuous", "off"].map((m) => h("option", { value: m, selected: m === d.recording.mode }, m)));
    const showHint = () => {
      const b = BRANDS[brand.value];
      hint.replaceChildren(...(b ? [h("strong", {}, b.name), `: main ${b.main}, sub ${b.sub}. ${b.note}`]
        : ["Tapo: rtsp://HOST:554/stream1 and /stream2 · Reolink: rtsp://HOST:554/h264Preview_01_main and _sub · Hikvision: rtsp://HOST:554/Streaming/Channels/101 and 102"]));
    };
    const fill = () => {
      const b = BRANDS[brand.value];
      if (!b || !host.value.trim()) return;
      mainUrl.value = b.main.replace("HOST", host.value.trim());
      subUrl.value = b.sub.replace("HOST", host.value.trim());
    };
    brand.addEventListener("change", () => { showHint(); fill(); });
    host.addEventListener("change", fill);
    showHint();
    const camera = () => {
      const c = { id: id.value.trim() || "new", name: name.value.trim() || undefined, main_url: mainUrl.value.trim() };
      if (subUrl.value.trim()) c.sub_url = subUrl.value.trim();
      if (user.value.trim()) c.username = user.value.trim();
      if (pass.value) c.password = pass.value;
      return c;
    };
    const result = h("div", { id: "probe-result" });
    const msg = h("div", { class: "note", hidden: true, id: "add-message" });
    const test = h("button", { type: "button", id: "probe", onclick: async () => {
      msg.hidden = true;
      if (!mainUrl.value.trim()) return mainUrl.reportValidity();
      test.disabled = true;
      result.replaceChildren(h("p", {}, "Testing the streams (up to 12 s)…"));
      try {
        const r = await ctx.api("/api/probe", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(camera()) });
        if (r.status === 429) result.replaceChildren(h("p", { class: "note" }, `Too many tests; try again in ${r.headers.get("Retry-After") || "a few"} s.`));
        else if (!r.ok) { result.replaceChildren(); await problems(r, msg); }
        else {
          const a = await r.json();
          result.replaceChildren(h("p", {}, a.usable ? "Every stream works." : "Not every stream can be used:"), probeTable(a));
        }
      } finally {
        test.disabled = false;
      }
    } }, "Test");
    const form = h("form", { class: "setup-form", id: "add-form", onsubmit: async (ev) => {
      ev.preventDefault();
      msg.hidden = true;
      const c = camera();
      c.recording = { mode: mode.value };
      const r = await ctx.api("/api/config/cameras", { method: "POST", headers: { "Content-Type": "application/json", "If-Match": etag }, body: JSON.stringify(c) });
      if (r.ok) {
        // To the live grid once the status names the new camera (its worker is starting).
        msg.replaceChildren("Saved; starting the camera…");
        msg.hidden = false;
        let done = false;
        const go = () => {
          if (done) return;
          done = true;
          if (location.hash === "#/setup/add") location.hash = "#/";
        };
        const late = setTimeout(go, 10000);
        const off = ctx.onStatus((s) => { if (s.cameras.some((x) => x.id === c.id)) go(); });
        ctx.cleanup.push(() => { off(); clearTimeout(late); });
        return;
      }
      const body = await problems(r, msg);
      if (r.status === 409 && body.etag) {
        etag = body.etag;
        msg.append(h("p", {}, "Press Save again to add the camera to the current file."));
      }
    } },
    h("h2", {}, "Add camera"),
    field("Name", name), field("Id", id, "Letters, digits, _ and -; used in file names and the API."),
    h("fieldset", {}, h("legend", {}, "Streams"),
      h("div", { class: "row" }, field("Camera make", brand), field("Address", host, "Fills in the URLs for the make chosen.")),
      hint, field("Main stream URL (recorded)", mainUrl), field("Sub stream URL (motion and live grid)", subUrl)),
    h("fieldset", {}, h("legend", {}, "Login of the camera"),
      h("div", { class: "row" }, field("User", user), field("Password", pass, "Written to the config file, which only the NVR can read (mode 0600). To keep it out of the file, leave it empty and set password_env in the file instead."))),
    field("Recording", mode),
    h("div", { class: "controls" }, test, h("button", { type: "submit", id: "save" }, "Save"), h("a", { href: "#/setup" }, "Cancel")),
    result, msg);
    ctx.main.replaceChildren(h("div", { class: "setup" }, form));
  }

  // ---- A camera's settings ----

  // What a save did, from the write's answer and its reload summary.
  function savedText(a, camId) {
    if (!a.changed) return "Nothing changed.";
    const r = a.reload;
    if (!r || r.status === "rejected") return `Saved, but not applied${r ? ": " + r.error : ""}.`;
    const s = r.summary || {};
    if ((s.changed || []).includes(camId)) return "Saved; the camera's worker restarts with the new settings.";
    if ((s.removed || []).includes(camId)) return "Removed.";
    return "Saved and applied (no restart).";
  }

  // The worker's motion level (heartbeat): the whole watched area and each zone.
  function motionLevel(c) {
    return (c && c.worker && c.worker.motion) || null;
  }

  async function cameraPage(ctx, camId) {
    const cfg = await loadConfig(ctx.api);
    let etag = cfg.etag;
    const c = cfg.cameras.find((x) => x.id === camId);
    if (!c) return ctx.main.replaceChildren(h("p", {}, `No camera ${camId}.`));
    const ro = !cfg.editable;
    const enabled = h("input", { type: "checkbox", name: "enabled", checked: c.enabled, disabled: ro });
    const name = h("input", { name: "name", value: c.name, disabled: ro });
    const mainUrl = h("input", { name: "main_url", value: c.main_url, disabled: ro });
    const subUrl = h("input", { name: "sub_url", value: c.sub_url || "", disabled: ro });
    const user = h("input", { name: "username", value: c.username || "", autocomplete: "off", disabled: ro });
    const pass = h("input", { name: "password", type: "password", value: c.password ? "***" : "", autocomplete: "new-password", disabled: ro });
    const threshold = h("input", { type: "range", name: "threshold", min: "1", max: "255", value: String(c.motion.threshold), disabled: ro });
    const thresholdOut = h("output", {}, String(c.motion.threshold));
    const minArea = h("input", { type: "number", name: "min_area", min: "0", max: "100", step: "0.1", value: String(c.motion.min_area), disabled: ro });
    // While a value moves, the worker tries it (not saved, for a minute) so the live level below
    // shows what it would see; leaving the page or saving ends the trial.
    const previewUrl = `/api/cameras/${encodeURIComponent(camId)}/motion/preview`;
    const trying = h("span", { class: "trying", id: "motion-trying" });
    let previewTimer = null;
    let previewing = false;
    const preview = () => {
      clearTimeout(previewTimer);
      previewTimer = setTimeout(async () => {
        const body = { threshold: Number(threshold.value), min_area: Number(minArea.value), for_s: 60 };
        const r = await ctx.api(previewUrl, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }).catch(() => null);
        previewing = !!(r && r.ok);
        trying.textContent = previewing ? ` (trying sensitivity ${body.threshold}, not saved)` : "";
      }, 150);
    };
    const endPreview = () => {
      clearTimeout(previewTimer);
      if (previewing) ctx.api(previewUrl, { method: "DELETE" }).catch(() => {});
      previewing = false;
      trying.textContent = "";
    };
    threshold.addEventListener("input", () => { thresholdOut.textContent = threshold.value; preview(); });
    minArea.addEventListener("input", preview);
    const motionOn = h("input", { type: "checkbox", name: "motion_enabled", checked: c.motion.enabled, disabled: ro });
    const mode = h("select", { name: "mode", disabled: ro || !!c.schedule },
      ...["motion", "continuous", "off"].map((m) => h("option", { value: m, selected: m === c.recording.mode }, m)));
    const pre = h("input", { type: "number", name: "pre_roll_s", min: "0", step: "1", value: String(c.recording.pre_roll_s), disabled: ro });
    const post = h("input", { type: "number", name: "post_roll_s", min: "0", step: "1", value: String(c.recording.post_roll_s), disabled: ro });
    const level = h("span", { id: "motion-level", class: "level" }, "–");
    const bar = h("span", { class: "bar" });
    const msg = h("div", { class: "note", hidden: true });
    const saved = h("span", { class: "saved", id: "settings-saved" });
    const send = async (method, path, body) => {
      msg.hidden = true;
      saved.textContent = "";
      const r = await ctx.api(path, { method, headers: { "Content-Type": "application/json", "If-Match": etag }, body: body && JSON.stringify(body) });
      if (r.ok) {
        const a = await r.json();
        etag = a.etag || etag;
        saved.textContent = savedText(a, camId);
        return true;
      }
      const b = await problems(r, msg);
      if (r.status === 409 && b.etag) msg.append(h("p", {}, "Someone changed the file meanwhile: reload this page and make the change again."));
      return false;
    };
    const form = h("form", { class: "setup-form", id: "camera-form", onsubmit: async (ev) => {
      ev.preventDefault();
      const edit = {
        name: name.value.trim(), enabled: enabled.checked, main_url: mainUrl.value.trim(),
        motion: { enabled: motionOn.checked, threshold: Number(threshold.value), min_area: Number(minArea.value) },
        recording: { pre_roll_s: Number(pre.value), post_roll_s: Number(post.value) },
      };
      edit.sub_url = subUrl.value.trim() || null;
      if (user.value.trim() || c.username) edit.username = user.value.trim() || null;
      if (pass.value !== "***") edit.password = pass.value || null;
      if (!c.schedule) edit.recording.mode = mode.value;
      clearTimeout(previewTimer);
      // Saved settings replace the trial (the reload ends it; the DELETE makes sure).
      if (await send("PUT", `/api/config/cameras/${encodeURIComponent(camId)}`, edit)) endPreview();
    } },
    h("h2", {}, c.name, " ", h("small", {}, h("a", { href: `#/setup/zones/${encodeURIComponent(camId)}` }, "zones and masks"))),
    h("label", { class: "check" }, enabled, " Enabled"),
    field("Name", name),
    h("fieldset", {}, h("legend", {}, "Motion"),
      h("label", { class: "check" }, motionOn, " Detect motion"),
      h("p", {}, "Motion now: ", level, trying, bar),
      field("Sensitivity: pixel change that counts (1-255, lower is more sensitive)", h("span", { class: "row" }, threshold, thresholdOut)),
      field("Smallest changed area, % of the watched area (0: the object rule alone)", minArea),
      h("small", {}, "The level shown is the worker's: while you move the sensitivity it tries the new value for a minute without saving it; Save applies new sensitivity, zones and masks at once, without a restart.")),
    h("fieldset", {}, h("legend", {}, "Recording"),
      field("Mode", mode, c.schedule ? `Decided by the schedule ${c.schedule}.` : null),
      h("div", { class: "row" }, field("Pre-roll (s)", pre), field("Post-roll (s)", post)),
      h("small", {}, "Turning recording or detection on or off, and the pre-roll, restart the camera's worker (a second or two without a picture).")),
    h("fieldset", {}, h("legend", {}, "Streams (a change restarts the camera's worker)"),
      field("Main stream URL", mainUrl), field("Sub stream URL", subUrl),
      h("div", { class: "row" }, field("User", user), field("Password", pass, "*** keeps the stored one."))),
    ro ? h("p", { class: "note" }, "Read-only until the admin login exists.") : h("div", { class: "controls" },
      h("button", { type: "submit", id: "save" }, "Save"), saved,
      h("button", { type: "button", class: "danger", id: "delete", onclick: async () => {
        if (!confirm(`Remove ${c.name} from the config? Its recordings stay on disk.`)) return;
        if (await send("DELETE", `/api/config/cameras/${encodeURIComponent(camId)}`)) location.hash = "#/setup";
      } }, "Remove camera")),
    msg);
    ctx.main.replaceChildren(h("div", { class: "setup" }, form));
    const off = ctx.onStatus((s) => {
      const now = s.cameras.find((x) => x.id === camId);
      const m = motionLevel(now);
      level.textContent = m ? `${pct(m.score)} of the watched area changed${now.motion && now.motion.active ? " (motion)" : ""}` : "no reading (camera not running, or motion off)";
      level.dataset.score = m ? String(m.score) : "";
      bar.style.width = m ? `${Math.min(100, m.score * 4)}%` : "0";
    });
    ctx.cleanup.push(off, endPreview);
  }

  // ---- Zone and mask editor ----

  const round = (v) => Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000;

  // Whether point p is inside polygon pts (even-odd rule), in normalised coordinates.
  function inside(p, pts) {
    let inn = false;
    for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
      const [xi, yi] = pts[i];
      const [xj, yj] = pts[j];
      if ((yi > p[1]) !== (yj > p[1]) && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) inn = !inn;
    }
    return inn;
  }

  async function zonesPage(ctx, camId) {
    const cfg = await loadConfig(ctx.api);
    let etag = cfg.etag;
    const c = cfg.cameras.find((x) => x.id === camId);
    if (!c) return ctx.main.replaceChildren(h("p", {}, `No camera ${camId}.`));
    const ro = !cfg.editable;
    // Shapes: zones (named) and masks, points normalised 0-1 over the SUB picture.
    let shapes = [
      ...c.motion.zones.map((z) => ({ kind: "zone", name: z.name, points: z.points.map((p) => [...p]) })),
      ...c.motion.masks.map((m) => ({ kind: "mask", points: m.map((p) => [...p]) })),
    ];
    let selected = -1;
    let drawing = null; // { kind, points } while a shape is being drawn
    let drag = null; // { index, vertex (or -1: the whole shape), from, orig }
    let dirty = false;
    let levels = null;

    const img = h("img", { alt: `${c.name}: live picture`, class: "snapshot" });
    const canvas = h("canvas", { class: "zones-canvas", id: "zone-canvas", "aria-label": "zone editor: click to place points" });
    const stage = h("div", { class: "stage" }, img, canvas);
    const list = h("ul", { class: "shapes", id: "shapes" });
    const nameInput = h("input", { name: "zone_name", id: "zone-name", placeholder: "zone name", disabled: true });
    const msg = h("div", { class: "note", hidden: true });
    const saved = h("span", { class: "saved", id: "zones-saved" });
    const tip = h("p", { class: "hint", id: "zone-tip" });

    const uniqueName = () => {
      for (let i = 1; ; i++) if (!shapes.some((s) => s.kind === "zone" && s.name === `zone${i}`)) return `zone${i}`;
    };
    const changed = () => { dirty = true; saved.textContent = ""; render(); };

    const startDraw = (kind) => {
      drawing = { kind, points: [] };
      selected = -1;
      render();
    };
    const finish = () => {
      if (!drawing) return;
      if (drawing.points.length >= 3) {
        const s = { kind: drawing.kind, points: drawing.points };
        if (s.kind === "zone") s.name = uniqueName();
        shapes.push(s);
        selected = shapes.length - 1;
        dirty = true;
      }
      drawing = null;
      render();
    };
    const remove = () => {
      if (selected < 0) return;
      shapes.splice(selected, 1);
      selected = -1;
      changed();
    };
    nameInput.addEventListener("input", () => {
      const s = shapes[selected];
      if (s && s.kind === "zone") { s.name = nameInput.value; changed(); }
    });

    const pos = (ev) => {
      const r = canvas.getBoundingClientRect();
      return [round((ev.clientX - r.left) / r.width), round((ev.clientY - r.top) / r.height)];
    };
    const near = (a, b) => {
      const r = canvas.getBoundingClientRect();
      return Math.hypot((a[0] - b[0]) * r.width, (a[1] - b[1]) * r.height) < 12;
    };
    canvas.addEventListener("pointerdown", (ev) => {
      if (ro) return;
      const p = pos(ev);
      if (drawing) {
        if (drawing.points.length >= 3 && near(p, drawing.points[0])) return finish();
        drawing.points.push(p);
        return render();
      }
      // A corner of the selected shape, else the topmost shape under the pointer.
      const sel = shapes[selected];
      const vertex = sel ? sel.points.findIndex((q) => near(p, q)) : -1;
      let index = vertex >= 0 ? selected : -1;
      if (index < 0) for (let i = shapes.length - 1; i >= 0; i--) if (inside(p, shapes[i].points)) { index = i; break; }
      selected = index;
      if (index >= 0) {
        drag = { index, vertex, from: p, orig: shapes[index].points.map((q) => [...q]) };
        canvas.setPointerCapture(ev.pointerId);
      }
      render();
    });
    canvas.addEventListener("pointermove", (ev) => {
      if (!drag) return;
      const p = pos(ev);
      const s = shapes[drag.index];
      if (drag.vertex >= 0) s.points[drag.vertex] = p;
      else {
        // The whole shape moves, kept inside the picture.
        const xs = drag.orig.map((q) => q[0]);
        const ys = drag.orig.map((q) => q[1]);
        const dx = Math.min(1 - Math.max(...xs), Math.max(-Math.min(...xs), p[0] - drag.from[0]));
        const dy = Math.min(1 - Math.max(...ys), Math.max(-Math.min(...ys), p[1] - drag.from[1]));
        s.points = drag.orig.map((q) => [round(q[0] + dx), round(q[1] + dy)]);
      }
      changed();
    });
    const endDrag = () => { drag = null; };
    canvas.addEventListener("pointerup", endDrag);
    canvas.addEventListener("pointercancel", endDrag);
    canvas.addEventListener("dblclick", finish);

    function render() {
      // The canvas matches the picture's box, in device pixels.
      const r = canvas.getBoundingClientRect();
      const dpr = window.devicePixelRatio || 1;
      if (canvas.width !== Math.round(r.width * dpr) || canvas.height !== Math.round(r.height * dpr)) {
        canvas.width = Math.round(r.width * dpr);
        canvas.height = Math.round(r.height * dpr);
      }
      const g = canvas.getContext("2d");
      g.setTransform(1, 0, 0, 1, 0, 0);
      g.clearRect(0, 0, canvas.width, canvas.height);
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      const W = r.width;
      const H = r.height;
      const path = (pts, close) => {
        g.beginPath();
        pts.forEach(([x, y], i) => (i ? g.lineTo(x * W, y * H) : g.moveTo(x * W, y * H)));
        if (close) g.closePath();
      };
      shapes.forEach((s, i) => {
        const zone = s.kind === "zone";
        path(s.points, true);
        g.fillStyle = zone ? "rgba(79,195,247,0.25)" : "rgba(0,0,0,0.55)";
        g.fill();
        g.lineWidth = i === selected ? 3 : 2;
        g.strokeStyle = zone ? "#4fc3f7" : "#ef6c00";
        g.stroke();
        if (i === selected) for (const [x, y] of s.points) { g.fillStyle = "#fff"; g.fillRect(x * W - 4, y * H - 4, 8, 8); }
        const [lx, ly] = s.points[0];
        g.fillStyle = "#fff";
        g.font = "13px system-ui, sans-serif";
        const level = zone && levels ? levels.zones.find((z) => z.name === s.name) : null;
        g.fillText(zone ? `${s.name}${level ? " " + pct(level.score) : ""}` : "mask", lx * W + 4, ly * H + 15);
      });
      if (drawing && drawing.points.length) {
        path(drawing.points, false);
        g.strokeStyle = "#fff";
        g.setLineDash([6, 4]);
        g.lineWidth = 2;
        g.stroke();
        g.setLineDash([]);
        for (const [x, y] of drawing.points) { g.fillStyle = "#fff"; g.fillRect(x * W - 3, y * H - 3, 6, 6); }
      }
      tip.textContent = drawing
        ? `Drawing a ${drawing.kind}: click each corner; click the first corner, double-click or press Finish to close it (${drawing.points.length} points).`
        : "Click a shape to select it; drag it or its corners to move them.";
      finishBtn.disabled = !drawing;
      deleteBtn.disabled = selected < 0;
      const sel = shapes[selected];
      nameInput.disabled = !(sel && sel.kind === "zone");
      if (document.activeElement !== nameInput) nameInput.value = sel && sel.kind === "zone" ? sel.name : "";
      list.replaceChildren(...shapes.map((s, i) => {
        const level = s.kind === "zone" && levels ? levels.zones.find((z) => z.name === s.name) : null;
        return h("li", { class: i === selected ? "selected" : "", "data-kind": s.kind, "data-name": s.name || "",
          onclick: () => { selected = i; render(); } },
        s.kind === "zone" ? `zone ${s.name}` : "mask", ` (${s.points.length} points)`,
        s.kind === "zone" ? h("span", { class: "level" }, level ? ` motion ${pct(level.score)}` : "") : "");
      }));
      if (!shapes.length) list.append(h("li", {}, "No zones: the whole picture is watched."));
    }

    const drawZone = h("button", { type: "button", id: "draw-zone", onclick: () => startDraw("zone"), disabled: ro }, "Draw zone");
    const drawMask = h("button", { type: "button", id: "draw-mask", onclick: () => startDraw("mask"), disabled: ro }, "Draw mask");
    const finishBtn = h("button", { type: "button", id: "finish-shape", onclick: finish }, "Finish");
    const deleteBtn = h("button", { type: "button", id: "delete-shape", onclick: remove }, "Delete");
    const save = h("button", { type: "button", id: "save-zones", disabled: ro, onclick: async () => {
      msg.hidden = true;
      if (drawing) finish();
      const body = {
        zones: shapes.filter((s) => s.kind === "zone").map((s) => ({ name: s.name, points: s.points })),
        masks: shapes.filter((s) => s.kind === "mask").map((s) => s.points),
      };
      const r = await ctx.api(`/api/config/cameras/${encodeURIComponent(camId)}/zones`, {
        method: "PUT", headers: { "Content-Type": "application/json", "If-Match": etag }, body: JSON.stringify(body) });
      if (r.ok) {
        const a = await r.json();
        etag = a.etag;
        dirty = false;
        saved.textContent = savedText(a, camId);
        return;
      }
      const b = await problems(r, msg);
      if (r.status === 409 && b.etag) msg.append(h("p", {}, "Someone changed the file meanwhile: reload this page and draw again."));
    } }, "Save");

    ctx.main.replaceChildren(h("div", { class: "setup zones-editor", "data-camera": camId },
      h("h2", {}, `Zones and masks: ${c.name}`),
      h("p", {}, "Zones are the areas watched for motion (none: the whole picture); masks are left out of every zone (a clock, a tree, a road)."),
      stage, tip,
      h("div", { class: "controls" }, drawZone, drawMask, finishBtn, deleteBtn, nameInput, save, saved),
      list, msg,
      h("p", {}, h("a", { href: `#/setup/camera/${encodeURIComponent(camId)}` }, "Camera settings"), " · ", h("a", { href: "#/setup" }, "All cameras"))));

    // The live SUB picture, a new snapshot each second (the next only once the last has loaded).
    let timer = null;
    let alive = true;
    const next = () => {
      if (!alive) return;
      const url = `/api/cameras/${encodeURIComponent(camId)}/snapshot.jpg?t=${Date.now()}`;
      const pic = new Image();
      pic.onload = () => {
        img.src = pic.src;
        stage.style.aspectRatio = `${pic.naturalWidth} / ${pic.naturalHeight}`;
        stage.dataset.loaded = "1";
        render();
        timer = setTimeout(next, 1000);
      };
      pic.onerror = () => { img.classList.add("missing"); timer = setTimeout(next, 2000); };
      pic.src = url;
    };
    img.addEventListener("load", () => { img.classList.remove("missing"); render(); }, { once: true });
    next();
    const onResize = () => render();
    window.addEventListener("resize", onResize);
    const off = ctx.onStatus((s) => {
      const now = s.cameras.find((x) => x.id === camId);
      levels = motionLevel(now);
      stage.dataset.score = levels ? String(levels.score) : "";
      render();
    });
    const beforeUnload = (e) => { if (dirty) e.preventDefault(); };
    window.addEventListener("beforeunload", beforeUnload);
    ctx.cleanup.push(() => {
      alive = false;
      clearTimeout(timer);
      off();
      window.removeEventListener("resize", onResize);
      window.removeEventListener("beforeunload", beforeUnload);
    });
    render();
  }

  // `#/setup`, `#/setup/add`, `#/setup/camera/ID`, `#/setup/zones/ID`. ctx: { main, api, onStatus,
  // cleanup (an array of functions run when the page goes), showLogin }.
  async function page(path, ctx) {
    const rest = path.replace(/^\/setup\/?/, "");
    if (rest === "add") return addPage(ctx);
    if (rest.startsWith("camera/")) return cameraPage(ctx, decodeURIComponent(rest.slice(7)));
    if (rest.startsWith("zones/")) return zonesPage(ctx, decodeURIComponent(rest.slice(6)));
    return home(ctx);
  }

  window.nvrSetup = { page, banner };
})();
