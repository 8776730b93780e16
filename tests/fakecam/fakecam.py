#!/usr/bin/python3
"""Fake IP cameras: an RTSP server that loops pre-encoded clips at real-time pace.

Run with Debian's /usr/bin/python3 (it needs python3-gi and gir1.2-gst-rtsp-server-1.0).
See README.md for the mounts, the JSON lines on stdout and the commands on stdin.

Design:
  * Each clip is demuxed ONCE into memory as access units (GstBuffers); serving
    never re-encodes. A mount's pipeline is `appsrc ! rtpXpay` per track.
  * Every scene has one timeline, anchored at server start: frame i of loop k
    is due at t0 + k * loop + pts_i (CLOCK_MONOTONIC). A pusher thread per
    track of a playing media pushes each frame when it is due, with
    PTS = due - base_time (the pipeline clock is the monotonic system clock),
    so a client that joins late gets the current position of the loop, like a
    real camera, and all mounts of a scene show the object at the same instant.
  * Media are shared: N clients of one mount cost one pipeline.
  * Ground truth (loop_start, motion_start, ...) comes from the same timeline,
    printed when due whether or not anyone is watching.
"""

import argparse
import bisect
import json
import os
import secrets
import signal
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

ROLE = "user"
FILTER_REMOVE = GstRtspServer.RTSPFilterResult.REMOVE
FILTER_REF = GstRtspServer.RTSPFilterResult.REF
FILTER_KEEP = GstRtspServer.RTSPFilterResult.KEEP
SHARE_MEMORY = Gst.BufferCopyFlags.FLAGS | Gst.BufferCopyFlags.MEMORY
MAX_LATE_NS = 500_000_000  # a pusher this late skips ahead instead of bursting
ALAW_CHUNK_S = 0.020  # 20 ms per A-law packet, as cameras send G.711


