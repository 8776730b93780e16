// Drives the NVR's web UI in Debian's headless Chromium with playwright-core, against a running
// supervisor and fake cameras that the Rust test `ui.rs` started. Exits non-zero on the first
// failed check, after saving a screenshot of each page it reached into --shots.
//
//   node tests/ui/ui.mjs --base http://127.0.0.1:PORT --shots DIR --mode noauth \
//        --live CAM --down CAM --rec CAM
//   node tests/ui/ui.mjs --base http://127.0.0.1:PORT --shots DIR --mode auth --user U --password P
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
mkdirSync(args.shots, { recursive: true });

function check(ok, what) {
  if (!ok) throw new Error("check failed: " + what);
  console.log("ok: " + what);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
page.on("console", (m) => console.log("page: " + m.text()));
const shot = (name) => page.screenshot({ path: `${args.shots}/${name}.png`, fullPage: true });

try {
  if (args.mode === "auth") await authChecks();
  else await uiChecks();
} catch (e) {
  console.error(String(e.stack || e));
  await shot("failure").catch(() => {});
  await browser.close();
  process.exit(1);
}
await browser.close();

async function uiChecks() {
  // Live grid: one tile per camera, live pictures that change, the broken camera shown down.
  await page.goto(args.base + "/");
  await page.waitForSelector(".tile");
  const tiles = await page.locator(".tile").count();
  const status = await (await fetch(args.base + "/status")).json();
  check(tiles === status.cameras.length, `one tile per camera (${tiles})`);
  const live = page.locator(`.tile[data-camera="${args.live}"]`);
  await page.waitForFunction((id) => {
    const img = document.querySelector(`.tile[data-camera="${id}"] img`);
    return img && img.naturalWidth > 0;
  }, args.live, { timeout: 20000 });
  const picture = () => live.locator("img").screenshot();
  const first = await picture();
  await page.waitForTimeout(1500);
  const second = await picture();
  check(!first.equals(second), "the live tile's picture changes over time");
  await page.waitForSelector(`.tile.is-down[data-camera="${args.down}"]`, { timeout: 20000 });
  check(await page.locator(`.tile[data-camera="${args.down}"] .down`).isVisible(), "the broken camera's tile says it is down");
  check(!(await live.evaluate((t) => t.classList.contains("is-down"))), "the live camera is not shown down");
  await shot("grid");

  // Single camera view at the full rate.
  await live.click();
  await page.waitForFunction(() => location.hash.startsWith("#/camera/"));
  const src = await page.locator(".single img").getAttribute("src");
  check(src.includes("fps=30"), "the single view streams at 30 fps");
  await shot("camera");

  // Status: a killed worker's restart shows up.
  await page.goto(args.base + "/#/status");
  await page.waitForSelector(`#status-table tr[data-camera="${args.live}"]`);
  const before = (await (await fetch(args.base + "/status")).json()).cameras.find((c) => c.id === args.live);
  process.kill(before.pid, "SIGKILL");
  await page.waitForFunction((id) => {
    const cell = document.querySelector(`#status-table tr[data-camera="${id}"] .restarts`);
    return cell && cell.textContent.includes("signal");
  }, args.live, { timeout: 20000 });
  check(true, "the status page shows the killed worker's restart (reason signal)");
  await page.waitForFunction((id) => {
    const cell = document.querySelector(`#status-table tr[data-camera="${id}"] .state`);
    return cell && cell.textContent.includes("running");
  }, args.live, { timeout: 20000 });
  await shot("status");

  // Recordings: a clip plays and seeks; events list thumbnails.
  await page.goto(args.base + `/#/recordings?camera=${args.rec}`);
  await page.waitForSelector("#clips .clip", { timeout: 30000 });
  await page.locator("#clips .clip").first().click();
  await page.waitForSelector("#video");
  await page.waitForFunction(() => {
    const v = document.getElementById("video");
    return v && v.readyState >= 2 && v.currentTime > 0.3;
  }, null, { timeout: 20000 });
  check(true, "a recording plays (currentTime advances)");
  const duration = await page.evaluate(() => document.getElementById("video").duration);
  const target = duration * 0.6;
  await page.evaluate((t) => { document.getElementById("video").currentTime = t; }, target);
  await page.waitForFunction((t) => {
    const v = document.getElementById("video");
    return !v.seeking && Math.abs(v.currentTime - t) < 1.5;
  }, target, { timeout: 20000 });
  const at = await page.evaluate(() => document.getElementById("video").currentTime);
  await page.waitForFunction((a) => document.getElementById("video").currentTime > a + 0.3, at, { timeout: 10000 });
  check(true, `seeking works (to ${target.toFixed(1)} s of ${duration.toFixed(1)} s, then it plays on)`);
  check(await page.locator("a[download]").count() === 1, "a download link");
  await shot("recordings");

  // Phone-sized screen: the grid is one column.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(args.base + "/");
  await page.waitForSelector(".tile");
  const widths = await page.locator(".tile").evaluateAll((ts) => ts.map((t) => t.getBoundingClientRect().width));
  check(widths.every((w) => w <= 390), "tiles fit a phone screen");
  await shot("grid-phone");
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
