// Drives the NVR's web UI in Debian's headless Chromium with playwright-core, against a running
// supervisor and fake cameras that the Rust test `ui.rs` started. Exits non-zero on the first
// failed check, after saving a screenshot of each page it reached into --shots.
//
//   node tests/ui/ui.mjs --base http://127.0.0.1:PORT --shots DIR --mode noauth \
//        --live CAM --down CAM --rec CAM
//   node tests/ui/ui.mjs --base http://127.0.0.1:PORT --shots DIR --mode auth --user U --password P
//   node tests/ui/ui.mjs --base ... --mode grid16 --downup CAM,CAM --h265 CAM --hold S
//        (prints `@off CAM` / `@on CAM` lines: the Rust test takes those cameras' mounts down and up)
//   node tests/ui/ui.mjs --base ... --mode single --camera CAM
import { chromium } from "playwright-core";
import { mkdirSync, readFileSync } from "node:fs";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
mkdirSync(args.shots, { recursive: true });

function check(ok, what) {
  if (!ok) throw new Error("check failed: " + what);
  console.log("ok: " + what);
  waitingFor = "";
}

// What the script is waiting for, so that a timeout says which check failed.
let waitingFor = "";
function waiting(what) {
  waitingFor = what;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"],
});
const pages = [];
const page = await newPage("main");
const shot = (name) => page.screenshot({ path: `${args.shots}/${name}.png`, fullPage: true });

try {
  if (args.mode === "auth") await authChecks();
  else if (args.mode === "grid16") await gridChecks();
  else if (args.mode === "single") await singleChecks();
  else await uiChecks();
  for (const p of pages) await cspChecks(p);
} catch (e) {
  console.error(String(e.stack || e));
  if (waitingFor && e.name === "TimeoutError") console.error(`check failed: timed out waiting for ${waitingFor}`);
  await shot("failure").catch(() => {});
  await browser.close();
  process.exit(1);
}
await browser.close();