class Control:
    """Knobs every pusher obeys, set by stdin commands: pause, clock jumps; and what was sent."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running = threading.Event()  # cleared by `pause`
        self.running.set()
        self.offset_ns = 0  # added to every PTS from now on (`jump`): the camera's clock jumped
        self.pushed = {}  # mount -> video frames pushed into its pipeline
        self.pipelines = set()  # the bins of the media being served

    def jump(self, seconds):
        """The cameras' clocks jump: later PTS (so RTP timestamps) move by SECONDS. The pushers
        pace the stream, so the sinks must send each packet at once instead of waiting for its
        timestamp (the server made them `sync`)."""
        for bin_ in list(self.pipelines):
            pipeline = bin_.get_parent()
            if pipeline is None:
                continue
            it = pipeline.iterate_recurse()
            while True:
                ok, el = it.next()
                if ok != Gst.IteratorResult.OK:
                    break
                factory = el.get_factory()
                if factory is not None and factory.get_name() in ("appsink", "multiudpsink"):
                    el.set_property("sync", False)
        self.offset_ns += int(seconds * Gst.SECOND)

    def count(self, mount):
        with self.lock:
            self.pushed[mount] = self.pushed.get(mount, 0) + 1


CONTROL = Control()

# ---------------------------------------------------------------------------
# Output: JSON lines on stdout, one writer at a time, always flushed.

_out_lock = threading.Lock()
WALL_MINUS_MONO = time.time_ns() - time.monotonic_ns()


def emit(event, **fields):
    line = json.dumps({"event": event, **fields}, separators=(",", ":"))
    with _out_lock:
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            # Our parent is gone: nobody reads the ground truth any more.
            os._exit(0)


def stamp(mono_ns):
    return {"mono_ns": mono_ns, "wall_ns": mono_ns + WALL_MINUS_MONO}


# ---------------------------------------------------------------------------
# Clips in memory.


def is_video(caps_name):
    return caps_name.startswith("video/") or caps_name == "image/jpeg"  # MJPEG


class Track:
    """One elementary stream of one loop: caps plus access units with loop-relative PTS."""

    def __init__(self, path, caps, frames, loop_ns):
        self.path = path
        self.caps = caps
        self.pts = [f[0] for f in frames]  # loop-relative, ascending, all < loop_ns
        self.frames = frames  # (pts_ns, duration_ns, Gst.Buffer)
        self.loop_ns = loop_ns
        name = caps.get_structure(0).get_name()
        self.payloader = {
            "video/x-h264": "rtph264pay config-interval=-1 pt=96",
            "video/x-h265": "rtph265pay config-interval=-1 pt=96",
            "audio/mpeg": "rtpmp4gpay pt=97",
            "audio/x-alaw": "rtppcmapay pt=8",
            "image/jpeg": "rtpjpegpay pt=26",
        }.get(name)
        if self.payloader is None:
            raise SystemExit(f"fakecam: {path}: unsupported caps {name}")
        if is_video(name) and frames[0][2].has_flags(Gst.BufferFlags.DELTA_UNIT):
            raise SystemExit(f"fakecam: {path}: does not start on a key frame, cannot loop")


def pull_samples(path, parse):
    """All samples of PATH through the parsing elements PARSE."""
    pipeline = Gst.parse_launch(f'filesrc location="{path}" ! {parse} ! appsink name=sink sync=false')
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    samples = []
    while True:
        sample = sink.emit("pull-sample")  # None at EOS (or on error)
        if sample is None:
            break
        samples.append(sample)
    err = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if err is not None:
        raise SystemExit(f"fakecam: {path}: {err.parse_error()[0].message}")
    if not samples:
        raise SystemExit(f"fakecam: {path}: no data")
    return samples


def load_track(path, loop_ns):
    """Demuxes and parses the single stream of PATH into memory."""
    samples = pull_samples(path, "parsebin")
    if samples[0].get_caps().get_structure(0).get_name() == "video/x-h264":
        # Again with SPS/PPS in-band before every IDR, as a real camera sends them: parsebin alone
        # leaves them in the clip's first frame only, so a client joining mid-loop could not
        # decode anything until the loop wrapped.
        samples = pull_samples(path, "parsebin ! h264parse config-interval=-1 ! "
                               "video/x-h264,stream-format=byte-stream,alignment=au")
    caps = samples[0].get_caps()
    if caps.get_structure(0).get_name() == "audio/x-alaw":
        return Track(path, caps, alaw_frames(samples, caps, loop_ns), loop_ns)
    # Containers store millisecond timestamps (33, 33, 34 ms...); cameras stamp frames on an exact
    # cadence, and clients notice the difference. Rebuild exact timestamps from the frame rate
    # (video) or the frame size (AAC: 1024 samples), which is what the clip was encoded with.
    st = caps.get_structure(0)
    if is_video(st.get_name()):
        ok, num, den = st.get_fraction("framerate")
        if not ok or num == 0:
            raise SystemExit(f"fakecam: {path}: no frame rate in {caps.to_string()}")
        def at(idx):
            return idx * Gst.SECOND * den // num
    elif st.get_name() == "audio/mpeg":
        rate = st.get_int("rate")[1]
        def at(idx):
            return idx * 1024 * Gst.SECOND // rate
    else:
        raise SystemExit(f"fakecam: {path}: unsupported caps {caps.to_string()}")
    bufs = [s.get_buffer() for s in samples]
    n = 0
    while n < len(bufs) and at(n) < loop_ns:  # AAC priming makes one frame too many
        n += 1
    frames = [(at(idx), min(at(idx + 1), loop_ns) - at(idx), bufs[idx]) for idx in range(n)]
    return Track(path, caps, frames, loop_ns)


def alaw_frames(samples, caps, loop_ns):
    """Re-chunks raw A-law into 20 ms packets (the container stores 128 ms blocks)."""
    rate = caps.get_structure(0).get_int("rate")[1]
    data = b"".join(s.get_buffer().extract_dup(0, s.get_buffer().get_size()) for s in samples)
    data = data[: rate * loop_ns // Gst.SECOND]
    step = int(rate * ALAW_CHUNK_S)
    frames = []
    for off in range(0, len(data), step):
        chunk = data[off : off + step]
        pts = off * Gst.SECOND // rate
        frames.append((pts, len(chunk) * Gst.SECOND // rate, Gst.Buffer.new_wrapped(chunk)))
    return frames


class Scene:
    """One camera: a loop length, its ground-truth events and the tracks of its mounts."""

    def __init__(self, name, loop_ns, t0_ns, events, mounts):
        self.name = name
        self.loop_ns = loop_ns
        self.t0_ns = t0_ns  # monotonic instant at which loop 0 starts
        self.events = events  # [(offset_ns, event name)] within a loop, incl. loop_start
        self.mounts = mounts  # mount name -> [Track]


# ---------------------------------------------------------------------------
# Serving.


class Pusher(threading.Thread):
    """Pushes one track's frames into one appsrc when they are due on the scene's timeline."""

    def __init__(self, scene, track, appsrc, mount):
        super().__init__(daemon=True, name=f"push-{scene.name}")
        self.scene = scene
        self.track = track
        self.appsrc = appsrc
        # Frames are counted per mount (video only), so a client's losses can be told from ours.
        self.mount = mount if is_video(track.caps.get_structure(0).get_name()) else None
        self.stopped = threading.Event()

    def _next_due(self, key=False):
        """(loop index, frame index) of the next frame due from now on, like a live camera; with
        KEY, of the next key frame (audio has no key frames: any frame)."""
        scene, track = self.scene, self.track
        loop_idx, pos = divmod(time.monotonic_ns() - scene.t0_ns, scene.loop_ns)
        i = bisect.bisect_left(track.pts, pos)
        while key and self.mount and i < len(track.frames) and track.frames[i][2].has_flags(Gst.BufferFlags.DELTA_UNIT):
            i += 1
        if i == len(track.frames):
            loop_idx, i = loop_idx + 1, 0
        return loop_idx, i

    def run(self):
        scene, track = self.scene, self.track
        n = len(track.frames)
        loop_idx, i = self._next_due()
        while True:
            pts, duration, buf = track.frames[i]
            due = scene.t0_ns + loop_idx * scene.loop_ns + pts
            delay = due - time.monotonic_ns()
            if delay < -MAX_LATE_NS:  # we were stopped or starved: skip, as a camera would, no burst
                if self.mount and CONTROL.running.is_set():
                    emit("late", mount=self.mount, late_ms=-delay // 1_000_000, **stamp(time.monotonic_ns()))
                loop_idx, i = self._next_due()
                continue
            if delay > 0 and self.stopped.wait(delay / 1e9):
                return
            if self.stopped.is_set():
                return
            if not CONTROL.running.is_set():
                # Paused: send nothing, then go on from the next key frame, as a camera whose
                # encoder restarted would (resuming mid-GOP would send frames whose references
                # were never sent, and every recording across a pause would be damaged).
                while not CONTROL.running.wait(0.05):
                    if self.stopped.is_set():
                        return
                loop_idx, i = self._next_due(key=True)
                continue
            base = self.appsrc.get_base_time()
            pts = due - base + CONTROL.offset_ns
            if base and due >= base and pts >= 0:  # base is 0 until the pipeline first plays
                # A new buffer sharing the memory. (Not buf.copy(): PyGObject's boxed copy of a
                # GstBuffer is a ref, so every pipeline would stamp the same buffer.)
                out = buf.copy_region(SHARE_MEMORY, 0, buf.get_size())
                out.pts = out.dts = pts
                out.duration = duration
                self.appsrc.emit("push-buffer", out)
                if self.mount:
                    CONTROL.count(self.mount)
            i += 1
            if i == n:
                loop_idx, i = loop_idx + 1, 0


class SceneFactory(GstRtspServer.RTSPMediaFactory):
    """A shared media per mount: `appsrc ! payloader` per track, fed by Pushers."""

    def __init__(self, scene, tracks, path):
        super().__init__()
        self.scene = scene
        self.tracks = tracks
        self.path = path
        branches = [
            f"appsrc name=src{idx} is-live=true format=time do-timestamp=false min-latency=0 "
            f"max-bytes=8000000 leaky-type=downstream ! {t.payloader} name=pay{idx}"
            for idx, t in enumerate(tracks)
        ]
        self.set_launch("( " + " ".join(branches) + " )")
        self.set_shared(True)
        perms = GstRtspServer.RTSPPermissions()
        perms.add_permission_for_role(ROLE, "media.factory.access", True)
        perms.add_permission_for_role(ROLE, "media.factory.construct", True)
        self.set_permissions(perms)
        self.connect("media-configure", self._on_media_configure)

    def _on_media_configure(self, _factory, media):
        bin_ = media.get_element()
        pushers = []
        for idx, track in enumerate(self.tracks):
            src = bin_.get_by_name(f"src{idx}")
            src.set_property("caps", track.caps)
            pushers.append(Pusher(self.scene, track, src, self.path))
        media.connect("unprepared", lambda _m: [p.stopped.set() for p in pushers])
        CONTROL.pipelines.add(bin_)
        media.connect("unprepared", lambda _m: CONTROL.pipelines.discard(bin_))
        for p in pushers:
            p.start()


def make_auth(user, password):
    auth = GstRtspServer.RTSPAuth()
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", ROLE)
    auth.add_digest(user, password, token)
    return auth


class FakeCam:
    def __init__(self, args, scenes):
        self.args = args
        self.scenes = scenes
        self.loop = GLib.MainLoop()
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address(args.host)
        self.server.set_service(str(args.port))
        self.auth = make_auth(args.user, args.password) if args.user is not None else None
        self.deny_auth = make_auth("nobody-" + secrets.token_hex(8), secrets.token_hex(16))
        self.server.set_auth(self.auth)
        self.denying = False
        self.quit_reason = "quit"  # printed in the final `exit` line
        self.source_id = None
        self.n_clients = 0
        self.mounts = []
        self.factories = {}  # mount path -> (scene, tracks), to serve a mount again after `off`
        self.off_mounts = set()
        points = self.server.get_mount_points()
        for scene in scenes:
            for mount, tracks in scene.mounts.items():
                path = f"/{scene.name}/{mount}"
                points.add_factory(path, SceneFactory(scene, tracks, path))
                self.factories[path] = (scene, tracks)
                self.mounts.append(path)
        self.server.connect("client-connected", self._on_client_connected)

    # -- listening -----------------------------------------------------------

    def listen(self):
        if self.source_id is None:
            self.source_id = self.server.attach(None)
            if self.source_id == 0:
                raise RuntimeError(f"cannot listen on {self.args.host}:{self.server.get_service()}")
            # Later `start`s must come back on the same port.
            self.server.set_service(str(self.server.get_bound_port()))

    def unlisten(self):
        if self.source_id is not None:
            GLib.source_remove(self.source_id)  # drops the source's (only) ref: closes the socket
            self.source_id = None

    # -- clients -------------------------------------------------------------

    def _on_client_connected(self, _server, client):
        self.n_clients += 1
        if self.denying:
            client.set_auth(self.deny_auth)
        client.connect("closed", self._on_client_closed)
        client.connect("play-request", self._on_play)
        conn = client.get_connection()
        emit("client_connected", ip=conn.get_ip() if conn else None, clients=self.n_clients)
        if self.args.drop_after is not None:
            GLib.timeout_add(int(self.args.drop_after * 1000), self._drop_one, client)

    def _on_play(self, _client, ctx):
        try:
            path = ctx.uri.abspath
        except AttributeError:
            path = None
        emit("play", mount=path, **stamp(time.monotonic_ns()))

    def _on_client_closed(self, _client):
        self.n_clients -= 1
        emit("client_closed", clients=self.n_clients)

    def _drop_one(self, client):
        pool = self.server.get_session_pool()
        for session in client.session_filter(lambda _c, _s, *_u: FILTER_REF) or []:
            pool.remove(session)
        client.close()
        return GLib.SOURCE_REMOVE

    def drop_all(self):
        clients = self.server.client_filter(lambda _s, _c, *_u: FILTER_REF) or []
        for client in clients:
            self._drop_one(client)
        # Sessions without a connection (UDP clients that lost theirs) go too.
        self.server.get_session_pool().filter(lambda _p, _s, *_u: FILTER_REMOVE)
        return len(clients)

    def mount_off(self, path):
        """One camera goes away: its mount answers 404 and its clients are dropped; the others
        play on."""
        if path not in self.factories:
            raise ValueError(f"no mount {path}")
        self.server.get_mount_points().remove_factory(path)
        self.off_mounts.add(path)
        pool = self.server.get_session_pool()
        dropped = 0
        for client in self.server.client_filter(lambda _s, _c, *_u: FILTER_REF) or []:
            sessions = client.session_filter(lambda _c, _s, *_u: FILTER_REF) or []
            mine = []
            for session in sessions:
                for sm in session.filter(lambda _s, _m, *_u: FILTER_REF) or []:
                    # `matches` is a prefix test (/clock/tiny matches /clock/tiny_a): this mount
                    # only if the whole path matched.
                    ok, matched = sm.matches(path)
                    if ok and matched == len(path):
                        mine.append(session)
                        break
            if mine:
                for session in mine:
                    pool.remove(session)
                client.close()
                dropped += 1
        return dropped

    def mount_on(self, path):
        if path not in self.factories:
            raise ValueError(f"no mount {path}")
        if path in self.off_mounts:
            scene, tracks = self.factories[path]
            self.server.get_mount_points().add_factory(path, SceneFactory(scene, tracks, path))
            self.off_mounts.discard(path)

    def set_deny(self, on):
        self.denying = on
        auth = self.deny_auth if on else self.auth
        self.server.set_auth(auth)

        def apply(_server, client, *_u):
            client.set_auth(auth)
            return FILTER_KEEP

        self.server.client_filter(apply)

    # -- commands (run on the main loop) --------------------------------------

    def command(self, line):
        words = line.split()
        if not words:
            return GLib.SOURCE_REMOVE
        cmd, rest = words[0], words[1:]
        reply = {"cmd": line.strip(), "ok": True}
        try:
            if cmd == "stop":
                self.unlisten()
                reply["dropped"] = self.drop_all()
            elif cmd == "start":
                self.listen()
            elif cmd == "drop":
                reply["dropped"] = self.drop_all()
            elif cmd == "deny" and rest in (["on"], ["off"]):
                self.set_deny(rest[0] == "on")
            elif cmd == "off" and len(rest) == 1:
                reply["dropped"] = self.mount_off(rest[0])
            elif cmd == "on" and len(rest) == 1:
                self.mount_on(rest[0])
            elif cmd == "pause":
                CONTROL.running.clear()
            elif cmd == "resume":
                CONTROL.running.set()
            elif cmd == "jump" and len(rest) == 1:
                CONTROL.jump(float(rest[0]))
            elif cmd == "status":
                pass
            elif cmd == "quit":
                self.loop.quit()
            else:
                reply.update(ok=False, error="unknown command; try stop|start|drop|deny on|deny off|off PATH|on PATH|pause|resume|jump S|status|quit")
        except Exception as exc:  # report, keep serving
            reply.update(ok=False, error=str(exc))
        with CONTROL.lock:
            pushed = dict(CONTROL.pushed)
        reply.update(listening=self.source_id is not None, deny=self.denying, clients=self.n_clients,
                     off=sorted(self.off_mounts),
                     paused=not CONTROL.running.is_set(), clock_offset_s=CONTROL.offset_ns / Gst.SECOND,
                     pushed=pushed)
        emit("ack", **reply)
        return GLib.SOURCE_REMOVE

    def read_stdin(self):
        for line in sys.stdin:
            GLib.idle_add(self.command, line)
        GLib.idle_add(self._quit, "stdin closed")

    def _quit(self, why):
        self.quit_reason = why
        self.loop.quit()
        return GLib.SOURCE_REMOVE


def ground_truth(scenes, since_ns, stopped):
    """Prints each scene's events when due, in time order, from SINCE_NS on, forever."""
    # Next (due, scene idx, loop, event idx) per scene.
    upcoming = []
    for s_idx, scene in enumerate(scenes):
        loop_idx = max(0, (since_ns - scene.t0_ns) // scene.loop_ns)
        for e_idx, (off, _name) in enumerate(scene.events):
            due = scene.t0_ns + loop_idx * scene.loop_ns + off
            if due < since_ns:
                due += scene.loop_ns
            upcoming.append([due, s_idx, (due - scene.t0_ns) // scene.loop_ns, e_idx])
    while upcoming:
        upcoming.sort()
        nxt = upcoming[0]
        due, s_idx, loop_idx, e_idx = nxt
        delay = due - time.monotonic_ns()
        if delay > 0 and stopped.wait(delay / 1e9):
            return
        scene = scenes[s_idx]
        emit(scene.events[e_idx][1], scene=scene.name, loop=loop_idx, **stamp(due))
        nxt[0] += scene.loop_ns
        nxt[2] += 1


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", required=True, help="directory made by make_clips.sh")
    p.add_argument("--port", type=int, default=8554, help="0 picks a free port (printed in 'ready')")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--user", help="digest auth user (with --password); none: no auth")
    p.add_argument("--password")
    p.add_argument("--scene", action="append", help="serve this scene (repeatable; default all)")
    p.add_argument("--drop-after", type=float, metavar="S", help="disconnect each client S seconds after it connects")
    p.add_argument(
        "--start-pos",
        type=float,
        default=0.0,
        metavar="S",
        help="timeline position (seconds into the loop) at server start, e.g. 18 to see a loop_start soon",
    )
    args = p.parse_args()
    if (args.user is None) != (args.password is None):
        p.error("--user and --password go together")
    return args


def main():
    args = parse_args()
    Gst.init(None)
    with open(os.path.join(args.clips, "manifest.json")) as f:
        manifest = json.load(f)
    loop_ns = int(manifest["loop_s"] * Gst.SECOND)
    wanted = args.scene or list(manifest["scenes"])
    unknown = [s for s in wanted if s not in manifest["scenes"]]
    if unknown:
        raise SystemExit(f"fakecam: unknown scene(s) {unknown}; have {list(manifest['scenes'])}")

    cache = {}  # file -> Track: motion_main.mkv serves main, main_aac and main_alaw

    def track(name):
        if name not in cache:
            cache[name] = load_track(os.path.join(args.clips, name), loop_ns)
        return cache[name]

    loaded = []
    for name in wanted:
        spec = manifest["scenes"][name]
        mounts = {m: [track(f) for f in (files["video"], files.get("audio")) if f] for m, files in spec["mounts"].items()}
        events = [(0, "loop_start")] + [(int(e["at_s"] * Gst.SECOND), e["event"]) for e in spec["events"]]
        loaded.append((name, events, mounts))

    start_ns = time.monotonic_ns()
    t0_ns = start_ns - int(args.start_pos * Gst.SECOND) % loop_ns
    scenes = [Scene(name, loop_ns, t0_ns, sorted(events, key=lambda e: e[0]), mounts) for name, events, mounts in loaded]
    cam = FakeCam(args, scenes)
    # Before `ready`: a parent may signal us as soon as it reads it.
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, cam._quit, signal.Signals(sig).name)
    try:
        cam.listen()
    except RuntimeError as exc:
        raise SystemExit(f"fakecam: {exc}")
    emit(
        "ready",
        host=args.host,
        port=cam.server.get_bound_port(),
        mounts=cam.mounts,
        loop_s=manifest["loop_s"],
        t0_mono_ns=t0_ns,
        scenes={s.name: [{"event": e, "at_s": off / Gst.SECOND} for off, e in s.events] for s in scenes},
        **stamp(time.monotonic_ns()),
    )
    stopped = threading.Event()
    threading.Thread(target=ground_truth, args=(scenes, start_ns, stopped), daemon=True).start()
    threading.Thread(target=cam.read_stdin, daemon=True).start()
    cam.loop.run()
    stopped.set()
    emit("exit", reason=cam.quit_reason)
    # Skip interpreter/GStreamer teardown: pusher threads may be inside push-buffer.
    os._exit(0)


if __name__ == "__main__":
    main()
