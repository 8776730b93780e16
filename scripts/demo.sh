#!/usr/bin/env bash
# The README's run command: builds the NVR, starts a fake IP camera on 127.0.0.1:8554 (GStreamer's RTSP
# server playing generated clips) and runs the supervisor on config/cameras.json, which points at it.
# Ctrl-C stops both. Open http://127.0.0.1:5001/status to watch it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

cargo build --release --workspace --bins
CLIPS="${NVR_CLIPS_DIR:-target/fakecam-clips}"
bash tests/fakecam/make_clips.sh "$CLIPS"

# The fake camera exits when its stdin closes, so it never outlives this script.
exec 3> >(/usr/bin/python3 tests/fakecam/fakecam.py --clips "$CLIPS" --port 8554 --scene motion >&2)
FAKECAM_PID=$!
trap 'exec 3>&-; kill $FAKECAM_PID 2>/dev/null || true' EXIT
sleep 1
echo "demo: fake camera on rtsp://127.0.0.1:8554/motion/{main,sub}; API on http://127.0.0.1:5001 (/health, /ready, /status, /metrics)" >&2
target/release/supervisor --config config/cameras.json
