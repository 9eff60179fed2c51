#!/usr/bin/env bash
# demo.sh - the main job on a sample service, end to end, in ~20 seconds.
#
# Starts a sample HTTP service (python http.server), then sonde watching it
# by port with the text printer and a Prometheus endpoint, drives a little
# traffic with curl (200s, 404s with id-like paths, a 501, keep-alive), and
# shows the spans and the RED histogram counts sonde produced.
set -euo pipefail
BUILD=${1:-build}
SONDE=$BUILD/sonde
[ -x "$SONDE" ] || { echo "demo: $SONDE is not built (run make)"; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: sonde loads eBPF programs and needs root: sudo make demo"; exit 1
fi
APP_PORT=${APP_PORT:-18080}
PROM_PORT=${PROM_PORT:-19464}
work=$(mktemp -d)
trap 'kill $SONDE_PID $APP_PID 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/www/users"
echo '<h1>sample service</h1>' > "$work/www/index.html"

echo "== starting a sample service: python3 -m http.server $APP_PORT"
python3 -m http.server -p HTTP/1.1 -b 127.0.0.1 -d "$work/www" "$APP_PORT" >/dev/null 2>&1 &
APP_PID=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$APP_PORT/" && break; sleep 0.1; done

echo "== starting: $SONDE --open-port $APP_PORT --print text --prometheus-port $PROM_PORT"
"$SONDE" --open-port "$APP_PORT" --print text --prometheus-port "$PROM_PORT" \
  >"$work/spans.txt" 2>"$work/sonde.err" &
SONDE_PID=$!
for _ in $(seq 100); do grep -q ready "$work/sonde.err" 2>/dev/null && break; sleep 0.1; done
cat "$work/sonde.err"

echo "== traffic: 5 x GET /, GET /users/{42,77,1001} (404), POST / (501), keep-alive x3"
for _ in 1 2 3 4 5; do curl -s -o /dev/null "http://127.0.0.1:$APP_PORT/"; done
for id in 42 77 1001; do curl -s -o /dev/null "http://127.0.0.1:$APP_PORT/users/$id"; done
curl -s -o /dev/null -X POST -d x=1 "http://127.0.0.1:$APP_PORT/"
curl -s -o /dev/null -o /dev/null -o /dev/null "http://127.0.0.1:$APP_PORT/" \
  "http://127.0.0.1:$APP_PORT/index.html" "http://127.0.0.1:$APP_PORT/"
sleep 1

echo
echo "== spans (one line each, from --print text):"
cat "$work/spans.txt"
echo
echo "== RED metrics from http://127.0.0.1:$PROM_PORT/metrics (counts):"
curl -s "http://127.0.0.1:$PROM_PORT/metrics" | grep -E '^http_server_request_duration_seconds_count|^sonde_(events|spans|instrumented)' || true
echo
echo "demo: 12 requests sent; $(grep -c . "$work/spans.txt") spans printed."