// A page with the test's helpers installed before the UI's own script runs: Content-Security-Policy
// violations are collected (the API sends a CSP on every answer; the UI must live within it),
// `playing` events of any video are recorded with their position, and pictures can be compared.
async function newPage(name) {
  const p = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  p.on("console", (m) => console.log(`page ${name}: ${m.text()}`));
  await p.addInitScript(() => {
    const t = (window.__nvrtest = { violations: [], playing: [] });
    document.addEventListener("securitypolicyviolation",
      (e) => t.violations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`), true);
    // Media events do not bubble, but a capturing listener on the document sees them.
    document.addEventListener("playing", (e) => t.playing.push({ src: e.target.src, at: e.target.currentTime }), true);
    // The grey levels of `img` (a fraction of it: [x0, y0, x1, y1]) scaled to 64×36.
    t.gray = (img, region = [0, 0, 1, 1]) => {
      const [w, h] = [64, 36];
      const c = document.createElement("canvas");
      c.width = w;
      c.height = h;
      const g = c.getContext("2d", { willReadFrequently: true });
      const [iw, ih] = img instanceof HTMLVideoElement ? [img.videoWidth, img.videoHeight] : [img.naturalWidth, img.naturalHeight];
      const [x0, y0, x1, y1] = region;
      g.drawImage(img, x0 * iw, y0 * ih, (x1 - x0) * iw, (y1 - y0) * ih, 0, 0, w, h);
      const d = g.getImageData(0, 0, w, h).data;
      return Array.from({ length: w * h }, (_, i) => 0.299 * d[4 * i] + 0.587 * d[4 * i + 1] + 0.114 * d[4 * i + 2]);
    };
    t.diff = (a, b) => a.reduce((sum, v, i) => sum + Math.abs(v - b[i]), 0) / a.length;
    t.load = async (url) => {
      const img = new Image();
      img.src = url;
      await img.decode();
      return img;
    };
  });
  pages.push(p);
  return p;
}

async function cspChecks(p) {
  const violations = await p.evaluate(() => window.__nvrtest.violations);
  check(violations.length === 0, `the UI runs within the Content-Security-Policy (${violations.join("; ") || "no violations"})`);
}

async function closePage(p) {
  await cspChecks(p);
  pages.splice(pages.indexOf(p), 1);
  await p.close();
}

async function statusOf() {
  return (await (await fetch(args.base + "/status")).json()).cameras;
}

// The local calendar day of `ms`, as the UI's day picker names it.
function localDay(ms) {
  return new Date(ms - new Date(ms).getTimezoneOffset() * 60000).toISOString().slice(0, 10);
}

// How far the picture in `selector` is from each camera's snapshot, in mean grey levels over the top
// left of the frame: the clock scene's clock sits there on a black box, the motion scene shows its
// test pattern there (its box crosses lower down), so each camera's picture is near its own snapshot
// and far from the other's.
async function distances(p, selector, ids) {
  return p.evaluate(async ({ selector, ids }) => {
    const t = window.__nvrtest;
    const region = [0, 0, 0.4, 0.15];
    const shown = t.gray(document.querySelector(selector), region);
    const out = {};
    for (const id of ids) out[id] = t.diff(shown, t.gray(await t.load(`/api/cameras/${id}/snapshot.jpg?t=${Date.now()}`), region));
    return out;
  }, { selector, ids });
}

function nearest(d, id, what) {
  const others = Object.entries(d).filter(([k]) => k !== id);
  const fmt = Object.entries(d).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ");
  check(others.every(([, v]) => d[id] * 2 < v), `${what} shows camera ${id} (grey distance to each snapshot: ${fmt})`);
}

async function uiChecks() {
  const { live: liveId, down: downId, rec: recId } = args;
  // Live grid: one tile per camera, live pictures that change, the broken camera shown down.
  const answer = await page.goto(args.base + "/");
  check((answer.headers()["content-security-policy"] || "").includes("default-src 'self'"), "the UI is served with a Content-Security-Policy");
  await page.waitForSelector(".tile");
  const tiles = await page.locator(".tile").count();
  const cameras = await statusOf();
  check(tiles === cameras.length, `one tile per camera (${tiles})`);
  const live = page.locator(`.tile[data-camera="${liveId}"]`);
  // A tile plays its camera over MSE: a video with a picture.
  const loaded = (sel) => page.waitForFunction((sel) => {
    const v = document.querySelector(sel);
    return v && v.readyState >= 2 && v.videoWidth > 0;
  }, sel, { timeout: 20000 });
  await loaded(`.tile[data-camera="${liveId}"] video`);
  await loaded(`.tile[data-camera="${recId}"] video`);
  waiting("the live tile's picture to change");
  await page.evaluate((id) => {
    const t = window.__nvrtest;
    t.first = t.gray(document.querySelector(`.tile[data-camera="${id}"] video`));
  }, liveId);
  await page.waitForFunction((id) => {
    const t = window.__nvrtest;
    return t.diff(t.first, t.gray(document.querySelector(`.tile[data-camera="${id}"] video`))) > 0;
  }, liveId, { timeout: 10000 });
  check(true, "the live tile's picture changes over time");
  nearest(await distances(page, `.tile[data-camera="${liveId}"] video`, [liveId, recId]), liveId, "the clock's tile");
  nearest(await distances(page, `.tile[data-camera="${recId}"] video`, [liveId, recId]), recId, "the recorder's tile");
  waiting("the broken camera's tile to say it is down");
  await page.waitForSelector(`.tile.is-down[data-camera="${downId}"]`, { timeout: 20000 });
  check(await page.locator(`.tile[data-camera="${downId}"] .down`).isVisible(), "the broken camera's tile says it is down");
  check(!(await live.evaluate((t) => t.classList.contains("is-down"))), "the live camera is not shown down");

  // Tile indicators against cameras whose state is known: both fake cameras send 30 fps, the broken
  // one nothing; only the continuous recorder records.
  waiting("the tiles to show 30 fps for both fake cameras and none for the broken one");
  const fps = await page.waitForFunction(({ ids, down }) => {
    const text = (id, what) => document.querySelector(`.tile[data-camera="${id}"] .${what}`).textContent;
    const shown = ids.map((id) => text(id, "fps"));
    const ok = shown.every((s) => /^\d+ fps$/.test(s) && Math.abs(parseInt(s) - 30) <= 5);
    return ok && !/[1-9]/.test(text(down, "fps")) && shown.join(", ");
  }, { ids: [liveId, recId], down: downId }, { timeout: 20000 });
  check(true, `the tiles show the cameras' frame rates (${await fps.jsonValue()}), none for the broken one`);
  waiting("the recording camera's tile to say rec");
  await page.waitForFunction((id) => document.querySelector(`.tile[data-camera="${id}"] .rec`).textContent.includes("rec"), recId, { timeout: 20000 });
  const recPills = await page.locator(".tile .rec .pill").evaluateAll((ps) => ps.map((p) => p.closest(".tile").dataset.camera));
  check(recPills.length === 1 && recPills[0] === recId, `only the recording camera's tile says rec (${recPills.join(", ")})`);
  await shot("grid");

  // Motion: the fake camera's box crosses the recorder's picture in the second half of every 20 s
  // loop, and nothing moves in the clock's. A second page watches the grid while the checks below
  // run, and must see the recorder's motion indicator come and go, and never the clock's.
  const watcher = await newPage("watcher");
  await watcher.goto(args.base + "/");
  await watcher.waitForSelector(`.tile[data-camera="${recId}"] .state .pill`);
  await watcher.evaluate(({ rec, others }) => {
    const t = window.__nvrtest;
    t.motion = { on: false, offAfterOn: false, others: [] };
    const has = (id) => document.querySelector(`.tile[data-camera="${id}"] .motion .pill`) !== null;
    setInterval(() => {
      if (has(rec)) t.motion.on = true;
      else if (t.motion.on) t.motion.offAfterOn = true;
      for (const id of others) if (has(id) && !t.motion.others.includes(id)) t.motion.others.push(id);
    }, 100);
  }, { rec: recId, others: [liveId, downId] });

  // Single camera view at the full rate, of the camera whose tile was clicked (not the first one).
  const recName = await page.locator(`.tile[data-camera="${recId}"] .name`).textContent();
  await page.locator(`.tile[data-camera="${recId}"]`).click();
  await page.waitForFunction((id) => location.hash === `#/camera/${id}`, recId);
  await loaded(".single video");
  check(await page.locator(".single h2").textContent() === recName, `the single view is titled ${recName}`);
  const size = await page.locator(".single video").evaluate((v) => `${v.videoWidth}x${v.videoHeight}`);
  check(size === "1920x1080" && await page.locator(".single").getAttribute("data-stream") === "main",
    `the single view plays the clicked camera's MAIN stream at full resolution (${size})`);
  nearest(await distances(page, ".single video", [liveId, recId]), recId, "the single view's picture");
  await shot("camera");

  // Status: the worker's pid, a killed worker's restart, and the restart button's.
  await page.goto(args.base + "/#/status");
  await page.waitForSelector(`#status-table tr[data-camera="${liveId}"]`);
  const pidColumn = await page.locator("#status-table th").evaluateAll((ths) => ths.findIndex((th) => th.textContent === "pid"));
  // Waits until the live camera's row shows a running worker other than `old`, whose last restart
  // was for `reason`; returns its pid.
  const restarted = async (old, reason) => (await page.waitForFunction(({ id, col, old, reason }) => {
    const row = document.querySelector(`#status-table tr[data-camera="${id}"]`);
    const pid = row?.querySelectorAll("td")[col]?.textContent;
    return row && /^\d+$/.test(pid) && pid !== old && row.querySelector(".state").textContent === "running"
      && row.querySelector(".restarts").textContent.includes(`(${reason}:`) && pid;
  }, { id: liveId, col: pidColumn, old, reason }, { timeout: 20000 })).jsonValue();
  const before = (await statusOf()).find((c) => c.id === liveId);
  const oldPid = String(before.pid);
  process.kill(before.pid, "SIGKILL");
  waiting("the status page to show the killed worker's restart (reason signal, a new pid)");
  const killedPid = await restarted(oldPid, "signal");
  check(killedPid === String((await statusOf()).find((c) => c.id === liveId).pid),
    `the status page shows the killed worker's restart (reason signal, pid ${oldPid} → ${killedPid})`);
  let asked = "";
  page.once("dialog", (d) => { asked = d.message(); d.accept(); });
  await page.locator(`#status-table tr[data-camera="${liveId}"] button`).click();
  waiting("the restart button's restart (reason manual, a new pid)");
  const newPid = await restarted(killedPid, "manual");
  const after = (await statusOf()).find((c) => c.id === liveId);
  check(asked.includes(before.name), `the restart button asks first ("${asked}")`);
  check(String(after.pid) === newPid && after.last_restart?.reason === "manual",
    `the restart button restarted the worker (pid ${killedPid} → ${newPid}, reason ${after.last_restart?.reason})`);
  await shot("status");

  // The motion indicator, watched since the grid checks.
  waiting("the recorder's motion indicator to come and go while its box crosses");
  await watcher.waitForFunction(() => window.__nvrtest.motion.offAfterOn, null, { timeout: 45000 });
  const others = await watcher.evaluate(() => window.__nvrtest.motion.others);
  check(others.length === 0, `the recorder's tile showed motion while its box crossed, then none; no other tile did (${others.join(", ") || "none"})`);
  await closePage(watcher);

  // Recordings: the day's clips and motion events (with thumbnails) of the recorder.
  const today = localDay(Date.now());
  const from = new Date(today + "T00:00:00").getTime();
  const q = `camera=${recId}&from=${from}&to=${from + 86400000 - 1}`;
  const getJson = async (path) => (await fetch(args.base + path)).json();
  const eventsBefore = await getJson(`/api/events?${q}`);
  check(eventsBefore.length >= 1 && eventsBefore.every((e) => e.thumbnail_url), `the index has the box's motion events, with thumbnails (${eventsBefore.length})`);
  await page.goto(args.base + `/#/recordings?camera=${recId}`);
  await page.waitForSelector("#clips .clip", { timeout: 30000 });
  await page.waitForSelector("#events .event");
  const recs = await getJson(`/api/recordings?${q}`);
  const eventsAfter = await getJson(`/api/events?${q}`);
  const listed = await page.locator("#events .event").evaluateAll((es) => es.map((e) => e.dataset.id));
  check(listed.length >= eventsBefore.length && listed.every((id) => eventsAfter.some((e) => e.id === id)),
    `the events list shows the day's motion events (${listed.length})`);
  waiting("every event's thumbnail");
  await page.waitForFunction(() => [...document.querySelectorAll("#events .event")].every((e) => {
    const img = e.querySelector("img");
    return img && img.complete && img.naturalWidth > 0;
  }), null, { timeout: 10000 });
  check(true, "every event shows its thumbnail");
  const clipIds = await page.locator("#clips .clip").evaluateAll((cs) => cs.map((c) => c.dataset.id));
  const finished = recs.filter((r) => r.state === "finished").map((r) => r.id);
  check(clipIds.length === finished.length && clipIds.every((id) => finished.includes(id)), `the clips list shows the day's finished clips (${clipIds.length})`);

  // The day picker: the day before has nothing, and today's clips come back.
  const yesterday = localDay(from - 12 * 3600000);
  waiting(`the day picker to show ${yesterday}: no clips, no motion`);
  await page.fill("#day", yesterday);
  await page.waitForFunction((d) => location.hash.includes(`day=${d}`) && document.getElementById("day")?.value === d
    && document.getElementById("clips")?.textContent.includes("No clips that day.")
    && document.getElementById("events")?.textContent.includes("No motion that day."), yesterday, { timeout: 10000 });
  check(true, `the day picker shows ${yesterday}: no clips, no motion`);
  waiting(`the day picker to show ${today}'s clips and events again`);
  await page.fill("#day", today);
  await page.waitForFunction((d) => location.hash.includes(`day=${d}`) && document.querySelector("#clips .clip") !== null
    && document.querySelector("#events .event") !== null, today, { timeout: 10000 });
  check(true, `the day picker shows ${today}'s clips and events again`);
  await shot("recordings-list");

  // A clip plays, and seeks while paused: the position reported on `seeked` is the one asked for.
  const clip = page.locator("#clips .clip").first();
  const clipId = await clip.getAttribute("data-id");
  waiting("a clicked clip to play");
  await clip.click();
  await page.waitForSelector("#video");
  await page.waitForFunction(() => {
    const v = document.getElementById("video");
    return v && v.readyState >= 2 && v.currentTime > 0.3;
  }, null, { timeout: 20000 });
  check(true, "a recording plays (currentTime advances)");
  const seek = await page.evaluate(async () => {
    const v = document.getElementById("video");
    v.pause();
    const from = v.currentTime;
    const target = v.duration * 0.6;
    const seeked = new Promise((resolve) => v.addEventListener("seeked", () => resolve({ at: v.currentTime, paused: v.paused }), { once: true }));
    v.currentTime = target;
    const timeout = new Promise((resolve) => setTimeout(() => resolve(null), 15000));
    return { from, target, duration: v.duration, seeked: await Promise.race([seeked, timeout]) };
  });
  check(seek.target - seek.from > 1.5, `the seek goes well beyond the paused position (${seek.from.toFixed(2)} → ${seek.target.toFixed(2)} s)`);
  check(seek.seeked && seek.seeked.paused && Math.abs(seek.seeked.at - seek.target) < 0.25,
    `seeking works: paused, to ${seek.target.toFixed(2)} s of ${seek.duration.toFixed(1)} s, seeked reports ${seek.seeked?.at.toFixed(2)} s`);
  const resumed = await page.evaluate(async () => {
    const v = document.getElementById("video");
    await v.play();
    return v.currentTime;
  });
  waiting("the video to play on after the seek");
  await page.waitForFunction((a) => document.getElementById("video").currentTime > a + 0.3, resumed, { timeout: 10000 });
  check(Math.abs(resumed - seek.target) < 0.5, `it plays on from there (${resumed.toFixed(2)} s)`);

  // The download link is the clip's file, under its own name.
  const rec = recs.find((r) => r.id === clipId);
  const link = page.locator("#player a[download]");
  check(await link.count() === 1, "a download link");
  const href = await link.getAttribute("href");
  check(href === `/api/recordings/${clipId}/file`, `the download link is the clip's file (${href})`);
  const [download] = await Promise.all([page.waitForEvent("download", { timeout: 20000 }), link.click()]);
  const name = rec.path.split("/").pop();
  const saved = readFileSync(await download.path());
  check(download.suggestedFilename() === name, `the download is named ${download.suggestedFilename()}`);
  check(saved.length === rec.bytes && saved.subarray(4, 8).toString() === "ftyp",
    `the download is the whole MP4 (${saved.length} of ${rec.bytes} bytes)`);
  await shot("recordings");

  // An event plays its clip from 2 s before the motion.
  const event = eventsAfter.filter((e) => listed.includes(e.id) && finished.includes(e.recording_id))
    .map((e) => ({ e, r: recs.find((r) => r.id === e.recording_id) }))
    .map(({ e, r }) => ({ id: e.id, rec: r.id, at: Math.max(0, (e.start - r.start) / 1000 - 2) }))
    .sort((a, b) => b.at - a.at)[0];
  check(event && event.at >= 1, `an event at least 3 s into its clip, so playing it from 2 s before is a seek (to ${event?.at.toFixed(2)} s)`);
  await page.evaluate(() => { window.__nvrtest.playing = []; });
  waiting("a clicked event to play its clip");
  await page.locator(`#events .event[data-id="${event.id}"]`).click();
  const started = await page.waitForFunction((rec) => window.__nvrtest.playing.find((p) => p.src.endsWith(`/api/recordings/${rec}/file`)),
    event.rec, { timeout: 20000 });
  const startedAt = (await started.jsonValue()).at;
  check(Math.abs(startedAt - event.at) < 0.5, `an event plays its clip from 2 s before the motion (${startedAt.toFixed(2)} s, expected ${event.at.toFixed(2)} s)`);

  // Phone-sized screen: one column, nothing wider than the screen.
  const columns = (p, sel) => p.locator(sel).evaluateAll((els) => new Set(els.map((e) => Math.round(e.getBoundingClientRect().left))).size);
  await page.goto(args.base + "/");
  await page.waitForSelector(".tile");
  const wide = await columns(page, ".tile");
  check(wide === tiles, `on a wide screen the ${tiles} tiles sit side by side (${wide} columns)`);
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForFunction(() => innerWidth === 390);
  const narrow = await columns(page, ".tile");
  const fits = await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth);
  check(narrow === 1 && fits, `on a phone screen the grid is one column (${narrow}) within the screen`);
  await shot("grid-phone");
  await page.goto(args.base + `/#/recordings?camera=${recId}`);
  await page.waitForSelector("#events .event");
  const lists = await columns(page, ".lists > div");
  check(lists === 1 && await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth),
    `on a phone screen clips and events are one column (${lists}) within the screen`);
  await shot("recordings-phone");
}

async function authChecks() {
  const r = await fetch(args.base + "/status");
  check(r.status === 401, "an unauthenticated API request is refused");
  await page.goto(args.base + "/");
  await page.waitForSelector("form.login");
  await shot("login");
  await page.fill("input[name=username]", args.user);
  await page.fill("input[name=password]", "wrong password");
  await page.click("form.login button");
  await page.waitForFunction(() => document.querySelector("form.login .note").textContent.includes("Wrong"));
  check(true, "a wrong password is refused");
  await page.fill("input[name=password]", args.password);
  await page.click("form.login button");
  await page.waitForSelector(".tile", { timeout: 20000 });
  check(true, "the right password logs in and shows the grid");
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === "nvr_session");
  check(session && session.httpOnly && session.sameSite === "Strict", "the session cookie is HttpOnly and SameSite=Strict");
  const forged = await page.evaluate(async () => (await fetch("/api/reload", { method: "POST", headers: { "X-NVR-CSRF": "forged" } })).status);
  check(forged === 403, "a state change without the session's CSRF token is refused");
  await shot("after-login");
}

