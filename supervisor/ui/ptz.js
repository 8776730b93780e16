// Pan-tilt-zoom controls on a camera page: press-and-hold arrows and zoom (the move is renewed while
// held and stopped on release, on blur and when the page goes away; the worker also stops it by
// itself when renewals stop), preset buttons and "save preset". Kept apart from app.js, which calls
// only `nvrPtz.panel(id, api, cleanup)` for a camera whose /status says `ptz: true`.
"use strict";

(function () {
  // Renewals while a button is held: well inside the worker's dead-man window (0.5 s by default).
  const RENEW_MS = 200;
  document.head.append(Object.assign(document.createElement("link"), { rel: "stylesheet", href: "/ui/ptz.css" }));

  function h(tag, attrs = {}, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined) e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return e;
  }

  const WORDS = {
    no_onvif: "This camera has no ONVIF settings.",
    not_ptz: "This camera cannot pan, tilt or zoom.",
    unauthorized: "The camera refused the ONVIF user name or password.",
    timeout: "The camera did not answer in time.",
    worker_unavailable: "The camera's worker is not running.",
    camera_error: "The camera answered with an error.",
    busy: "Too many commands at once; try again.",
    bad_request: "The command was refused.",
  };

  function panel(id, api, cleanup) {
    const box = h("section", { class: "ptz", "data-camera": id, "aria-label": "Pan, tilt and zoom" }, h("h3", {}, "PTZ"));
    const msg = h("p", { class: "ptz-msg", role: "status" });
    const presets = h("div", { class: "ptz-presets" });
    const url = `/api/cameras/${encodeURIComponent(id)}/ptz`;

    async function send(body) {
      let r;
      try {
        r = await api(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      } catch (e) {
        return null;
      }
      const answer = await r.json().catch(() => ({}));
      if (!r.ok) {
        msg.textContent = (WORDS[answer.error] || "PTZ failed.") + (answer.detail ? ` (${answer.detail})` : "");
        box.dataset.error = answer.error || "http_" + r.status;
        return null;
      }
      msg.textContent = "";
      delete box.dataset.error;
      return answer;
    }

    // One held control at a time; renewed until released.
    let held = null;
    function hold(v) {
      release();
      const move = () => send(Object.assign({ action: "move" }, v));
      held = { timer: setInterval(move, RENEW_MS) };
      box.dataset.moving = "true";
      move();
    }
    function release() {
      if (!held) return;
      clearInterval(held.timer);
      held = null;
      delete box.dataset.moving;
      send({ action: "stop" });
    }

    function button(label, cls, v) {
      const b = h("button", { type: "button", class: "ptz-btn " + cls, "aria-label": label, title: label });
      b.textContent = { up: "▲", down: "▼", left: "◀", right: "▶", in: "+", out: "−" }[cls];
      b.addEventListener("pointerdown", (e) => { e.preventDefault(); b.setPointerCapture?.(e.pointerId); hold(v); });
      for (const ev of ["pointerup", "pointercancel", "lostpointercapture"]) b.addEventListener(ev, release);
      // Keyboard: held keys repeat keydown; the renewal timer covers it, keyup releases.
      b.addEventListener("keydown", (e) => { if ((e.key === " " || e.key === "Enter") && !held) { e.preventDefault(); hold(v); } });
      b.addEventListener("keyup", (e) => { if (e.key === " " || e.key === "Enter") release(); });
      b.addEventListener("blur", release);
      return b;
    }
    const S = 0.5;
    const pad = h("div", { class: "ptz-pad" },
      h("span"), button("Tilt up", "up", { pan: 0, tilt: S, zoom: 0 }), h("span"),
      button("Pan left", "left", { pan: -S, tilt: 0, zoom: 0 }), h("span", { class: "ptz-centre" }), button("Pan right", "right", { pan: S, tilt: 0, zoom: 0 }),
      h("span"), button("Tilt down", "down", { pan: 0, tilt: -S, zoom: 0 }), h("span"));
    const zoom = h("div", { class: "ptz-zoom" }, button("Zoom in", "in", { pan: 0, tilt: 0, zoom: S }), button("Zoom out", "out", { pan: 0, tilt: 0, zoom: -S }));

    const name = h("input", { type: "text", maxlength: "64", placeholder: "Preset name", "aria-label": "Preset name" });
    const save = h("button", { type: "button", class: "ptz-save", onclick: async () => {
      const n = name.value.trim();
      if (!n) return name.focus();
      if (await send({ action: "set_preset", name: n })) {
        name.value = "";
        load();
      }
    } }, "Save preset");

    async function load() {
      let r;
      try { r = await api(url); } catch (e) { return; }
      const d = await r.json().catch(() => ({}));
      if (!r.ok) {
        msg.textContent = (WORDS[d.error] || "PTZ is not available.") + (d.detail ? ` (${d.detail})` : "");
        box.dataset.error = d.error || "http_" + r.status;
        return;
      }
      delete box.dataset.error;
      msg.textContent = "";
      pad.hidden = !d.pan_tilt;
      zoom.hidden = !d.zoom;
      presets.replaceChildren(...d.presets.map((p) =>
        h("button", { type: "button", class: "ptz-preset", "data-token": p.token, onclick: () => send({ action: "goto_preset", preset: p.token }) }, p.name || p.token)));
      box.dataset.ready = "true";
    }

    const stopAll = () => release();
    window.addEventListener("blur", stopAll);
    document.addEventListener("visibilitychange", stopAll);
    cleanup.push(() => {
      release();
      window.removeEventListener("blur", stopAll);
      document.removeEventListener("visibilitychange", stopAll);
    });
    box.append(h("div", { class: "ptz-row" }, pad, zoom), h("h4", {}, "Presets"), presets, h("div", { class: "ptz-row" }, name, save), msg);
    load();
    return box;
  }

  window.nvrPtz = { panel };
})();
