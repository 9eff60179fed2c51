#!/usr/bin/env bash
# record_http.sh - regenerate tests/data/http_python.sonde: a real capture of
# python http.server traffic (needs root: it runs the live agent).
# Traffic (20 requests): 5 GET / on one keep-alive connection, GET
# /users/{1,2,3} (404), POST /submit (501), HEAD /, 3 pipelined GETs in one
# write, GET /big.bin (300 KB, truncated at the cap) followed by GET / on the
# same connection, GET with a traceparent, and 4 GET /items/<uuid> (404).
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-tests/data/http_python.sonde}
PORT=${PORT:-18600}
work=$(mktemp -d)
trap 'kill $AP $SP 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
echo hello > "$work/index.html"
head -c 300000 /dev/urandom > "$work/big.bin"
python3 -m http.server -p HTTP/1.1 -b 127.0.0.1 -d "$work" "$PORT" >/dev/null 2>&1 &
SP=$!
sleep 0.5
"$BUILD/sonde" --open-port "$PORT" --record "$OUT" 2>"$work/err" &
AP=$!
for _ in $(seq 50); do grep -q ready "$work/err" && break; sleep 0.2; done
u=http://127.0.0.1:$PORT
curl -s -o /dev/null $u/ -o /dev/null $u/ -o /dev/null $u/ -o /dev/null $u/ -o /dev/null $u/
for i in 1 2 3; do curl -s -o /dev/null $u/users/$i; done
curl -s -o /dev/null -X POST -d a=1 $u/submit
curl -s -o /dev/null -I $u/
python3 - "$PORT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /index.html HTTP/1.1\r\nHost: r\r\n\r\n" * 3)
time.sleep(0.5); s.recv(65536); s.close()
PY
curl -s -o /dev/null $u/big.bin -o /dev/null $u/
curl -s -o /dev/null -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' $u/
for id in 3f2504e0-4f89-11d3-9a0c-0305e82c3301 7c9e6679-7425-40de-944b-e07fc1f90ae7 \
          a8098c1a-f86e-11da-bd1a-00112444be1e 16fd2706-8baf-433b-82eb-8c7fada847da; do
  curl -s -o /dev/null $u/items/$id
done
sleep 0.5
kill $AP; wait $AP || true
echo "recorded $(stat -c %s "$OUT") bytes into $OUT"