// How far each tile has played: a video's decoded frames and position, or the JPEGs shown.
async function progress(p) {
  return p.evaluate(() => Object.fromEntries([...document.querySelectorAll(".tile")].map((t) => {
    const v = t.querySelector("video");
    const img = t.querySelector("img");
    const mse = !v.hidden && v.readyState >= 2;
    const q = mse && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
    return [t.dataset.camera, {
      mse, time: mse ? v.currentTime : 0, frames: q ? q.totalVideoFrames : 0,
      jpegs: Number(img.dataset.frames || 0), down: t.classList.contains("is-down"),
      inits: Number(t.querySelector(".pic").dataset.inits || 0),
      label: t.querySelector(".label").hidden ? "" : t.querySelector(".label").textContent,
    }];
  })));
}

// A new init segment (a worker restart, a reconnect) starts the video's clock again.
function advanced(a, b) {
  return b.time > a.time + 0.2 || b.jpegs > a.jpegs || (b.inits > a.inits && b.time > 0.2);
}

async function gridChecks() {
  const downup = args.downup.split(",");
  const h265 = args.h265;
  const hold = Number(args.hold || 60) * 1000;
  const cameras = await statusOf();
  await page.goto(args.base + "/");
  await page.waitForSelector(".tile");
  // Tiles are links with names, reachable from the keyboard.
  const tiles = await page.locator(".tile").evaluateAll((ts) => ts.map((t) => ({ tag: t.tagName, href: t.getAttribute("href"), label: t.getAttribute("aria-label") })));
  check(tiles.length === cameras.length && tiles.length === 16, `one tile per camera (${tiles.length})`);
  check(tiles.every((t, i) => t.tag === "A" && t.href === `#/camera/${cameras[i].id}` && t.label.startsWith(cameras[i].name)),
    `every tile is a link named after its camera ("${tiles[0].label}")`);
  // Past the header's links (and the first-start banner's), the first tile.
  let focused = false;
  for (let i = 0; i < 10 && !focused; i++) {
    await page.keyboard.press("Tab");
    focused = await page.evaluate(() => document.activeElement.classList.contains("tile"));
  }
  check(focused, "the keyboard reaches the tiles");

  // Every tile plays: H.264 tiles over MSE, the H.265 one over MSE if this browser can, else as
  // JPEGs with a label saying so.
  const hevcOk = await page.evaluate(() => MediaSource.isTypeSupported('video/mp4; codecs="hvc1.1.6.L60.B0"'));
  waiting("every tile to play");
  await page.waitForFunction(() => [...document.querySelectorAll(".tile")].every((t) => {
    const v = t.querySelector("video");
    return (!v.hidden && v.readyState >= 2 && v.currentTime > 0) || Number(t.querySelector("img").dataset.frames || 0) > 1;
  }), null, { timeout: 60000 });
  const first = await progress(page);
  await page.waitForTimeout(4000);
  const second = await progress(page);
  const stuck = Object.keys(first).filter((id) => !advanced(first[id], second[id]));
  check(stuck.length === 0, `every tile's video advances (stalled: ${stuck.join(", ") || "none"})`);
  const mse = Object.entries(second).filter(([id, p]) => p.mse).map(([id]) => id);
  check(mse.length === (hevcOk ? 16 : 15) && (hevcOk || !mse.includes(h265)), `the H.264 tiles play over MSE (${mse.length})`);
  if (!hevcOk) {
    check(second[h265].jpegs > 1 && /MJPEG/.test(second[h265].label) && /H\.?265|H265/i.test(second[h265].label),
      `this browser cannot play H.265 over MSE: that tile shows JPEGs with a label ("${second[h265].label}")`);
  } else {
    console.log("note: this Chromium plays H.265 over MSE; the fallback label is not shown");
  }
  // WebSockets are outside the browser's six connections per host: with 16 tiles and the status
  // socket open, an HTTP request still answers at once.
  const took = await page.evaluate(async () => {
    const t0 = performance.now();
    await (await fetch("/health")).text();
    return performance.now() - t0;
  });
  check(took < 2000, `with 16 tiles playing, an HTTP request answers in ${took.toFixed(0)} ms`);
  await shot("grid16");

  // Hold: sample every tile every 2 s; a tile that is up must advance within every 6 s. Midway,
  // two cameras are taken down and brought back: only their badges change, and they play again.
  const started = Date.now();
  const samples = [];
  let phase = "before";
  let phase_at = 0;
  const badges = {};
  let framesStart = null;
  while (Date.now() - started < hold || phase !== "done") {
    const now = await progress(page);
    samples.push({ at: Date.now(), now });
    if (!framesStart) framesStart = { at: Date.now(), frames: Object.values(now).reduce((n, p) => n + p.frames, 0) };
    const since = (ms) => samples.filter((s) => s.at <= Date.now() - ms).pop();
    const old = since(6000);
    if (old) {
      for (const id of Object.keys(now)) {
        const excused = downup.includes(id) && phase !== "before";
        if (!excused && !advanced(old.now[id], now[id])) throw new Error(`check failed: tile ${id} stalled for 6 s (${JSON.stringify(old.now[id])} → ${JSON.stringify(now[id])})`);
      }
    }
    const elapsed = Date.now() - started;
    if (phase === "before" && elapsed > 10000) {
      for (const id of downup) console.log(`@off ${id}`);
      phase = "down";
      waiting("the taken-down cameras' badges to say down");
    } else if (phase === "down") {
      const down = Object.entries(now).filter(([, p]) => p.down).map(([id]) => id).sort();
      if (down.join() === [...downup].sort().join()) {
        check(true, `only the cameras taken down show down (${down.join(", ")}) after ${((Date.now() - started - 10000) / 1000).toFixed(1)} s`);
        badges.down = await page.locator(`.tile[data-camera="${downup[0]}"] .state`).textContent();
        await shot("grid16-down");
        for (const id of downup) console.log(`@on ${id}`);
        phase = "up";
        phase_at = Date.now();
      } else if (down.some((id) => !downup.includes(id))) {
        throw new Error(`check failed: a camera not taken down shows down (${down.join(", ")})`);
      } else if (Date.now() - started > 10000 + 30000) {
        throw new Error(`check failed: the cameras taken down did not show down within 30 s (${down.join(", ")})`);
      }
    } else if (phase === "up") {
      const back = downup.every((id) => !now[id].down && old && advanced(since(2000)?.now[id] || old.now[id], now[id]));
      if (back) {
        check(true, `the cameras brought back show live and play again after ${((Date.now() - phase_at) / 1000).toFixed(1)} s`);
        badges.up = await page.locator(`.tile[data-camera="${downup[0]}"] .state`).textContent();
        phase = "done";
      } else if (Date.now() - phase_at > 40000) {
        throw new Error(`check failed: the cameras brought back did not play again within 40 s (${JSON.stringify(downup.map((id) => now[id]))})`);
      }
    }
    await page.waitForTimeout(2000);
  }
  check(badges.down === "down" && badges.up === "live", `the badges changed: live → ${badges.down} → ${badges.up}`);
  const last = samples[samples.length - 1];
  const frames = Object.values(last.now).reduce((n, p) => n + p.frames, 0);
  const fps = (frames - framesStart.frames) / ((last.at - framesStart.at) / 1000);
  check(Date.now() - started >= hold, `the page held ${((Date.now() - started) / 1000).toFixed(0)} s without a stalled tile`);
  console.log(`bench: browser_frames_per_s=${fps.toFixed(1)} over ${((last.at - framesStart.at) / 1000).toFixed(0)} s`);

  // Off-screen tiles stop streaming; on a phone-sized screen only the first tiles stream. A hidden
  // page stops them all; shown again, the visible ones play on.
  const streaming = () => page.evaluate(() => [...document.querySelectorAll(".tile")]
    .filter((t) => t.querySelector(".pic").dataset.streaming === "1").map((t) => t.dataset.camera));
  await page.setViewportSize({ width: 390, height: 844 });
  waiting("the tiles below the screen to stop streaming");
  await page.waitForFunction(() => [...document.querySelectorAll(".tile .pic")].filter((p) => p.dataset.streaming === "1").length <= 4, null, { timeout: 10000 });
  const onScreen = await streaming();
  check(onScreen.length >= 1 && onScreen.length <= 4 && onScreen.includes(cameras[0].id), `off-screen tiles stop streaming (${onScreen.join(", ")} stream)`);
  await page.evaluate(() => {
    Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
    document.dispatchEvent(new Event("visibilitychange"));
  });
  check((await streaming()).length === 0, "a hidden page streams nothing");
  const paused = await progress(page);
  await page.evaluate(() => {
    Object.defineProperty(document, "visibilityState", { value: "visible", configurable: true });
    document.dispatchEvent(new Event("visibilitychange"));
  });
  waiting("the visible tiles to play again");
  await page.waitForFunction((ids) => ids.every((id) => {
    const v = document.querySelector(`.tile[data-camera="${id}"] video`);
    return v.readyState >= 2 && v.currentTime > 0.5;
  }), onScreen, { timeout: 15000 });
  check(JSON.stringify(await streaming()) === JSON.stringify(onScreen), `shown again, the visible tiles stream again (${onScreen.join(", ")}; before: ${onScreen.map((id) => paused[id].time.toFixed(1)).join(", ")} s)`);
  await page.setViewportSize({ width: 1280, height: 800 });

  // MAIN of a camera that does not record is not connected: the single view says so and shows SUB.
  const id = cameras[0].id;
  await page.goto(args.base + `/#/camera/${id}`);
  waiting("the single view of a camera without MAIN to fall back to SUB");
  await page.waitForFunction(() => document.querySelector(".single")?.dataset.stream === "sub"
    && document.querySelector(".single video").readyState >= 2, null, { timeout: 20000 });
  const note = await page.locator(".single .note").textContent();
  check(/not connected/.test(note), `MAIN not connected: the single view falls back to SUB ("${note}")`);
}

