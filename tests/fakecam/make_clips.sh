#!/usr/bin/env bash
# Generate the fake cameras' loopable clips into OUTDIR (see README.md).
#
# Every clip is one loop of LOOP_S seconds: it starts on an IDR frame, its
# length is an exact multiple of every GOP, there are no B-frames, so the
# server can push the same access units again and again without re-encoding.
# MAIN and SUB of a scene come out of one ffmpeg run (one filter graph split in
# two), so both show the object at the same instant.
#
# Idempotent: does nothing when OUTDIR/STAMP holds this script's VERSION.
# Builds in a temporary directory, moves clips and manifest.json in, writes STAMP last.
set -euo pipefail

# Bump when the clips or the manifest change, so caches are regenerated.
VERSION="fakecam-clips-9"
LOOP_S=20        # loop length, seconds
MOTION_AT_S=10   # first moving (or lights-on) frame within the loop, seconds
FPS=30
MAIN_GOP_S=2
SUB_GOP_S=1
NOISE=12         # temporal sensor noise of the `noise` scene (ffmpeg `noise` strength)
FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf

usage() { echo "usage: $0 OUTDIR" >&2; exit 2; }
[[ $# -eq 1 ]] || usage
OUT=$1
if [[ -f "$OUT/STAMP" && "$(cat "$OUT/STAMP")" == "$VERSION" ]]; then
    exit 0
fi
command -v ffmpeg >/dev/null || { echo "make_clips.sh: ffmpeg not found (apt install ffmpeg)" >&2; exit 1; }

mkdir -p "$OUT"
rm -f "$OUT/STAMP"
TMP=$(mktemp -d "$OUT/.tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
started_ms=$(($(date +%s%N) / 1000000))

W=1920 H=1080 SW=640 SH=360
# The live grid's tiles: SUB-only cameras at 320x180, 15 fps, GOP 1 s (cheap enough for 16 at once).
TW=320 TH=180 TFPS=15
MAIN_GOP=$((FPS * MAIN_GOP_S))
SUB_GOP=$((FPS * SUB_GOP_S))
N_FRAMES=$((FPS * LOOP_S))
(( N_FRAMES % MAIN_GOP == 0 && N_FRAMES % SUB_GOP == 0 )) || { echo "loop is not a multiple of the GOPs" >&2; exit 1; }

# A static textured background: the first frame of testsrc2, frozen.
BASE="testsrc2=size=${W}x${H}:rate=${FPS},trim=end_frame=1,loop=loop=-1:size=1,setpts=N/${FPS}/TB"
# Moving-object x position: enters at the left edge at MOTION_AT_S, reaches the
# right edge at the end of the loop.
move_x() { echo "(t-${MOTION_AT_S})/(${LOOP_S}-${MOTION_AT_S})*(W-$1)"; }
# A solid SIZE x SIZE box of COLOR overlaid at (X, Y) from MOTION_AT_S on
# (overlay evaluates its position per frame; drawbox in ffmpeg 5.1 does not).
box() { # SIZE COLOR X Y
    echo "[bg];color=c=$2:size=$1x$1:rate=${FPS}[box];[bg][box]overlay=x='$3':y='$4':enable='gte(t,${MOTION_AT_S})'"
}

# Prints the filters that follow BASE (starting with "," or a "[label];").
scene_filter() {
    case $1 in
    motion) # a large black box (384x384, ~7 % of the frame) crosses the frame
        box 384 black "$(move_x 384)" "(H-384)/2" ;;
    small) # a small white box (200x200, ~2 % of the frame) crosses diagonally
        box 200 white "$(move_x 200)" "H/4+(t-${MOTION_AT_S})/(${LOOP_S}-${MOTION_AT_S})*H/2-100" ;;
    noise) # strong sensor noise (a dark night picture), nothing moves
        echo ",noise=alls=${NOISE}:allf=t" ;;
    lights) # dark until MOTION_AT_S, then the lights go on (and off again at the loop seam)
        echo ",lutyuv=y='val*0.35':u='128+(val-128)*0.5':v='128+(val-128)*0.5':enable='lt(t,${MOTION_AT_S})'" ;;
    clock) # a small on-screen clock (time within the loop), nothing else changes
        if [[ -f $FONT ]]; then
            echo ",drawtext=fontfile=${FONT}:text='%{pts\\:hms}':x=24:y=24:fontsize=96:fontcolor=white:box=1:boxcolor=black@1:boxborderw=6"
        else # no font: a small box whose shade changes every second
            echo ",drawbox=x=24:y=24:w=96:h=32:color=white@1:t=fill:enable='lt(mod(t,2),1)'"
        fi ;;
    *) echo "unknown scene $1" >&2; exit 1 ;;
    esac
}

