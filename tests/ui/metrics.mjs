// Drives the metrics page of the web UI in Debian's headless Chromium (playwright-core), against a
// supervisor the Rust test `history.rs` started with camera CAM, whose worker it killed twice.
// Checks the charts hold and draw data (pixels of the series' colour on the canvas, red restart
// lines), the storage view, and keeps a screenshot in --shots.
//
//   node tests/ui/metrics.mjs --base http://127.0.0.1:PORT --shots DIR --camera CAM
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
const page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
page.on("console", (m) => console.log(`page: ${m.text()}`));
await page.addInitScript(() => {
  const t = (window.__nvrtest = { violations: [], requests: [] });
  document.addEventListener("securitypolicyviolation", (e) => t.violations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`), true);
});
const outside = [];
page.on("request", (r) => { if (!r.url().startsWith(args.base)) outside.push(r.url()); });
try {
  await page.goto(args.base + `/#/metrics?camera=${args.camera}&range=1h`);
  await page.locator(".charts .uplot").nth(4).waitFor({ timeout: 15000 });
  // Pixels of a colour (within a tolerance) on the canvas of chart `i`.
  const pixels = (i, rgb) => page.evaluate(([i, rgb]) => {
    const c = document.querySelectorAll(".charts .uplot canvas")[i];
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let p = 0; p < d.length; p += 4)
      if (d[p + 3] > 200 && Math.abs(d[p] - rgb[0]) < 30 && Math.abs(d[p + 1] - rgb[1]) < 30 && Math.abs(d[p + 2] - rgb[2]) < 30) n++;
    return n;
  }, [i, rgb]);
  const held = await page.evaluate(() => nvrMetrics.charts.map((u) => [u.root.dataset.series, u.data[1].filter((v) => v != null).length]));
  console.log("points per chart: " + JSON.stringify(held));
  for (const [series, n] of held.filter(([s]) => ["cpu", "rss,pss", "fps_sub,fps_main"].includes(s)))
    check(n > 0, `the ${series} chart holds data (${n} points)`);
  const blue = [0x2a, 0x7a, 0xe2];
  for (const [i, name] of [[0, "cpu"], [2, "fps"]]) {
    const n = await pixels(i, blue);
    check(n > 30, `the ${name} chart draws its line (${n} pixels of its colour)`);
  }
  const markers = await page.locator(".charts .uplot").nth(4).getAttribute("data-markers");
  check(Number(markers) === 2, `the restarts chart has both restart markers (${markers})`);
  const red = await pixels(4, [0xd6, 0x28, 0x28]);
  check(red > 50, `restart markers are drawn (${red} red pixels)`);
  await page.locator(".storage-summary").waitFor({ timeout: 10000 });
  const summary = await page.locator(".storage-summary").textContent();
  check(/Free: [0-9.]+ [GM]B/.test(summary), `the storage view shows free space ("${summary}")`);
  check((await page.locator("table.storage tr").count()) >= 2, "the storage view lists the camera");
  await page.screenshot({ path: `${args.shots}/metrics.png`, fullPage: true });
  await page.click('.metrics button[data-range="24h"]');
  await page.waitForFunction(() => /range=24h/.test(location.hash) && document.querySelectorAll(".charts .uplot").length === 5, null, { timeout: 10000 });
  check(true, "the 24h range draws again");
  check(outside.length === 0, `nothing is fetched from outside the NVR (${outside.join(", ") || "none"})`);
  const violations = await page.evaluate(() => window.__nvrtest.violations);
  check(violations.length === 0, `the page runs within the Content-Security-Policy (${violations.join("; ") || "no violations"})`);
} catch (e) {
  console.error(String(e.stack || e));
  await page.screenshot({ path: `${args.shots}/failure.png`, fullPage: true }).catch(() => {});
  await browser.close();
  process.exit(1);
}
await browser.close();
