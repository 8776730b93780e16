// Drives the camera set-up pages of the web UI in Debian's headless Chromium (playwright-core),
// against a supervisor the Rust test `ui.rs` started without a login and without cameras, and a
// fake camera server with digest auth. Exits non-zero on the first failed check, after a
// screenshot into --shots.
//
//   node tests/ui/setup.mjs --base http://127.0.0.1:PORT --shots DIR --main URL --sub URL \
//        --cam-user U --cam-password P
//
// Creates the admin login on the set-up page, logs in, adds camera `yard` through the form (Test,
// then Save), sees its tile go live, draws a zone `path` across the middle of the picture (where
// the fake camera's box crosses), a zone `ground` along the bottom (where nothing moves) and a mask
// in the top left corner, and saves them (prints `@zones-saved`). Then waits for a motion event
// of the box's crossing, draws a mask over the box's band (the middle 0.28-0.72 of the height) and
// saves it (prints `@mask-saved`); the Rust test checks the file and the events against the fake
// camera's ground truth.
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
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
    "--autoplay-policy=no-user-gesture-required"],
});
// Phone width: every set-up page must fit without scrolling sideways.
const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
page.on("console", (m) => console.log(`page: ${m.text()}`));
page.on("dialog", (d) => d.accept());
await page.addInitScript(() => {
  const t = (window.__nvrtest = { violations: [] });
  document.addEventListener("securitypolicyviolation", (e) => t.violations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`), true);
});
const shot = (name) => page.screenshot({ path: `${args.shots}/${name}.png`, fullPage: true });
const fits = async (what) => {
  const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  check(scroll <= width + 1, `${what} fits a phone's width (${scroll} <= ${width} px)`);
};

try {
  // First start: a banner says the config is read-only; the set-up page creates the login.
  await page.goto(args.base + "/");
  await page.waitForSelector("#setup-banner");
  check(true, "without a login the page says the config is read-only");
  await page.click("#setup-banner");
  await page.waitForSelector("form.setup-login");
  await fits("the set-up page");
  await shot("setup-login");
  await page.fill("form.setup-login input[name=username]", "admin");
  await page.fill("form.setup-login input[name=password]", "correct horse");
  await page.fill("form.setup-login input[name=password2]", "correct horse");
  await page.click("form.setup-login button[type=submit]");
  // The login exists now: the UI asks for it.
  await page.waitForSelector("form.login");
  await page.fill("form.login input[name=username]", "admin");
  await page.fill("form.login input[name=password]", "correct horse");
  await page.click("form.login button");
  await page.waitForSelector("#add-camera");
  check(true, "the admin login was created on the set-up page and logs in");

  // Add camera: the form, Test (the probe), Save.
  await page.click("#add-camera");
  await page.waitForSelector("#add-form");
  await page.selectOption("#add-form select[name=brand]", "tapo");
  check((await page.textContent("#add-form .hint")).includes("/stream2"), "choosing a make shows its URL pattern");
  await page.fill("#add-form input[name=name]", "Yard");
  check((await page.inputValue("#add-form input[name=id]")) === "yard", "the id follows the name");
  await page.fill("#add-form input[name=main_url]", args.main);
  await page.fill("#add-form input[name=sub_url]", args.sub);
  await page.fill("#add-form input[name=username]", args["cam-user"]);
  await page.fill("#add-form input[name=password]", "wrong-password");
  await page.click("#probe");
  await page.waitForSelector("table.probe", { timeout: 20000 });
  check(await page.locator('table.probe tr[data-stream=main][data-failure=unauthorized]').count() === 1,
    "Test with a wrong password shows the main stream unauthorized");
  await page.fill("#add-form input[name=password]", args["cam-password"]);
  // Within the probe rate limit (two at once): wait for the first answer to be shown, then test again.
  await page.click("#probe");
  await page.waitForSelector('table.probe[data-usable="true"]', { timeout: 20000 });
  const main = await page.textContent("table.probe tr[data-stream=main]");
  check(main.includes("h264 High") && main.includes("1920×1080") && main.includes("30 fps") && main.includes("recordable"),
    `Test shows the main stream's codec, size and fps (${main})`);
  const sub = await page.textContent("table.probe tr[data-stream=sub]");
  check(sub.includes("640×360"), `Test shows the sub stream's size (${sub})`);
  await fits("the add-camera form with the test's answer");
  await shot("add-camera");
  await page.click("#save");
  await page.waitForFunction(() => location.hash === "#/", null, { timeout: 20000 });
  // The new camera's tile goes live.
  await page.waitForSelector('.tile[data-camera="yard"]', { timeout: 30000 });
  await page.waitForFunction(() => {
    const t = document.querySelector('.tile[data-camera="yard"]');
    const v = t && t.querySelector("video");
    const i = t && t.querySelector("img");
    return t && !t.classList.contains("is-down") && t.querySelector(".state").textContent.includes("live")
      && ((v && v.currentTime > 0.5) || (i && Number(i.dataset.frames || 0) > 2));
  }, null, { timeout: 60000 });
  check(true, "the camera added through the form shows a live tile");
  await shot("grid-after-add");

  // Camera settings: the live motion level from the heartbeat.
  await page.goto(args.base + "/#/setup/camera/yard");
  await page.waitForSelector("#camera-form");
  await page.waitForFunction(() => document.getElementById("motion-level").dataset.score !== "", null, { timeout: 30000 });
  check(true, "the camera's settings show the live motion level");
  await fits("the camera settings");
  // Moving the sensitivity tries it on the running worker without saving it.
  const yardNow = () => page.evaluate(async () => (await (await fetch("/status")).json()).cameras.find((c) => c.id === "yard"));
  await page.fill("#camera-form input[name=threshold]", "7");
  await page.waitForFunction(() => /trying sensitivity 7/.test(document.getElementById("motion-trying").textContent), null, { timeout: 10000 });
  const tried = (await yardNow()).motion_preview;
  check(tried && tried.threshold === 7 && tried.remaining_s > 30, `the worker tries the new sensitivity, unsaved (${JSON.stringify(tried)})`);
  const stored = await page.evaluate(async () => (await (await fetch("/api/config")).json()).cameras.find((c) => c.id === "yard").motion.threshold);
  check(stored !== 7, `the file keeps the saved sensitivity while trying (${stored})`);
  // A new sensitivity: written, and applied without restarting the worker.
  await page.fill("#camera-form input[name=threshold]", "40");
  await page.fill("#camera-form input[name=min_area]", "0.5");
  await page.click("#camera-form #save");
  await page.waitForFunction(() => document.getElementById("settings-saved").textContent !== "", null, { timeout: 20000 });
  const said = await page.textContent("#settings-saved");
  check(said.includes("no restart"), `a new sensitivity is saved and applied in place ("${said}")`);
  await page.waitForFunction(async () => !(await (await fetch("/status")).json()).cameras.find((c) => c.id === "yard").motion_preview, null, { timeout: 10000, polling: 250 });
  check(true, "saving ends the trial");
  await shot("camera-settings");

  // Zone editor: a zone across the middle (the box's path), renamed `path`; a mask top left.
  await page.goto(args.base + "/#/setup/zones/yard");
  await page.waitForSelector(".zones-editor .stage[data-loaded='1']", { timeout: 30000 });
  const box = await page.locator("#zone-canvas").boundingBox();
  const at = (x, y) => page.mouse.click(box.x + x * box.width, box.y + y * box.height);
  await page.click("#draw-zone");
  for (const [x, y] of [[0.3, 0.25], [0.7, 0.25], [0.7, 0.75], [0.3, 0.75]]) await at(x, y);
  await page.click("#finish-shape");
  await page.fill("#zone-name", "path");
  await page.click("#draw-mask");
  for (const [x, y] of [[0.02, 0.02], [0.2, 0.02], [0.2, 0.15]]) await at(x, y);
  await at(0.02, 0.02); // the first corner again closes the shape
  // Move the mask: drag it by its inside to the right by a tenth of the picture.
  await page.mouse.move(box.x + 0.14 * box.width, box.y + 0.06 * box.height);
  await page.mouse.down();
  await page.mouse.move(box.x + 0.24 * box.width, box.y + 0.06 * box.height, { steps: 5 });
  await page.mouse.up();
  // A zone along the bottom, where nothing moves, named `ground`.
  await page.click("#draw-zone");
  for (const [x, y] of [[0.05, 0.82], [0.95, 0.82], [0.95, 0.97], [0.05, 0.97]]) await at(x, y);
  await page.click("#finish-shape");
  await page.fill("#zone-name", "ground");
  // A fourth shape, drawn and deleted.
  await page.click("#draw-zone");
  for (const [x, y] of [[0.8, 0.05], [0.95, 0.05], [0.9, 0.2]]) await at(x, y);
  await page.click("#finish-shape");
  await page.click("#delete-shape");
  const shapes = await page.$$eval("#shapes li", (l) => l.map((x) => x.dataset.kind + ":" + x.dataset.name));
  check(JSON.stringify(shapes) === JSON.stringify(["zone:path", "mask:", "zone:ground"]), `the editor holds two zones and one mask (${shapes})`);
  await fits("the zone editor");
  await shot("zones-before-save");
  await page.click("#save-zones");
  await page.waitForFunction(() => document.getElementById("zones-saved").textContent.includes("Saved"), null, { timeout: 30000 });
  check(true, "the zones are saved");
  // The worker reports the zone's motion level by name once the new settings are in force.
  await page.waitForFunction(() => [...document.querySelectorAll("#shapes li[data-name=path] .level")].some((e) => e.textContent.includes("%")),
    null, { timeout: 30000 });
  check(true, "the editor shows the zone's live motion level");
  await shot("zones-saved");
  console.log("@zones-saved");

  // A finished motion event naming the zone, then a mask over the box's band silences it.
  const zoneEvent = async () => (await page.evaluate(async () =>
    (await (await fetch("/api/events?camera=yard", { credentials: "same-origin" })).json())))
    .find((e) => e.end != null && e.zones.includes("path"));
  let seen;
  for (const until = Date.now() + 60000; !(seen = await zoneEvent()) && Date.now() < until;) await page.waitForTimeout(1000);
  check(seen, `a motion event names the zone the box crosses (${JSON.stringify(seen)})`);
  await page.click("#draw-mask");
  for (const [x, y] of [[0.02, 0.28], [0.98, 0.28], [0.98, 0.72], [0.02, 0.72]]) await at(x, y);
  await page.click("#finish-shape");
  await page.click("#save-zones");
  await page.waitForFunction(() => document.getElementById("zones-saved").textContent.includes("Saved"), null, { timeout: 30000 });
  console.log("@mask-saved " + Date.now());
  await shot("mask-saved");
  const v = await page.evaluate(() => window.__nvrtest.violations);
  check(v.length === 0, `the set-up pages run within the Content-Security-Policy (${v.join("; ") || "no violations"})`);
} catch (e) {
  console.error(String(e.stack || e));
  const tiles = await page.evaluate(() => [...document.querySelectorAll(".tile")].map((t) => {
    const v = t.querySelector("video");
    return { camera: t.dataset.camera, closed: t.dataset.closed, ...t.querySelector(".pic").dataset,
      video: v && { hidden: v.hidden, readyState: v.readyState, time: v.currentTime, error: v.error && v.error.message } };
  })).catch(() => []);
  if (tiles.length) console.error("tiles: " + JSON.stringify(tiles));
  await shot("failure").catch(() => {});
  await browser.close();
  process.exit(1);
}
await browser.close();