x264_main=(-c:v libx264 -preset veryfast -profile:v high -bf 0 -g "$MAIN_GOP" -keyint_min "$MAIN_GOP"
    -sc_threshold 0 -b:v 4M -maxrate 4M -bufsize 4M -x264-params filler=1)
x264_sub=(-c:v libx264 -preset veryfast -profile:v main -bf 0 -g "$SUB_GOP" -keyint_min "$SUB_GOP"
    -sc_threshold 0 -b:v 512k -maxrate 512k -bufsize 1M)
x264_tiny=(-c:v libx264 -preset veryfast -profile:v main -bf 0 -g "$TFPS" -keyint_min "$TFPS"
    -sc_threshold 0 -b:v 160k -maxrate 160k -bufsize 320k)
x265_tiny=(-c:v libx265 -preset ultrafast -b:v 128k -maxrate 128k -bufsize 256k
    -x265-params "keyint=${TFPS}:min-keyint=${TFPS}:scenecut=0:bframes=0:open-gop=0:log-level=error")
x265_main=(-c:v libx265 -preset ultrafast -b:v 3M -maxrate 3M -bufsize 3M
    -x265-params "keyint=${MAIN_GOP}:min-keyint=${MAIN_GOP}:scenecut=0:bframes=0:open-gop=0:log-level=error")
x265_sub=(-c:v libx265 -preset ultrafast -b:v 384k -maxrate 384k -bufsize 768k
    -x265-params "keyint=${SUB_GOP}:min-keyint=${SUB_GOP}:scenecut=0:bframes=0:open-gop=0:log-level=error")

ff() { ffmpeg -hide_banner -nostdin -loglevel error -y -threads 2 "$@"; }

for scene in motion small noise lights clock; do
    graph="${BASE}$(scene_filter "$scene"),format=yuv420p,split=2[m][s0];[s0]scale=${SW}:${SH}[s]"
    outs=(-map '[m]' -frames:v "$N_FRAMES" "${x264_main[@]}" "$TMP/${scene}_main.mkv"
        -map '[s]' -frames:v "$N_FRAMES" "${x264_sub[@]}" "$TMP/${scene}_sub.mkv")
    if [[ $scene == motion ]]; then
        graph="${BASE}$(scene_filter "$scene"),format=yuv420p,split=6[m][m5][s0][s5][t0][t5];[s0]scale=${SW}:${SH}[s];[s5]scale=${SW}:${SH}[s5s]"
        graph+=";[t0]scale=${TW}:${TH},fps=${TFPS}[t];[t5]scale=${TW}:${TH},fps=${TFPS}[t5s]"
        outs+=(-map '[m5]' -frames:v "$N_FRAMES" "${x265_main[@]}" "$TMP/motion_main_h265.mkv"
            -map '[s5s]' -frames:v "$N_FRAMES" "${x265_sub[@]}" "$TMP/motion_sub_h265.mkv"
            -map '[t]' -frames:v $((TFPS * LOOP_S)) "${x264_tiny[@]}" "$TMP/motion_tiny.mkv"
            -map '[t5s]' -frames:v $((TFPS * LOOP_S)) "${x265_tiny[@]}" "$TMP/motion_tiny_h265.mkv")
    elif [[ $scene == clock ]]; then
        graph="${BASE}$(scene_filter "$scene"),format=yuv420p,split=3[m][s0][t0];[s0]scale=${SW}:${SH}[s];[t0]scale=${TW}:${TH},fps=${TFPS}[t]"
        outs+=(-map '[t]' -frames:v $((TFPS * LOOP_S)) "${x264_tiny[@]}" "$TMP/clock_tiny.mkv")
    fi
    ff -filter_complex "$graph" "${outs[@]}"
