#!/usr/bin/env bash
# bench/go_https.sh - what watching a Go HTTPS server costs: wrk throughput
# against a Go crypto/tls + net/http server (tests/live/go_peers/tlsserver,
# built here with Debian's go) bare, watched by the agent with the Go
# runtime plugin, and watched without it (the generic layer alone: it sees
# only ciphertext, so no spans), side by side, as ratios.
#
# The one idea: one server pinned to CPU 0 with the agent (as on a busy
# host), wrk (and the optional back end) on CPU 1; runs in interleaved
# order (bare, go, nogo; then rotated), and the median of the per-round
# ratios with the raw values beside it. Absolute figures on a shared VM
# mean little; ratios survive.
#
#   flock /tmp/sonde-live.lock bench/go_https.sh [BUILD_DIR]     (root)
#
# Environment: GO_BENCH_REPS (3), GO_BENCH_SECONDS per run (5),
# GO_BENCH_CONNS (wrk connections, 16), GO_BENCH_BACKEND=1 (each request
# also calls a Go back end over plain HTTP: goroutine contexts, client
# spans).
#
# Output: BENCH lines (name, median, unit, raw=...), like bench/run.sh.
set -uo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" 2>/dev/null && pwd) || { echo "no build directory" >&2; exit 1; }
SONDE=$BUILD/sonde
REPS=${GO_BENCH_REPS:-3}
SECS=${GO_BENCH_SECONDS:-5}
CONNS=${GO_BENCH_CONNS:-16}
BACKEND=${GO_BENCH_BACKEND:-0}
PORT=15443
BPORT=15444
WORK=$(mktemp -d /tmp/sonde-gobench.XXXXXX)
PIDS=()

for t in go wrk openssl taskset; do
  command -v $t >/dev/null || { echo "go_https: $t is not installed" >&2; exit 77; }
done
[ -x "$SONDE" ] && [ -f "$BUILD/plugins/go.so" ] || { echo "go_https: build sonde and plugins/go first" >&2; exit 1; }

# Only our own children are signalled.
ours() { [ "$(awk '$1 == "PPid:" { print $2 }' "/proc/$1/status" 2>/dev/null)" = "$$" ]; }
cleanup() {
  for p in "${PIDS[@]}"; do ours "$p" && kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

export GO111MODULE=off GOFLAGS= GOPROXY=off GOTOOLCHAIN=local HOME=$WORK GOCACHE=$BUILD/bench/gocache GOPATH=$WORK/gopath
mkdir -p "$BUILD/bench"
go build -o "$WORK/tlsserver" "$SRC/tests/live/go_peers/tlsserver/main.go" || exit 1
go build -o "$WORK/backend" "$SRC/tests/live/go_peers/backend/main.go" || exit 1
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 1 \
  -subj /CN=localhost >/dev/null 2>&1 || exit 1

# The agent without the Go plugin: the same binary and plugins, minus go.so.
mkdir -p "$WORK/nogo/plugins"
cp "$SONDE" "$WORK/nogo/sonde"
for so in "$BUILD"/plugins/*.so; do
  [ "$(basename "$so")" = go.so ] || cp "$so" "$WORK/nogo/plugins/"
done

server_args=(-addr 127.0.0.1:$PORT -cert "$WORK/cert.pem" -key "$WORK/key.pem" -sleep 0s)
if [ "$BACKEND" = 1 ]; then
  taskset -c 1 "$WORK/backend" -addr 127.0.0.1:$BPORT 2>/dev/null &
  PIDS+=($!)
  server_args+=(-backend http://127.0.0.1:$BPORT)
fi

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# One wrk run against a fresh server; $1 = bare | go | nogo. Prints
# "<req/s> <requests> <server spans>".
run() {
  local agent= spans=0 bin=$SONDE srv
  taskset -c 0 "$WORK/tlsserver" "${server_args[@]}" 2>/dev/null &
  srv=$!
  PIDS+=($srv)
  wait_port $PORT || { echo "0 0 0"; return; }
  if [ "$1" != bare ]; then
    [ "$1" = nogo ] && bin=$WORK/nogo/sonde
    taskset -c 0 "$bin" --print json -v --pid $srv >"$WORK/spans.json" 2>"$WORK/agent.log" &
    agent=$!
    PIDS+=($agent)
    for _ in $(seq 1 150); do grep -q ready "$WORK/agent.log" && break; sleep 0.1; done
    if [ "$1" = go ]; then
      for _ in $(seq 1 50); do grep -q "pid $srv (tlsserver): go" "$WORK/agent.log" && break; sleep 0.1; done
    fi
  fi
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" "https://127.0.0.1:$PORT/req/bench" >"$WORK/wrk.out" 2>&1
  if [ -n "$agent" ]; then
    sleep 0.5 # the agent drains its ring at least every 100 ms, not at exit
    kill -TERM $agent; wait $agent 2>/dev/null
    spans=$(grep -c '"kind":"SERVER"' "$WORK/spans.json")
  fi
  kill $srv; wait $srv 2>/dev/null
  awk -v s="$spans" '/^Requests\/sec:/ { r = $2 } / requests in / { n = $1 } END { print r + 0, n + 0, s }' "$WORK/wrk.out"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
join() { local IFS=,; echo "$*"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }

bare=() gov=() nogo=() r_go=() r_nogo=() r_plugin=() per=()
modes=(bare go nogo)
for i in $(seq 1 "$REPS"); do
  declare -A got=()
  for k in 0 1 2; do
    m=${modes[$(( (k + i) % 3 ))]}
    got[$m]=$(run "$m")
  done
  read -r b _ _ <<<"${got[bare]}"
  read -r g greq gspans <<<"${got[go]}"
  read -r n _ _ <<<"${got[nogo]}"
  bare+=("$b") gov+=("$g") nogo+=("$n")
  r_go+=("$(ratio "$g" "$b")") r_nogo+=("$(ratio "$n" "$b")") r_plugin+=("$(ratio "$g" "$n")")
  per+=("$(ratio "$gspans" "$greq")")
  unset got
done

name=go_https$([ "$BACKEND" = 1 ] && echo _backend)
echo "BENCH ${name}_rps_bare $(median "${bare[@]}") req/s raw=$(join "${bare[@]}")"
echo "BENCH ${name}_rps_watched_go $(median "${gov[@]}") req/s raw=$(join "${gov[@]}")"
echo "BENCH ${name}_rps_watched_nogo $(median "${nogo[@]}") req/s raw=$(join "${nogo[@]}")"
echo "BENCH ${name}_ratio_go $(median "${r_go[@]}") watched/bare raw=$(join "${r_go[@]}")"
echo "BENCH ${name}_ratio_nogo $(median "${r_nogo[@]}") watched-without-go-plugin/bare raw=$(join "${r_nogo[@]}")"
echo "BENCH ${name}_ratio_plugin $(median "${r_plugin[@]}") with/without-go-plugin raw=$(join "${r_plugin[@]}")"
echo "BENCH ${name}_spans_per_request $(median "${per[@]}") server-spans/requests raw=$(join "${per[@]}")"
