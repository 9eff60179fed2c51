#!/usr/bin/env bash
# record_redis.sh - regenerate tests/data/redis.sonde: a real capture of
# redis-server traffic (needs root: it runs the live agent). Traffic:
# redis-cli SET/GET/INCR/DEL (one connection each), an error reply
# (WRONGTYPE), SELECT 2 + SET, and a 16-deep pipeline of SET/GET from
# redis-benchmark (-n 64 -P 16 -c 1): all recorded from redis-server's side.
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-tests/data/redis.sonde}
PORT=${PORT:-16399}
work=$(mktemp -d)
trap 'kill $AP $SP 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null &
SP=$!
for _ in $(seq 50); do redis-cli -p "$PORT" PING >/dev/null 2>&1 && break; sleep 0.1; done
"$BUILD/sonde" --open-port "$PORT" --record "$OUT" 2>"$work/err" &
AP=$!
for _ in $(seq 50); do grep -q ready "$work/err" && break; sleep 0.2; done
r() { redis-cli -p "$PORT" "$@" >/dev/null; }
r SET user:1 alice; r GET user:1; r INCR counter; r DEL user:1
r LPUSH list a; r INCR list
r -n 2 SET k v
redis-benchmark -p "$PORT" -n 64 -P 16 -c 1 -t set,get -q >/dev/null
sleep 0.5
kill $AP; wait $AP || true
echo "recorded $(stat -c %s "$OUT") bytes into $OUT"
