#!/usr/bin/env python3
"""Generate the motion-detection clip matrix into OUTDIR, for fakecam.py (see README.md).

Each cell is one SUB stream (its own size, frame rate and bitrate) of one scene, looped every
LOOP_S seconds: a still, lightly noisy background, then either an object that appears at ONSET_S
and moves (a positive cell, ground truth `motion_start`), or something that must never fire (a
negative cell: strong sensor noise, low-bitrate compression noise, a lighting step, an IR switch
to greyscale, an on-screen clock that the camera's config masks).

    make_matrix.py OUTDIR [--full] [--only CELL ...]

The default is the quick set the tests run (8 cells); --full writes every cell of the matrix for
the benchmark. Writes OUTDIR/manifest.json (the format make_clips.sh writes, plus a "cells"
section saying what each cell holds and the mask its camera needs) and a STAMP; does nothing when
the STAMP matches. Needs only ffmpeg (libx264) and Python's standard library.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

VERSION = "motion-matrix-3"
LOOP_S = 12  # loop length: quiet until ONSET_S, motion for at most MOVE_S, quiet again
ONSET_S = 3.0
MOVE_S = 2.5
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

SIZES = [(320, 240), (640, 360), (704, 576), (1280, 720)]
RATES = [5, 15, 30]
OBJECTS = [0.03, 0.10, 0.30]  # side of a square object, fraction of the picture width
SPEEDS = {"walk": 0.15, "drive": 1.0}  # picture widths per second

# The quick set: the reported failures (D1 at 15 fps, a 3 % object) and the matrix's corners.
QUICK = [
    "d1_704x576_15fps_obj10_drive",
    "pos_640x360_30fps_obj3_walk",
    "pos_320x240_5fps_obj30_drive",
    "pos_1280x720_30fps_obj3_drive",
    "neg_noise_640x360_15fps",
    "neg_lowbitrate_704x576_15fps",
    "neg_lights_ir_320x240_30fps",
    "neg_clock_1280x720_5fps",
]


def positive(w, h, fps, obj, speed):
    name = f"pos_{w}x{h}_{fps}fps_obj{round(obj * 100)}_{speed}"
    return name, {"kind": "object", "size": [w, h], "fps": fps, "object": obj, "speed": SPEEDS[speed]}


def cells():
    out = {}
    for w, h in SIZES:
        for fps in RATES:
            for obj in OBJECTS:
                for speed in SPEEDS:
                    name, cell = positive(w, h, fps, obj, speed)
                    out[name] = cell
    # The reported D1 failure, named for what it is (the same cell as pos_704x576_15fps_obj10_drive).
    out["d1_704x576_15fps_obj10_drive"] = dict(out["pos_704x576_15fps_obj10_drive"])
    for w, h in SIZES:
        for fps in (5, 30):
            for kind in ("noise", "lowbitrate", "lights_ir", "clock"):
                out[f"neg_{kind}_{w}x{h}_{fps}fps"] = {"kind": kind, "size": [w, h], "fps": fps}
    out["neg_noise_640x360_15fps"] = {"kind": "noise", "size": [640, 360], "fps": 15}
    out["neg_lowbitrate_704x576_15fps"] = {"kind": "lowbitrate", "size": [704, 576], "fps": 15}
    return out


# The clock's box, in fractions of the picture (the camera config masks it, with a margin).
CLOCK_MASK = [[0.0, 0.0], [0.42, 0.0], [0.42, 0.16], [0.0, 0.16]]


def filter_graph(cell):
    w, h = cell["size"]
    fps = cell["fps"]
    # A still textured background (the first frame of testsrc2, frozen) with light sensor noise.
    base = f"testsrc2=size={w}x{h}:rate={fps},trim=end_frame=1,loop=loop=-1:size=1,setpts=N/{fps}/TB"
    light_noise = ",noise=alls=3:allf=t"
    kind = cell["kind"]
    if kind == "object":
        side = max(2, round(cell["object"] * w))
        x = f"{0.1 * w:.1f}+(t-{ONSET_S})*{cell['speed'] * w:.1f}"
        y = f"{(h - side) / 2:.1f}"
        end = ONSET_S + MOVE_S
        return (
            f"{base}{light_noise}[bg];color=c=white:size={side}x{side}:rate={fps}[box];"
            f"[bg][box]overlay=x='{x}':y='{y}':enable='between(t,{ONSET_S},{end})'"
        )
    if kind == "noise":  # a dark night picture with strong temporal noise
        return f"{base},lutyuv=y='val*0.5',noise=alls=16:allf=t"
    if kind == "lowbitrate":  # the background re-encoded at a starved bitrate (see bitrate())
        return f"{base}{light_noise}"
    if kind == "lights_ir":
        # Lights go on at ONSET_S (dark before), and at 7 s the camera switches to IR: greyscale,
        # brighter and flatter; both switch back at the loop seam.
        return (
            f"{base}{light_noise},"
            f"lutyuv=y='val*0.35':u='128+(val-128)*0.5':v='128+(val-128)*0.5':enable='lt(t,{ONSET_S})',"
            f"hue=s=0:enable='gte(t,7)',eq=brightness=0.12:contrast=0.8:enable='gte(t,7)'"
        )
    if kind == "clock":
        size = max(10, w // 24)  # "00:00:00.000" is then about 0.31 of the width
        return (
            f"{base}{light_noise},drawtext=fontfile={FONT}:text='%{{pts\\:hms}}':x={w // 50}:y={h // 50}:"
            f"fontsize={size}:fontcolor=white:box=1:boxcolor=black@1:boxborderw=4"
        )
    raise ValueError(kind)


def bitrate(cell):
    w, h = cell["size"]
    # About 0.1 bit per pixel at 30 fps and more per frame at low rates, like camera sub streams.
    bps = w * h * (cell["fps"] ** 0.6) * 0.25
    if cell["kind"] == "lowbitrate":
        bps /= 12
    return max(48_000, int(bps))


def encode(cell, path):
    fps = cell["fps"]
    n = fps * LOOP_S
    kbps = bitrate(cell) // 1000
    cmd = [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-threads", "2",
        "-filter_complex", filter_graph(cell) + ",format=yuv420p[v]", "-map", "[v]",
        "-frames:v", str(n), "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main",
        "-bf", "0", "-g", str(fps), "-keyint_min", str(fps), "-sc_threshold", "0",
        "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{2 * kbps}k", path,
    ]
    subprocess.run(cmd, check=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir")
    p.add_argument("--full", action="store_true", help="every cell (the benchmark's matrix)")
    p.add_argument("--only", nargs="+", metavar="CELL", help="just these cells")
    args = p.parse_args()
    every = cells()
    wanted = args.only or (sorted(every) if args.full else QUICK)
    unknown = [c for c in wanted if c not in every]
    if unknown:
        sys.exit(f"make_matrix.py: unknown cell(s) {unknown}")
    stamp = f"{VERSION} {' '.join(wanted)}"
    stamp_path = os.path.join(args.outdir, "STAMP")
    if os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
        return
    if shutil.which("ffmpeg") is None:
        sys.exit("make_matrix.py: ffmpeg not found (apt install ffmpeg)")
    started = time.monotonic()
    os.makedirs(args.outdir, exist_ok=True)
    if os.path.exists(stamp_path):
        os.remove(stamp_path)
    tmp = tempfile.mkdtemp(dir=args.outdir, prefix=".tmp.")
    try:
        scenes, described = {}, {}
        for name in wanted:
            cell = every[name]
            encode(cell, os.path.join(tmp, f"{name}.mkv"))
            events = [{"event": "motion_start", "at_s": ONSET_S}] if cell["kind"] == "object" else []
            scenes[name] = {"mounts": {"sub": {"video": f"{name}.mkv"}}, "events": events}
            described[name] = dict(cell)
            if cell["kind"] == "clock":
                described[name]["mask"] = CLOCK_MASK
        manifest = {"version": VERSION, "loop_s": LOOP_S, "scenes": scenes, "cells": described}
        with open(os.path.join(tmp, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)
        for entry in os.listdir(tmp):
            os.replace(os.path.join(tmp, entry), os.path.join(args.outdir, entry))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with open(stamp_path, "w") as f:
        f.write(stamp)
    print(f"make_matrix.py: {len(wanted)} cells in {args.outdir} in {time.monotonic() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
