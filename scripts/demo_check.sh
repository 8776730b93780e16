#!/usr/bin/env bash
# Checks the README's first command: runs scripts/demo.sh, waits for /ready to answer 200 (every camera up) and a
# finished, playable clip to appear under output/demo/, then stops the demo with Ctrl-C (SIGINT to
# its process group, as a terminal sends it) and requires it to exit 0 with its worker gone.
# The demo binds 127.0.0.1:8554 and :5001 and writes the repo's output/: run this alone. It fails if
# either port is taken before it starts (another process would answer for the demo), if the demo
# never answers or never records, or if it does not stop in time; whatever it started is then killed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Until the first 200 from /ready: the demo builds and makes the fake camera's clips first, which
# take minutes when nothing is built yet (seconds after scripts/test.sh has built everything).
HEALTH_WAIT_S=${DEMO_HEALTH_WAIT_S:-900}
# Then until a finished clip: a box crosses the picture every 20 s, motion ends about 5 s after it
# and the clip 4 s after that (config/cameras.json), so one crossing and a half fit in 60 s.
CLIP_WAIT_S=60
# Ctrl-C to exit: the supervisor stops its worker gracefully, by force after a few seconds.
STOP_WAIT_S=30
URL=http://127.0.0.1:5001

say() { echo "demo_check: $*" >&2; }

for port in 8554 5001; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    say "port $port is already in use: stop what listens there first"
    exit 1
  fi
done

log=$(mktemp)
since=$(mktemp) # clips newer than this file are the demo's
demo=""
stopped=0
finish() {
  local rc=$?
  # The demo runs in a process group of its own (job control below): end all of it.
  if [ -n "$demo" ] && [ "$stopped" -eq 0 ]; then
    kill -KILL -- "-$demo" 2>/dev/null || true
    wait "$demo" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ]; then
    say "FAILED; the demo's log ends with:"
    tail -n 40 "$log" >&2 || true
  fi
  rm -f "$log" "$since"
}
trap finish EXIT

# Job control gives the demo its own process group, with SIGINT not ignored, as in a terminal.
set -m
bash scripts/demo.sh >"$log" 2>&1 &
demo=$!
set +m

status_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL$1" || true; }
# Polls the condition "$@" every 0.5 s for up to $1 seconds; fails at once if the demo has exited.
wait_for() {
  local limit=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@"; do
    kill -0 "$demo" 2>/dev/null || { say "the demo exited before $what"; return 1; }
    [ "$SECONDS" -lt "$deadline" ] || { say "no $what within $limit s"; return 1; }
    sleep 0.5
  done
}

health_ok() { [ "$(status_code /ready)" = 200 ]; }
wait_for "$HEALTH_WAIT_S" "200 from /ready" health_ok
say "/ready answers 200 after ${SECONDS} s"
worker=$(curl -s --max-time 2 "$URL/status" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["cameras"][0]["pid"])')
[[ "$worker" =~ ^[0-9]+$ ]] || { say "no worker pid in /status: $worker"; exit 1; }

clip=""
new_clip() {
  clip=$(find output/demo -name '*.mp4' -newer "$since" -size +0c 2>/dev/null | head -n 1)
  [ -n "$clip" ]
}
wait_for "$CLIP_WAIT_S" "finished clip under output/demo/" new_clip
duration=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$clip")
if ! awk -v d="$duration" 'BEGIN { exit !(d > 1) }'; then
  say "$clip is no playable clip (duration: '$duration')"
  exit 1
fi
say "clip $clip ($duration s) after ${SECONDS} s"

kill -INT -- "-$demo"
gone() { ! kill -0 "$demo" 2>/dev/null; }
deadline=$((SECONDS + STOP_WAIT_S))
until gone; do
  [ "$SECONDS" -lt "$deadline" ] || { say "still running $STOP_WAIT_S s after Ctrl-C"; exit 1; }
  sleep 0.2
done
rc=0
wait "$demo" || rc=$?
stopped=1
[ "$rc" -eq 0 ] || { say "the demo exited with status $rc after Ctrl-C"; exit 1; }
if kill -0 "$worker" 2>/dev/null; then
  say "worker $worker outlived the supervisor"
  kill -KILL "$worker" 2>/dev/null || true
  exit 1
fi
# The fake camera exits when the demo's shell closes its stdin, just after the shell has exited.
group_gone() { ! kill -0 -- "-$demo" 2>/dev/null; }
deadline=$((SECONDS + 10))
until group_gone; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    say "processes of the demo outlived it by 10 s: $(pgrep -g "$demo" -a || true)"
    kill -KILL -- "-$demo" 2>/dev/null || true
    exit 1
  fi
  sleep 0.2
done
say "stopped cleanly after Ctrl-C"
