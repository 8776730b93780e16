// Plays fMP4 segments through Media Source Extensions in Debian's headless Chromium, appending
// the init segment and then each fragment separately, as the live relay sends them; prints one
// JSON line with what the browser saw. Driven by fmp4/tests/chromium.rs.
//
//   node fmp4/tests/mse.mjs PLAYWRIGHT_CORE_DIR SEGMENTS_JSON
//
// SEGMENTS_JSON: {"mime": "...", "segments": ["<base64>", ...], "play": true|false}.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [playwrightDir, segmentsPath] = process.argv.slice(2);
const { chromium } = await import(pathToFileURL(`${playwrightDir}/index.mjs`).href);
const input = JSON.parse(readFileSync(segmentsPath, "utf8"));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"],
});
let result;
try {
  const page = await browser.newPage();
  const console_ = [];
  page.on("console", (m) => console_.push(m.text()));
  await page.setContent("<video muted playsinline></video>");
  result = await page.evaluate(async ({ mime, segments, play }) => {
    const out = { supported: MediaSource.isTypeSupported(mime), errors: [] };
    if (!out.supported) return out;
    const video = document.querySelector("video");
    video.addEventListener("error", () => out.errors.push(`video error: ${video.error && video.error.message}`));
    const ms = new MediaSource();
    video.src = URL.createObjectURL(ms);
    await new Promise((r) => ms.addEventListener("sourceopen", r, { once: true }));
    const sb = ms.addSourceBuffer(mime);
    out.appended = 0;
    for (const b64 of segments) {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      try {
        sb.appendBuffer(bytes);
      } catch (e) {
        out.errors.push(`appendBuffer ${out.appended}: ${e}`);
        break;
      }
      const ok = await new Promise((r) => {
        sb.addEventListener("updateend", () => r(true), { once: true });
        sb.addEventListener("error", () => r(false), { once: true });
      });
      if (!ok) {
        out.errors.push(`SourceBuffer error after segment ${out.appended}`);
        break;
      }
      out.appended += 1;
    }
    out.buffered = [];
    for (let i = 0; i < sb.buffered.length; i++) out.buffered.push([sb.buffered.start(i), sb.buffered.end(i)]);
    if (out.errors.length) return out;
    ms.endOfStream();
    out.videoWidth = video.videoWidth;
    out.videoHeight = video.videoHeight;
    if (!play) return out;
    await video.play();
    // Plays to the end (the test's clips are a few seconds), or gives up after 20 s.
    await new Promise((r) => {
      video.addEventListener("ended", r, { once: true });
      setTimeout(r, 20000);
    });
    const q = video.getVideoPlaybackQuality();
    out.ended = video.ended;
    out.currentTime = video.currentTime;
    out.duration = ms.duration;
    out.totalVideoFrames = q.totalVideoFrames;
    out.droppedVideoFrames = q.droppedVideoFrames;
    out.audioDecodedBytes = video.webkitAudioDecodedByteCount;
    return out;
  }, input);
  result.console = console_;
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