done

# Audio tracks for the motion scene, one loop long: AAC-LC 32 kHz (exactly 625
# frames of 1024 samples per 20 s) and G.711 A-law 8 kHz. The server pairs them
# with motion_main.mkv's video.
ff -f lavfi -i "sine=frequency=440:sample_rate=32000,volume=0.2" -t "$LOOP_S" -ac 1 -c:a aac -b:a 64k "$TMP/motion_aac.mka"
ff -f lavfi -i "sine=frequency=440:sample_rate=8000,volume=0.2" -t "$LOOP_S" -ac 1 -c:a pcm_alaw "$TMP/motion_alaw.mka"
# A camera the NVR cannot record without transcoding (the hardening tests' "wrong codec").
ff -f lavfi -i "testsrc2=size=${SW}x${SH}:rate=10" -t "$LOOP_S" -c:v mjpeg -q:v 12 -pix_fmt yuvj420p "$TMP/motion_mjpeg.mkv"

# The manifest the server reads: loop length, ground truth, mounts.
mounts() { # scene -> JSON object of mounts
    printf '{"main":{"video":"%s_main.mkv"},"sub":{"video":"%s_sub.mkv"}' "$1" "$1"
    if [[ $1 == motion ]]; then
        printf ',"main_h265":{"video":"motion_main_h265.mkv"},"sub_h265":{"video":"motion_sub_h265.mkv"}'
        printf ',"main_aac":{"video":"motion_main.mkv","audio":"motion_aac.mka"}'
        printf ',"main_alaw":{"video":"motion_main.mkv","audio":"motion_alaw.mka"}'
        printf ',"mjpeg":{"video":"motion_mjpeg.mkv"}'
        printf ',"tiny":{"video":"motion_tiny.mkv"},"tiny_h265":{"video":"motion_tiny_h265.mkv"}'
    elif [[ $1 == clock ]]; then
        # One clip, several mounts: each mount is its own pipeline, so a test can take one down.
        printf ',"tiny":{"video":"clock_tiny.mkv"},"tiny_a":{"video":"clock_tiny.mkv"},"tiny_b":{"video":"clock_tiny.mkv"}'
    fi
    printf '}'
}
events() { # scene -> JSON list of ground-truth events within the loop
    case $1 in
    motion | small) printf '[{"event":"motion_start","at_s":%s}]' "$MOTION_AT_S" ;;
    lights) printf '[{"event":"lights_on","at_s":%s},{"event":"lights_off","at_s":0}]' "$MOTION_AT_S" ;;
    *) printf '[]' ;;
    esac
}
{
    printf '{"version":"%s","loop_s":%s,"fps":%s,"main_gop_s":%s,"sub_gop_s":%s,"scenes":{' \
        "$VERSION" "$LOOP_S" "$FPS" "$MAIN_GOP_S" "$SUB_GOP_S"
    sep=
    for scene in motion small noise lights clock; do
        printf '%s"%s":{"mounts":%s,"events":%s}' "$sep" "$scene" "$(mounts "$scene")" "$(events "$scene")"
        sep=,
    done
    printf '}}\n'
} >"$TMP/manifest.json"

mv "$TMP"/* "$OUT"/
echo "$VERSION" >"$OUT/STAMP"
elapsed_ms=$(($(date +%s%N) / 1000000 - started_ms))
printf 'make_clips.sh: %s ready in %d.%03d s\n' "$OUT" $((elapsed_ms / 1000)) $((elapsed_ms % 1000)) >&2
