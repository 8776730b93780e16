#!/usr/bin/env bash
# Installs what the NVR needs to build, run and test on Debian/Ubuntu, skipping what is already there.
# Safe to run again. Uses sudo when not root.
set -euo pipefail

PACKAGES=(
  # build: ffmpeg-next's bindings (the media pipelines link FFmpeg)
  build-essential pkg-config clang libclang-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev
  # fake cameras and media checks: GStreamer's RTSP server, the ffmpeg CLI for clips and ffprobe
  ffmpeg python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad fonts-dejavu-core
  # tests use these (chromium: recordings must play and seek in a real browser)
  curl procps util-linux chromium
  # the schedule test runs the supervisor across a daylight-saving night with a shifted wall clock
  faketime
  # the benchmark compares the NVR with Motion
  motion
  # the metrics tests: promtool checks /metrics, a real Prometheus server scrapes it
  prometheus
  # deployment tests: the README's nginx config with TLS, the Debian package and lintian, the
  # container image (podman with runc on a debootstrap base image), the systemd unit's checks
  nginx-light openssl lintian podman runc uidmap debootstrap systemd binutils
  # the notification tests publish to a real MQTT broker
  mosquitto
  # the PTZ tests' ONVIF device (ipycam, below) runs in its own Python venv
  python3-venv
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: installing the Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

# The PTZ tests' ONVIF device: PyPI ipycam in a venv outside the build tree, so `cargo clean` keeps
# it (tests/onvif/README.md). NVR_ONVIF_VENV moves it; the test harness reads the same variable.
ONVIF_VENV="${NVR_ONVIF_VENV:-/opt/nvr-test/onvif-venv}"
if ! "$ONVIF_VENV/bin/python" -c 'import ipycam, cv2, numpy' >/dev/null 2>&1; then
  echo "setup: installing the ONVIF test device (ipycam) in $ONVIF_VENV"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO mkdir -p "$(dirname "$ONVIF_VENV")"
  # Debian's python3 (with python3-venv above), not whatever python3 comes first on PATH.
  PY=/usr/bin/python3
  [ -x "$PY" ] || PY=python3
  $SUDO "$PY" -m venv "$ONVIF_VENV"
  # ipycam declares opencv-python (GUI libraries); the headless build gives the same cv2.
  $SUDO "$ONVIF_VENV/bin/pip" install -q --disable-pip-version-check numpy==2.4.6 opencv-python-headless==5.1.0.95
  $SUDO "$ONVIF_VENV/bin/pip" install -q --disable-pip-version-check --no-deps ipycam==1.3.0
fi
