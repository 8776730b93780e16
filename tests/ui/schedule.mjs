// Drives the schedule panel of the web UI in Debian's headless Chromium (playwright-core), against
// a supervisor the Rust test `schedule.rs` started with camera CAM on a schedule whose week has
// `continuous` nights. Exits non-zero on the first failed check, after a screenshot into --shots.
//
//   node tests/ui/schedule.mjs --base http://127.0.0.1:PORT --shots DIR --camera CAM
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
const status = async () => (await (await fetch(args.base + "/status")).json()).cameras.find((c) => c.id === args.camera);
const cam = args.camera;
try {
  await page.goto(args.base + "/");
  const tileMode = page.locator(`.tile[data-camera="${cam}"] .mode .pill`);
  await tileMode.waitFor({ timeout: 10000 });
  const inForce = (await status()).mode.current;
  check((await tileMode.textContent()) === inForce, `the grid tile shows the mode in force (${inForce})`);

  await page.goto(args.base + `/#/camera/${cam}`);
  const segs = page.locator(".schedule .week .seg");
  await segs.first().waitFor({ timeout: 10000 });
  const modes = await segs.evaluateAll((s) => s.map((e) => e.dataset.mode));
  check(modes.includes("continuous") && modes.includes("motion"), `the week strip shows the schedule's modes (${modes.length} stretches)`);
  const colours = await segs.evaluateAll((s) => [...new Set(s.map((e) => getComputedStyle(e).backgroundColor))]);
  check(colours.length >= 2, `each mode has its colour (${colours.join(", ")})`);
  const now = await page.locator(".schedule .week .now").boundingBox();
  const strip = await page.locator(".schedule .week").boundingBox();
  check(now && now.x >= strip.x && now.x <= strip.x + strip.width, "now is marked inside the week");
  const text = await page.locator(".schedule .in-force").textContent();
  check(/next: (motion|continuous) at/.test(text), `the next change is shown ("${text}")`);

  await page.selectOption(".schedule select[name=mode]", "off");
  await page.selectOption(".schedule select[name=for]", "3600");
  await page.click(".schedule button.override");
  await page.waitForFunction(() => /override until/.test(document.querySelector(".schedule .in-force")?.textContent || ""), null, { timeout: 10000 });
  const s = await status();
  check(s.mode.current === "off" && s.mode.source === "override" && s.mode.override_until_ms > Date.now() + 3500000,
    `the override control sets off for an hour (${JSON.stringify(s.mode)})`);
  await page.screenshot({ path: `${args.shots}/schedule.png`, fullPage: true });
  await page.click(".schedule button.end-override");
  await page.waitForFunction(() => /from schedule/.test(document.querySelector(".schedule .in-force")?.textContent || ""), null, { timeout: 10000 });
  check((await status()).mode.source.startsWith("schedule"), "ending the override gives the schedule back");
  const violations = await page.evaluate(() => window.__nvrtest.violations);
  check(violations.length === 0, `the panel runs within the Content-Security-Policy (${violations.join("; ") || "no violations"})`);
} catch (e) {
  console.error(String(e.stack || e));
  await page.screenshot({ path: `${args.shots}/failure.png`, fullPage: true }).catch(() => {});
  await browser.close();
  process.exit(1);
}
await browser.close();
