// Drives the PTZ panel of the web UI in Debian's headless Chromium (playwright-core), against a
// supervisor the Rust test `ptz.rs` started with camera CAM steering a test ONVIF device. The
// device's position is read through the API (GET /api/cameras/CAM/ptz, which asks the device's
// GetStatus). Exits non-zero on the first failed check, after a screenshot into --shots.
//
//   node tests/ui/ptz.mjs --base http://127.0.0.1:PORT --shots DIR --camera CAM
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
mkdirSync(args.shots, { recursive: true });
const check = (ok, what) => {
  if (!ok) throw new Error("check failed: " + what);
  console.log("ok: " + what);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const cam = args.camera;
const ptzUrl = `${args.base}/api/cameras/${encodeURIComponent(cam)}/ptz`;
const describe = async () => {
  const r = await fetch(ptzUrl);
  if (!r.ok) throw new Error(`GET ptz: ${r.status} ${await r.text()}`);
  return r.json();
};
const position = async () => (await describe()).position;
const same = (a, b) => Math.abs(a.pan - b.pan) < 1e-6 && Math.abs(a.tilt - b.tilt) < 1e-6 && Math.abs(a.zoom - b.zoom) < 1e-6;
// Two readings 600 ms apart, the second taken once the first was: equal when the device stands still.
const standsStill = async () => {
  const a = await position();
  await sleep(600);
  const b = await position();
  return [same(a, b), a, b];
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.on("console", (m) => console.log(`page: ${m.text()}`));
await page.addInitScript(() => {
  const t = (window.__nvrtest = { violations: [] });
  document.addEventListener("securitypolicyviolation", (e) => t.violations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`), true);
});
try {
  await page.goto(args.base + `/#/camera/${cam}`);
  await page.locator(`.ptz[data-ready="true"]`).waitFor({ timeout: 15000 });
  const presetNames = await page.locator(".ptz .ptz-preset").allTextContents();
  check(presetNames.length >= 1, `the panel lists the device's presets (${presetNames.join(", ")})`);

  // Press and hold "pan right": the page renews the move while held.
  const start = await position();
  const right = page.locator('.ptz button[aria-label="Pan right"]');
  await right.scrollIntoViewIfNeeded();
  const box = await right.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await sleep(1500);
  const held = await position();
  check(held.pan > start.pan + 0.3, `holding "pan right" for 1.5 s pans right (${start.pan.toFixed(3)} -> ${held.pan.toFixed(3)})`);
  check((await page.locator(".ptz[data-moving]").count()) === 1, "the panel shows it moves");
  await page.mouse.up();
  await sleep(300);
  let [still, a, b] = await standsStill();
  check(still, `releasing the button stops the device (${JSON.stringify(a)} then ${JSON.stringify(b)})`);

  // Held, then the window loses focus (another window, a tab switch): the move stops.
  const up = page.locator('.ptz button[aria-label="Tilt up"]');
  await up.scrollIntoViewIfNeeded();
  const ub = await up.boundingBox();
  await page.mouse.move(ub.x + ub.width / 2, ub.y + ub.height / 2);
  await page.mouse.down();
  await sleep(600);
  await page.evaluate(() => window.dispatchEvent(new Event("blur")));
  await sleep(300);
  [still, a, b] = await standsStill();
  check(still, `a blur while held stops the device (${JSON.stringify(a)} then ${JSON.stringify(b)})`);
  await page.mouse.up();

  // Save the position as a preset, move away, then go back to it with its button.
  const saved = await position();
  await page.fill(".ptz input", "ui gate");
  await page.click(".ptz .ptz-save");
  const gate = page.locator(".ptz .ptz-preset", { hasText: "ui gate" });
  await gate.waitFor({ timeout: 10000 });
  check(true, "the saved preset gets its button");
  const home = (await describe()).presets.find((p) => p.token === "home" || /home/i.test(p.name));
  check(!!home, "the device has a home preset");
  await page.click(`.ptz .ptz-preset[data-token="${home.token}"]`);
  await page.waitForFunction(async (url) => {
    const p = (await (await fetch(url)).json()).position;
    return Math.abs(p.pan) < 1e-3 && Math.abs(p.tilt) < 1e-3;
  }, ptzUrl, { timeout: 10000, polling: 250 });
  check(true, "the home preset's button moves the device home");
  await gate.click();
  await page.waitForFunction(async ([url, want]) => {
    const p = (await (await fetch(url)).json()).position;
    return Math.abs(p.pan - want.pan) < 1e-3 && Math.abs(p.tilt - want.tilt) < 1e-3;
  }, [ptzUrl, saved], { timeout: 10000, polling: 250 });
  check(true, `the saved preset's button moves the device back to it (${JSON.stringify(saved)})`);

  // Phone width: the panel fits without sideways scrolling.
  await page.setViewportSize({ width: 380, height: 800 });
  await sleep(200);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `the page fits a phone's width (overflow ${overflow} px)`);
  await page.screenshot({ path: `${args.shots}/ptz-phone.png`, fullPage: true });
  const violations = await page.evaluate(() => window.__nvrtest.violations);
  check(violations.length === 0, `no Content-Security-Policy violations (${violations.join("; ")})`);
} catch (e) {
  await page.screenshot({ path: `${args.shots}/ptz-failure.png`, fullPage: true }).catch(() => {});
  console.error(e.message);
  await browser.close();
  process.exit(1);
}
await browser.close();
