#!/usr/bin/env bash
# bench/go_https.sh - what watching a Go HTTPS server costs: wrk throughput
# against a Go crypto/tls + net/http server (tests/live/go_peers/tlsserver,
# built here with Debian's go) bare, watched by the agent with the Go
# runtime plugin, and watched without it (the generic layer alone: it sees
# only ciphertext, so no spans), side by side, as ratios; plus what the
# agent's BPF programs cost per request (kernel.bpf_stats_enabled, through
# bench/bpf_stats.sh) and the agent's own CPU time per request.
#
# The one idea: one server pinned to CPU 0 with the agent (as on a busy
# host), wrk (and the optional back end) on CPU 1; runs in interleaved
# order (bare, go, nogo; then rotated), and the median of the per-round
# ratios with the raw values beside it. Absolute figures on a shared VM
# mean little; ratios survive.
#
#   flock /tmp/sonde-live.lock bench/go_https.sh [BUILD_DIR]     (root)
#
# About a minute with the defaults (the first run also builds the Go
# programs: their cache is kept in BUILD_DIR/bench/gocache).
# Environment: GO_BENCH_REPS (3), GO_BENCH_SECONDS per run (2),
# GO_BENCH_CONNS (wrk connections, 16), GO_BENCH_BACKEND=1 (each request
# also calls a Go back end over plain HTTP: goroutine contexts, client
# spans).
#
# Output: BENCH lines (name, median, unit, raw=...), like bench/run.sh, and
# "#" lines (what each BPF program costs per request, median round). Exits
# 1 when the agent with the plugin did not see the requests (then the
# figures measured nothing), 77 when it cannot run here.
set -uo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" 2>/dev/null && pwd) || { echo "no build directory" >&2; exit 1; }
SONDE=$BUILD/sonde
REPS=${GO_BENCH_REPS:-3}
SECS=${GO_BENCH_SECONDS:-2}
CONNS=${GO_BENCH_CONNS:-16}
BACKEND=${GO_BENCH_BACKEND:-0}
PORT=15443
BPORT=15444
PPORT=15445
PIDS=()
# shellcheck source=bench/bpf_stats.sh
. "$SRC/bench/bpf_stats.sh"

[ "$(id -u)" = 0 ] || { echo "go_https: needs root (eBPF)" >&2; exit 77; }
for t in go wrk openssl taskset; do
  command -v $t >/dev/null || { echo "go_https: $t is not installed" >&2; exit 77; }
done
[ -x "$SONDE" ] && [ -f "$BUILD/plugins/go.so" ] || { echo "go_https: build sonde and plugins/go first" >&2; exit 1; }
WORK=$(mktemp -d /tmp/sonde-gobench.XXXXXX)

# Only our own children are signalled.
ours() { [ "$(awk '$1 == "PPid:" { print $2 }' "/proc/$1/status" 2>/dev/null)" = "$$" ]; }
cleanup() {
  for p in "${PIDS[@]}"; do ours "$p" && kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$WORK"
  bpf_stats_restore
}
trap cleanup EXIT
BPF_OK=1
bpf_stats_on || { BPF_OK=0; echo "# go_https: kernel.bpf_stats_enabled cannot be set: no BPF ns per request" >&2; }

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

# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# One wrk run against a fresh server; $1 = bare | go | nogo. Prints
# "<req/s> <requests> <server spans> <BPF ns/req> <agent CPU us/req>";
# leaves the per-program breakdown in $WORK/breakdown.$1.
run() {
  local agent= spans=0 bin=$SONDE srv bpfns=0 cpu=0 t0=0 t1=0 n s0=0
  taskset -c 0 "$WORK/tlsserver" "${server_args[@]}" 2>/dev/null &
  srv=$!
  PIDS+=($srv)
  wait_port $PORT || { echo "0 0 0 0 0"; return; }
  if [ "$1" != bare ]; then
    [ "$1" = nogo ] && bin=$WORK/nogo/sonde
    taskset -c 0 "$bin" -v --pid $srv --prometheus-port $PPORT >/dev/null 2>"$WORK/agent.log" &
    agent=$!
    PIDS+=($agent)
    for _ in $(seq 1 150); do grep -q ready "$WORK/agent.log" && break; sleep 0.1; done
    if [ "$1" = go ]; then
      for _ in $(seq 1 50); do grep -q "pid $srv (tlsserver): go" "$WORK/agent.log" && break; sleep 0.1; done
    elif grep -q "loaded plugin go " "$WORK/agent.log"; then
      echo "# go_https: the agent without go.so loaded a go plugin from elsewhere" >&2
    fi
    bpf_snap $agent "$WORK/b0"
    s0=$(prom_server_spans $PPORT)
    t0=$(cpu_ticks $agent)
  fi
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" "https://127.0.0.1:$PORT/req/bench" >"$WORK/wrk.out" 2>&1
  n=$(awk '/ requests in / { print $1 + 0 }' "$WORK/wrk.out")
  if [ -n "$agent" ]; then
    bpf_snap $agent "$WORK/b1"
    sleep 0.3 # the agent drains its ring at least every 100 ms: its CPU time includes that
    t1=$(cpu_ticks $agent)
    spans=$(( $(prom_server_spans $PPORT) - s0 ))
    kill -TERM $agent; wait $agent 2>/dev/null
    if [ "$BPF_OK" = 1 ]; then
      bpfns=$(bpf_per "$WORK/b0" "$WORK/b1" "${n:-0}")
      bpf_breakdown "$WORK/b0" "$WORK/b1" "${n:-0}" "$WORK/breakdown.$1"
    fi
    cpu=$(awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="${n:-0}" \
      'BEGIN { printf "%.1f", (n > 0 ? d / hz * 1e6 / n : 0) }')
  fi
  kill $srv; wait $srv 2>/dev/null
  awk -v s="$spans" -v b="$bpfns" -v c="$cpu" -v n="${n:-0}" \
    '/^Requests\/sec:/ { r = $2 } END { print r + 0, n, s, b, c }' "$WORK/wrk.out"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
join() { local IFS=,; echo "$*"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }

bare=() gov=() nogo=() r_go=() r_nogo=() r_plugin=() per=() bpf_go=() bpf_nogo=() cpu_go=() cpu_nogo=()
modes=(bare go nogo)
for i in $(seq 1 "$REPS"); do
  declare -A got=()
  for k in 0 1 2; do
    m=${modes[$(( (k + i) % 3 ))]}
    got[$m]=$(run "$m")
    [ "$m" = bare ] || cp "$WORK/breakdown.$m" "$WORK/breakdown.$m.$i" 2>/dev/null
  done
  read -r b _ _ _ _ <<<"${got[bare]}"
  read -r g greq gspans gbpf gcpu <<<"${got[go]}"
  read -r n _ _ nbpf ncpu <<<"${got[nogo]}"
  bare+=("$b") gov+=("$g") nogo+=("$n")
  r_go+=("$(ratio "$g" "$b")") r_nogo+=("$(ratio "$n" "$b")") r_plugin+=("$(ratio "$g" "$n")")
  per+=("$(ratio "$gspans" "$greq")")
  bpf_go+=("$gbpf") bpf_nogo+=("$nbpf") cpu_go+=("$gcpu") cpu_nogo+=("$ncpu")
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
if [ "$BPF_OK" = 1 ]; then
  echo "BENCH ${name}_bpf_ns_per_request_go $(median "${bpf_go[@]}") ns/req raw=$(join "${bpf_go[@]}")"
  echo "BENCH ${name}_bpf_ns_per_request_nogo $(median "${bpf_nogo[@]}") ns/req raw=$(join "${bpf_nogo[@]}")"
  # The breakdown of the round whose total is the median.
  med=$(median "${bpf_go[@]}")
  for i in $(seq 1 "$REPS"); do
    [ "${bpf_go[$((i - 1))]}" = "$med" ] || continue
    while read -r prog ns runs; do
      [ "$ns" = 0 ] || echo "# ${name} go: BPF $prog $ns ns/req, $runs runs/req"
    done <"$WORK/breakdown.go.$i"
    break
  done
fi
echo "BENCH ${name}_agent_cpu_us_per_request_go $(median "${cpu_go[@]}") us/req raw=$(join "${cpu_go[@]}")"
echo "BENCH ${name}_agent_cpu_us_per_request_nogo $(median "${cpu_nogo[@]}") us/req raw=$(join "${cpu_nogo[@]}")"

# With the plugin, every request must have made a server span: otherwise the
# watched figures measured an agent that did not see the traffic.
awk -v p="$(median "${per[@]}")" 'BEGIN { exit !(p < 0.95) }' && {
  echo "go_https: the agent with the Go plugin made $(median "${per[@]}") server spans per request" >&2
  exit 1
}
exit 0