async function singleChecks() {
  const id = args.camera;
  await page.goto(args.base + `/#/camera/${id}`);
  const video = page.locator(".single video");
  waiting("the single view to play MAIN");
  await page.waitForFunction(() => {
    const v = document.querySelector(".single video");
    return v && v.readyState >= 2 && v.currentTime > 0.3;
  }, null, { timeout: 30000 });
  const size = await video.evaluate((v) => `${v.videoWidth}x${v.videoHeight}`);
  check(size === "1920x1080" && await page.locator(".single").getAttribute("data-stream") === "main", `the single view plays MAIN at full resolution (${size})`);
  check(await video.evaluate((v) => v.muted), "audio is muted by default");
  check(await page.locator(".single button.fullscreen").count() === 1, "a fullscreen button");
  await page.locator(".single button.fullscreen").click();
  await page.waitForFunction(() => document.fullscreenElement !== null, null, { timeout: 5000 });
  check(true, "the fullscreen button puts the picture in full screen");
  await page.evaluate(() => document.exitFullscreen());
  // The switch to SUB and back.
  await page.locator('.single button[data-stream="sub"]').click();
  await page.waitForFunction(() => document.querySelector(".single video").videoWidth === 640, null, { timeout: 20000 });
  check(true, "the switch shows the SUB stream (640x360)");
  await page.locator('.single button[data-stream="main"]').click();
  await page.waitForFunction(() => document.querySelector(".single video").videoWidth === 1920
    && document.querySelector(".single video").currentTime > 0.3, null, { timeout: 20000 });
  check(true, "and back to MAIN");
  await shot("single");

  // kill -9 of the camera's worker: the player recovers by itself.
  const before = (await statusOf()).find((c) => c.id === id);
  const t0 = await video.evaluate((v) => v.src);
  process.kill(before.pid, "SIGKILL");
  waiting("the worker to come back");
  let back = null;
  while (!back) {
    const c = (await statusOf()).find((c) => c.id === id);
    if (c.pid && c.pid !== before.pid && c.state === "running") back = Date.now();
    else await new Promise((r) => setTimeout(r, 50));
  }
  waiting("the player to play again after the worker's return");
  await page.waitForFunction((old) => {
    const v = document.querySelector(".single video");
    return v.src !== old && v.readyState >= 2 && v.currentTime > 0.2;
  }, t0, { timeout: 30000 });
  const took = (Date.now() - back) / 1000;
  check(took <= 5, `after kill -9 the player plays again ${took.toFixed(1)} s after the worker's return (pid ${before.pid} → new)`);
}
