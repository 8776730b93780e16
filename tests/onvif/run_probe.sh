#!/bin/bash
# run_probe.sh [clock-offset] [probe-offset] : start the device on a free port, probe it, stop it.
cd "$(dirname "$0")"
# The venv scripts/setup.sh makes (NVR_ONVIF_VENV moves it); PY overrides the python.
PY=${PY:-${NVR_ONVIF_VENV:-/opt/nvr-test/onvif-venv}/bin/python}
OFF=${1:-0}; POFF=${2:-0}
start=$(date +%s.%N)
"$PY" ipycam_device.py --port 0 --user admin --password 's3cret' --clock-offset "$OFF" $EXTRA > dev.out 2> dev.err &
PID=$!
for i in $(seq 1 100); do grep -q LISTENING dev.out 2>/dev/null && break; sleep 0.05; done
end=$(date +%s.%N)
PORT=$(sed -n 's/LISTENING 127.0.0.1://p' dev.out)
echo "device pid $PID port $PORT ready after $(echo "$end - $start" | bc) s"
ps -o rss=,vsz= -p $PID | awk '{print "RSS " $1/1024 " MiB"}'
"$PY" probe.py "$PORT" admin 's3cret' "$POFF"
ps -o rss=,time= -p $PID | awk '{print "after probe: RSS " $1/1024 " MiB, cpu time " $2}'
kill $PID; wait $PID 2>/dev/null
cat dev.err
