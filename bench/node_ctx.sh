#!/usr/bin/env bash
# bench/node_ctx.sh - what the Node.js plugin costs: wrk throughput against
# the Node.js server of the live test (tests/live/node_peers/server.js,
# Debian's node) bare, watched by the agent with the node plugin (request
# contexts: the async_hooks script in the process, syscall tracepoints),
# and watched without it (the generic layer alone), side by side, as
# ratios. Two routes: /ok answers at once (the cheapest request: the
# script's hooks weigh most), /req/bench awaits a timer and calls a back
# end over HTTP (the issue's shape).
#
# The one idea: one server pinned to CPU 0 with the agent (as on a busy
# host), wrk and the back end on CPU 1; runs in interleaved order (bare,
# node, nonode; then rotated), and the median of the per-round ratios with
# the raw values beside it. Absolute figures on a shared VM mean little;
# ratios survive.
#
#   flock /tmp/sonde-live.lock bench/node_ctx.sh [BUILD_DIR]     (root)
#
# Environment: NODE_BENCH_REPS (3), NODE_BENCH_SECONDS per run (5),
# NODE_BENCH_CONNS (wrk connections, 16), NODE_BENCH_ROUTES ("ok req").
#
# Output: BENCH lines (name, median, unit, raw=...), like bench/run.sh.
set -uo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" 2>/dev/null && pwd) || { echo "no build directory" >&2; exit 1; }
SONDE=$BUILD/sonde
REPS=${NODE_BENCH_REPS:-3}
SECS=${NODE_BENCH_SECONDS:-5}
CONNS=${NODE_BENCH_CONNS:-16}
ROUTES=${NODE_BENCH_ROUTES:-ok req}
PORT=15480
BPORT=15481
PPORT=15482
# shellcheck source=bench/bpf_stats.sh
. "$SRC/bench/bpf_stats.sh"
PEERS=$SRC/tests/live/node_peers
WORK=$(mktemp -d /tmp/sonde-nodebench.XXXXXX)
PIDS=()

for t in node wrk taskset; do
  command -v $t >/dev/null || { echo "node_ctx: $t is not installed" >&2; exit 77; }
done
[ -x "$SONDE" ] && [ -f "$BUILD/plugins/node.so" ] || { echo "node_ctx: build sonde and plugins/node first" >&2; exit 1; }

# Only our own children are signalled.
ours() { [ "$(awk '$1 == "PPid:" { print $2 }' "/proc/$1/status" 2>/dev/null)" = "$$" ]; }
cleanup() {
  for p in "${PIDS[@]}"; do ours "$p" && kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# The agent without the node plugin: the same binary and plugins, minus node.so.
mkdir -p "$WORK/nonode/plugins"
cp "$SONDE" "$WORK/nonode/sonde"
for so in "$BUILD"/plugins/*.so; do
  [ "$(basename "$so")" = node.so ] || cp "$so" "$WORK/nonode/plugins/"
done

taskset -c 1 node "$PEERS/backend.js" $BPORT 2>/dev/null &
PIDS+=($!)

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
wait_port $BPORT || { echo "node_ctx: the back end did not start" >&2; exit 1; }

# One wrk run against a fresh server; $1 = bare | node | nonode, $2 = route.
# Prints "<req/s> <requests> <server spans>".
run() {
  local agent= spans=0 bin=$SONDE srv path=/ok s0=0
  [ "$2" = req ] && path=/req/bench
  taskset -c 0 node "$PEERS/server.js" $PORT $BPORT 0 0 2>"$WORK/server.log" &
  srv=$!
  PIDS+=($srv)
  wait_port $PORT || { echo "0 0 0"; return; }
  if [ "$1" != bare ]; then
    [ "$1" = nonode ] && bin=$WORK/nonode/sonde
    taskset -c 0 "$bin" -v --pid $srv --prometheus-port $PPORT >/dev/null 2>"$WORK/agent.log" &
    agent=$!
    PIDS+=($agent)
    for _ in $(seq 1 150); do grep -q ready "$WORK/agent.log" && break; sleep 0.1; done
    if [ "$1" = node ]; then
      for _ in $(seq 1 100); do grep -q "\[node\].*pid $srv " "$WORK/agent.log" && break; sleep 0.1; done
      grep -q "pid $srv (node): Node.js .* request contexts on" "$WORK/agent.log" ||
        echo "node_ctx: the plugin did not instrument the server: $(grep '\[node\]' "$WORK/agent.log")" >&2
    fi
  fi
  [ -n "$agent" ] && s0=$(prom_server_spans $PPORT)
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$PORT$path" >"$WORK/wrk.out" 2>&1
  if [ -n "$agent" ]; then
    sleep 0.5 # the agent drains its ring at least every 100 ms, not at exit
    spans=$(( $(prom_server_spans $PPORT) - s0 ))
    kill -TERM $agent; wait $agent 2>/dev/null
  fi
  kill $srv; wait $srv 2>/dev/null
  awk -v s="$spans" '/^Requests\/sec:/ { r = $2 } / requests in / { n = $1 } END { print r + 0, n + 0, s }' "$WORK/wrk.out"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
join() { local IFS=,; echo "$*"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }

modes=(bare node nonode)
for route in $ROUTES; do
  bare=() nodev=() nonode=() r_node=() r_nonode=() r_plugin=() per=()
  for i in $(seq 1 "$REPS"); do
    declare -A got=()
    for k in 0 1 2; do
      m=${modes[$(( (k + i) % 3 ))]}
      got[$m]=$(run "$m" "$route")
    done
    read -r b _ _ <<<"${got[bare]}"
    read -r g greq gspans <<<"${got[node]}"
    read -r n _ _ <<<"${got[nonode]}"
    bare+=("$b") nodev+=("$g") nonode+=("$n")
    r_node+=("$(ratio "$g" "$b")") r_nonode+=("$(ratio "$n" "$b")") r_plugin+=("$(ratio "$g" "$n")")
    per+=("$(ratio "$gspans" "$greq")")
    unset got
  done
  name=node_ctx_$route
  echo "BENCH ${name}_rps_bare $(median "${bare[@]}") req/s raw=$(join "${bare[@]}")"
  echo "BENCH ${name}_rps_watched_node $(median "${nodev[@]}") req/s raw=$(join "${nodev[@]}")"
  echo "BENCH ${name}_rps_watched_nonode $(median "${nonode[@]}") req/s raw=$(join "${nonode[@]}")"
  echo "BENCH ${name}_ratio_node $(median "${r_node[@]}") watched/bare raw=$(join "${r_node[@]}")"
  echo "BENCH ${name}_ratio_nonode $(median "${r_nonode[@]}") watched-without-node-plugin/bare raw=$(join "${r_nonode[@]}")"
  echo "BENCH ${name}_ratio_plugin $(median "${r_plugin[@]}") with/without-node-plugin raw=$(join "${r_plugin[@]}")"
  echo "BENCH ${name}_spans_per_request $(median "${per[@]}") server-spans/requests raw=$(join "${per[@]}")"
done
