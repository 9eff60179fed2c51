#!/usr/bin/env bash
# bench/java_https.sh - what watching a Java HTTPS server costs: wrk
# throughput against a JDK HttpsServer (com.sun.net.httpserver, TLS in
# JSSE's SSLEngine; tests/live/java_peers/JavaPeer.java, compiled here with
# the JDK's javac) bare, watched by the agent with the Java runtime plugin
# (its agent attached into the JVM), and watched without it (the generic
# layer alone: it sees only ciphertext, so no spans), side by side, as
# ratios.
#
# The server runs with -Dsun.net.httpserver.nodelay=true: without it the
# JDK server writes headers and body as two segments and every keep-alive
# request waits for the client's delayed ACK (about 340 req/s whatever the
# CPU does), which would hide any cost.
#
# The one idea: one server pinned to CPU 0 with the agent (as on a busy
# host), wrk on CPU 1; each run starts a fresh JVM, attaches (or not),
# waits until JAVA_BENCH_SETTLE seconds after the JVM started, warms the
# JIT up with wrk for JAVA_BENCH_WARM seconds, then measures;
# runs in interleaved order (bare, java, nojava; then rotated), and the
# median of the per-round ratios with the raw values beside it. Absolute
# figures on a shared VM mean little; ratios survive.
#
#   flock /tmp/sonde-live.lock bench/java_https.sh [BUILD_DIR]     (root)
#
# Environment: JAVA_BENCH_REPS (3), JAVA_BENCH_SECONDS per measured run
# (3), JAVA_BENCH_WARM seconds of warm-up (3), JAVA_BENCH_SETTLE seconds
# from the JVM's start to the warm-up in every mode (5),
# JAVA_BENCH_CONNS (wrk connections, 16), JAVA_BENCH_THREADS (the
# server's handler threads, 4). About 100 s with the defaults.
#
# Output: BENCH lines (name, median, unit, raw=...), like bench/run.sh.
set -uo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" 2>/dev/null && pwd) || { echo "no build directory" >&2; exit 1; }
SONDE=$BUILD/sonde
REPS=${JAVA_BENCH_REPS:-3}
SECS=${JAVA_BENCH_SECONDS:-3}
WARM=${JAVA_BENCH_WARM:-3}
SETTLE=${JAVA_BENCH_SETTLE:-5}
CONNS=${JAVA_BENCH_CONNS:-16}
THREADS=${JAVA_BENCH_THREADS:-4}
PORT=15543
PPORT=15544
# shellcheck source=bench/bpf_stats.sh
. "$SRC/bench/bpf_stats.sh"
WORK=$(mktemp -d /tmp/sonde-javabench.XXXXXX)
PIDS=()

for t in java javac keytool wrk taskset; do
  command -v $t >/dev/null || { echo "java_https: $t is not installed" >&2; exit 77; }
done
[ -x "$SONDE" ] && [ -f "$BUILD/plugins/java.so" ] || { echo "java_https: build sonde and plugins/java first" >&2; exit 1; }

# Only our own children are signalled.
ours() { [ "$(awk '$1 == "PPid:" { print $2 }' "/proc/$1/status" 2>/dev/null)" = "$$" ]; }
cleanup() {
  for p in "${PIDS[@]}"; do ours "$p" && kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

javac -d "$WORK" "$SRC/tests/live/java_peers/JavaPeer.java" || exit 1
keytool -genkeypair -keystore "$WORK/ks.p12" -storetype PKCS12 -storepass changeit -keypass changeit \
  -keyalg RSA -keysize 2048 -dname CN=localhost -validity 2 -alias peer >/dev/null 2>&1 || exit 1

# The agent without the Java plugin: the same binary and plugins, minus java.so.
mkdir -p "$WORK/nojava/plugins"
cp "$SONDE" "$WORK/nojava/sonde"
for so in "$BUILD"/plugins/*.so; do
  [ "$(basename "$so")" = java.so ] || cp "$so" "$WORK/nojava/plugins/"
done

wait_port() {
  for _ in $(seq 1 150); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# One measured wrk run against a fresh JVM; $1 = bare | java | nojava.
# Prints "<req/s> <requests> <server spans>".
run() {
  local agent= spans=0 bin=$SONDE srv s0=0
  taskset -c 0 java -Dsun.net.httpserver.nodelay=true -cp "$WORK" JavaPeer https $PORT "$WORK/ks.p12" changeit "$THREADS" \
    </dev/null >/dev/null 2>"$WORK/server.log" &
  srv=$!
  PIDS+=($srv)
  local t0=$SECONDS
  wait_port $PORT || { echo "0 0 0"; return; }
  if [ "$1" != bare ]; then
    [ "$1" = nojava ] && bin=$WORK/nojava/sonde
    taskset -c 0 "$bin" -v --pid $srv --prometheus-port $PPORT >/dev/null 2>"$WORK/agent.log" &
    agent=$!
    PIDS+=($agent)
    for _ in $(seq 1 150); do grep -q ready "$WORK/agent.log" && break; sleep 0.1; done
    if [ "$1" = java ]; then
      for _ in $(seq 1 150); do grep -q "pid $srv (java): agent on" "$WORK/agent.log" && break; sleep 0.1; done
      grep -q "pid $srv (java): agent on" "$WORK/agent.log" || echo "java_https: the agent did not attach" >&2
    fi
  fi
  # Every mode starts its warm-up as long after the JVM started (the JIT
  # compiles in the background meanwhile), whatever attaching took.
  while [ $((SECONDS - t0)) -lt "$SETTLE" ]; do sleep 0.2; done
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${WARM}s" "https://127.0.0.1:$PORT/req/warm" >/dev/null 2>&1
  sleep 0.5
  [ -n "$agent" ] && s0=$(prom_server_spans $PPORT) # after the warm-up's spans
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" "https://127.0.0.1:$PORT/req/bench" >"$WORK/wrk.out" 2>&1
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

bare=() jav=() nojava=() r_java=() r_nojava=() r_plugin=() per=()
modes=(bare java nojava)
for i in $(seq 1 "$REPS"); do
  declare -A got=()
  for k in 0 1 2; do
    m=${modes[$(( (k + i) % 3 ))]}
    got[$m]=$(run "$m")
  done
  read -r b _ _ <<<"${got[bare]}"
  read -r j jreq jspans <<<"${got[java]}"
  read -r n _ _ <<<"${got[nojava]}"
  bare+=("$b") jav+=("$j") nojava+=("$n")
  r_java+=("$(ratio "$j" "$b")") r_nojava+=("$(ratio "$n" "$b")") r_plugin+=("$(ratio "$j" "$n")")
  per+=("$(ratio "$jspans" "$jreq")")
  unset got
done

echo "BENCH java_https_rps_bare $(median "${bare[@]}") req/s raw=$(join "${bare[@]}")"
echo "BENCH java_https_rps_watched_java $(median "${jav[@]}") req/s raw=$(join "${jav[@]}")"
echo "BENCH java_https_rps_watched_nojava $(median "${nojava[@]}") req/s raw=$(join "${nojava[@]}")"
echo "BENCH java_https_ratio_java $(median "${r_java[@]}") watched/bare raw=$(join "${r_java[@]}")"
echo "BENCH java_https_ratio_nojava $(median "${r_nojava[@]}") watched-without-java-plugin/bare raw=$(join "${r_nojava[@]}")"
echo "BENCH java_https_ratio_plugin $(median "${r_plugin[@]}") with/without-java-plugin raw=$(join "${r_plugin[@]}")"
echo "BENCH java_https_spans_per_request $(median "${per[@]}") server-spans/requests raw=$(join "${per[@]}")"
