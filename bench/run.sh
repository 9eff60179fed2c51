#!/usr/bin/env bash
# bench/run.sh - what watching costs, and how fast the parsers are, measured
# side by side in one run and reported as ratios (`make bench`).
#
# The one idea: every figure is a comparison made on the same machine
# minutes apart - with and without the agent, ours against a reference
# parser - repeated in interleaved order (A, B, A, B...), and reported as
# the median of the per-repetition ratios with the raw values beside it.
# Absolute numbers on a shared 2-core VM mean little; ratios survive.
#
#   bench/run.sh [BUILD_DIR]        (default: build; needs root for eBPF)
#
# Environment:
#   BENCH_REPS=N        repetitions of every A/B pair (default 5; quick: 1)
#   BENCH_QUICK=1       short runs (about 2 minutes) for development
#   BENCH_RATE_FRACTION fixed rate, as a fraction of the lower saturation
#                       throughput of bare and watched (default 0.5)
#   BENCH_CONNS=N       connections held for the footprint (10000)
#   BENCH_SKIP="node https ..."  sections to leave out (machine http https redis
#                       node parse sql pipeline footprint)
#
# Pinning (2 cores): the server (nginx worker, redis-server, node) and the
# agent share CPU 0 - the agent competes with what it watches, as it would
# in production on a busy host - and every load generator (wrk, ratecli,
# redis-benchmark, holdconns, the OTLP sink) and the parser benchmarks run
# on CPU 1. Replays run on CPU 0.
#
# Output: BENCH <name> <median> <unit> raw=<v1>,<v2>,... lines as figures
# are made, then a table. Everything is also written to BUILD/bench/.
# Word splitting of the value lists passed to emit is intended.
# shellcheck disable=SC2046,SC2086,SC2034
set -uo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-build}" 2>/dev/null && pwd) || { echo "bench: no build directory '${1:-build}'" >&2; exit 1; }
SONDE=$BUILD/sonde
OUT=$BUILD/bench
BIN=$OUT/bin
RESULTS=$OUT/results.txt
TABLE=$OUT/table.txt

QUICK=${BENCH_QUICK:-0}
# Many short interleaved pairs beat a few long ones on a shared machine:
# a neighbour's burst spoils one pair, and the median discards it.
if [ "$QUICK" = 1 ]; then
  REPS=${BENCH_REPS:-1}; SAT_S=2; RATE_S=2; CAL_S=1; WARM_S=1; PARSE_S=0.15; REC_S=2
else
  REPS=${BENCH_REPS:-5}; SAT_S=3; RATE_S=3; CAL_S=2; WARM_S=1; PARSE_S=0.3; REC_S=4
fi
FOOT_REPS=$(( REPS < 3 ? REPS : 3 ))
RATE_FRACTION=${BENCH_RATE_FRACTION:-0.5}
HOLD_CONNS=${BENCH_CONNS:-10000}
SKIP=" ${BENCH_SKIP:-} "
CPU_SRV=0
CPU_LOAD=1
WRK_CONNS=16
TICK=$(getconf CLK_TCK)

P_HTTP=15000 P_HTTPS=15001 P_REDIS=15002 P_NODE=15010 P_FOOT=15020 P_PROM=15900 P_SINK=15950

OTEL_PKGS="@opentelemetry/sdk-node@0.223.0 @opentelemetry/auto-instrumentations-node@0.81.2 @opentelemetry/exporter-trace-otlp-http@0.223.1"

WORK=$(mktemp -d /tmp/sonde-bench.XXXXXX)
chmod 755 "$WORK" # nginx workers run as nobody and must reach the docroot
PIDS=()
AGENT_PID=
T_START=$(date +%s)

# ---- plumbing ---------------------------------------------------------------

# Only our own children are ever signalled: a pid is checked to still be a
# child of this shell (not a reused number) before it is killed.
ours() { [ "$(awk '$1 == "PPid:" { print $2 }' "/proc/$1/status" 2>/dev/null)" = "$$" ]; }

cleanup() {
  local p
  for p in "${PIDS[@]}"; do
    ours "$p" && kill "$p" 2>/dev/null
  done
  sleep 0.3
  for p in "${PIDS[@]}"; do
    ours "$p" && kill -9 "$p" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap 'cleanup; bpf_stats_restore' EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM

say() { echo "$*" | tee -a "$OUT/run.log"; }
T_SEC=$(date +%s)
section() { note "== $1 (at $(( $(date +%s) - T_START )) s; previous section took $(( $(date +%s) - T_SEC )) s)"; T_SEC=$(date +%s); }
note() { echo "# $*" | tee -a "$OUT/run.log"; }
skip() { case "$SKIP" in *" $1 "*) return 0 ;; esac; return 1; }

# Start a background process; its pid is remembered for cleanup.
bg() {
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# SIGTERM, up to $2 seconds (default 5) to exit, then SIGKILL; the pid is
# reaped and forgotten.
stop() {
  local pid=$1 i keep=()
  [ -n "$pid" ] || return 0
  if ours "$pid" && kill "$pid" 2>/dev/null; then
    for i in $(seq $(( ${2:-5} * 20 ))); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    ours "$pid" && kill -9 "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  for i in "${PIDS[@]}"; do
    [ "$i" = "$pid" ] || keep+=("$i")
  done
  PIDS=("${keep[@]}")
  return 0
}

wait_port() {
  local i
  for i in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: nothing listens on port $1" >&2
  return 1
}

wait_log() { # FILE PATTERN TIMEOUT_TENTHS
  local i
  for i in $(seq "${3:-300}"); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

calc() { awk "BEGIN { printf \"%.6g\", $* }"; }

# CPU ticks (user + system, all threads, exited ones included) of a pid.
ticks() {
  [ -r "/proc/$1/stat" ] || { echo 0; return; }
  sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }

# Sum of a metric's samples on the agent's /metrics (0 when absent), only
# of samples whose labels contain $2 when given (url_scheme="https").
prom() {
  curl -s --max-time 5 "http://127.0.0.1:$P_PROM/metrics" |
    awk -v m="$1" -v l="${2:-}" '($1 == m || index($1, m "{") == 1) && index($1, l) { s += $NF }
      END { printf "%.0f", s }'
}

median() {
  printf '%s\n' "$@" | grep -v '^$' | sort -g |
    awk '{ a[NR] = $1 } END { if (!NR) { print "nan"; exit }
         if (NR % 2) print a[(NR + 1) / 2]; else printf "%.6g\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

declare -A MED RAW
# emit NAME UNIT v1 v2 ... : the median with the raw values beside it.
emit() {
  local name=$1 unit=$2; shift 2
  local m raw
  m=$(median "$@")
  raw=$(IFS=,; echo "$*")
  MED[$name]=$m
  RAW[$name]="$*"
  say "BENCH $name $m $unit raw=$raw"
  echo "BENCH $name $m $unit raw=$raw" >>"$RESULTS"
}

# Collect BENCH lines printed by a C benchmark.
absorb() {
  local line name val
  while IFS= read -r line; do
    case "$line" in
      BENCH\ *)
        say "$line"; echo "$line" >>"$RESULTS"
        name=$(echo "$line" | awk '{ print $2 }'); val=$(echo "$line" | awk '{ print $3 }')
        MED[$name]=$val
        RAW[$name]=$(echo "$line" | sed -n 's/.* raw=\([^ ]*\).*/\1/p' | tr ',' ' ') ;;
      *) note "${line#\# }" ;;
    esac
  done
}

# Per-repetition ratios b/a of two space-separated lists.
ratios() {
  awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x, " "); split(b, y, " ");
    for (i = 1; i <= n; i++) printf "%s%.4g", (i > 1 ? " " : ""), (x[i] > 0 ? y[i] / x[i] : 0) }'
}

# BPF run time per program (bpf_stats_on, bpf_snap, bpf_per, bpf_breakdown).
# shellcheck source=bench/bpf_stats.sh
. "$SRC/bench/bpf_stats.sh"

# ---- load generators ----------------------------------------------------------

to_us() {
  awk -v v="$1" 'BEGIN { u = 1; if (v ~ /us$/) sub(/us$/, "", v); else if (v ~ /ms$/) { sub(/ms$/, "", v); u = 1e3 }
    else if (v ~ /s$/) { sub(/s$/, "", v); u = 1e6 } printf "%.1f", v * u }'
}

# wrk at saturation: sets W_RPS W_REQ W_P50 W_P99 (us).
wrk_run() { # URL SECONDS
  local f=$WORK/wrk.out
  W_BAD=0
  taskset -c $CPU_LOAD wrk -t1 -c$WRK_CONNS -d"${2}s" --latency "$1" >"$f" 2>&1
  W_RPS=$(awk '/^Requests\/sec:/ { print $2 }' "$f")
  W_REQ=$(awk '/requests in/ { print $1 }' "$f")
  W_P50=$(to_us "$(awk '$1 == "50%" { print $2 }' "$f")")
  W_P99=$(to_us "$(awk '$1 == "99%" { print $2 }' "$f")")
  if grep -q 'Non-2xx\|Socket errors' "$f"; then
    note "wrk: $(grep 'Non-2xx\|Socket errors' "$f" | tr -s ' ' | tr '\n' ' ')"
    W_BAD=1
  fi
  [ -n "$W_RPS" ] || { note "wrk failed: $(tail -3 "$f" | tr '\n' ' ')"; W_RPS=0 W_REQ=0 W_P50=0 W_P99=0; }
}

# ratecli at a fixed rate: sets R_OK R_P50 R_P99 (us).
rate_run() { # PROTO PORT RATE SECONDS
  local line
  line=$(taskset -c $CPU_LOAD "$BIN/ratecli" --proto "$1" --port "$2" --rate "$3" \
         --duration "$4" --conns $WRK_CONNS 2>&1 | tail -1)
  R_OK=$(echo "$line" | sed -n 's/.* ok=\([0-9]*\).*/\1/p')
  R_P50=$(echo "$line" | sed -n 's/.* p50_us=\([0-9.]*\).*/\1/p')
  R_P99=$(echo "$line" | sed -n 's/.* p99_us=\([0-9.]*\).*/\1/p')
  local err; err=$(echo "$line" | sed -n 's/.* errors=\([0-9]*\).*/\1/p')
  [ "${err:-1}" = 0 ] || note "ratecli: $line"
  [ -n "$R_OK" ] || { R_OK=0 R_P50=0 R_P99=0; }
}

# redis-benchmark: sets B_SET_RPS B_GET_RPS B_*_P50/P99 (us) and B_REQ
# (commands sent) for the tests run.
rb_run() { # N TESTS(set,get|get) PIPELINE
  local f=$WORK/rb.csv t
  B_SET_RPS=0 B_GET_RPS=0 B_SET_P50=0 B_SET_P99=0 B_GET_P50=0 B_GET_P99=0
  taskset -c $CPU_LOAD redis-benchmark -p $P_REDIS -c $WRK_CONNS -n "$1" -r 10000 -d 64 \
    -P "$3" -t "$2" --csv >"$f" 2>&1
  for t in SET GET; do
    grep -q "^\"$t\"" "$f" || continue
    eval "B_${t}_RPS=\$(awk -F'\"' '\$2 == \"$t\" { print \$4 }' \"$f\")"
    eval "B_${t}_P50=\$(awk -F'\"' '\$2 == \"$t\" { printf \"%.1f\", \$10 * 1000 }' \"$f\")"
    eval "B_${t}_P99=\$(awk -F'\"' '\$2 == \"$t\" { printf \"%.1f\", \$14 * 1000 }' \"$f\")"
  done
  B_REQ=$(( $1 * $(echo "$2" | tr ',' '\n' | wc -l) ))
  [ "$B_GET_RPS" != 0 ] || note "redis-benchmark failed: $(tail -2 "$f")"
}

# ---- the agent --------------------------------------------------------------------

agent_start() { # LOG ARGS...
  local log=$1; shift
  bg "$log" taskset -c $CPU_SRV "$SONDE" "$@"
  AGENT_PID=$LAST_PID
  if ! wait_log "$log" "ready" 300; then
    say "bench: the agent did not start; its log:"; tail -20 "$log"
    exit 1
  fi
  sleep 0.3
}

agent_stop() { stop "$AGENT_PID" 15; AGENT_PID=; }

# The open-files limit a process may ask for: want, capped by the hard limit.
nofile() {
  local h; h=$(ulimit -Hn)
  if [ "$h" = unlimited ] || [ "$h" -ge "$1" ]; then echo "$1"; else echo "$h"; fi
}

# ---- servers -----------------------------------------------------------------------

nginx_start() { # DIR HTTP_PORT HTTPS_PORT WORKER_CONNECTIONS
  local d=$1
  mkdir -p "$d/www" "$d/tmp" "$d/logs"
  chmod 755 "$d" "$d/www"
  printf 'hello from nginx\n' >"$d/www/index.html"
  local ssl=""
  if [ "$3" != 0 ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
      -subj /CN=localhost -keyout "$d/key.pem" -out "$d/cert.pem" >/dev/null 2>&1
    ssl="server { listen 127.0.0.1:$3 ssl; ssl_certificate $d/cert.pem;
             ssl_certificate_key $d/key.pem; root $d/www; location / { } }"
  fi
  cat >"$d/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile $(nofile $(( $4 + 100 )));
daemon off;
master_process on;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections $4; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path $d/tmp; proxy_temp_path $d/tmp; fastcgi_temp_path $d/tmp;
  uwsgi_temp_path $d/tmp; scgi_temp_path $d/tmp;
  server { listen 127.0.0.1:$2 backlog=4096; root $d/www; location / { } }
  $ssl
}
EOF
  bg "$d/stdout.log" taskset -c $CPU_SRV nginx -c "$d/nginx.conf" -p "$d"
  NGINX_PID=$LAST_PID
  wait_port "$2" || { cat "$d/logs/error.log" "$d/stdout.log"; exit 1; }
  [ "$3" = 0 ] || wait_port "$3" || exit 1
  NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -1)
}

# ---- section 1: overhead on a real server --------------------------------------------

# The moderate rate: a fraction of the lower of the two saturation
# throughputs (bare, watched), so that both sides are measured below their
# capacity and the latency comparison is about cost, not queueing.
fixed_rate() {
  awk -v a="$1" -v b="$2" -v f="$RATE_FRACTION" 'BEGIN { m = (a < b ? a : b) * f;
    if (m < 100) m = 100; printf "%d", m }'
}

# One A/B repetition pair for a server already running. Sets per-mode raw
# lists in the associative array V[<scenario>_<mode>_<figure>].
declare -A V
addv() { V[$1]="${V[$1]:-}$2 "; }

overhead_http() { # SCENARIO(http|https) URL PORT
  local sc=$1 url=$2 port=$3 rate r mode
  # Count only what the agent attributed to this scheme: an HTTPS request
  # is counted only if the TLS uprobes delivered its plaintext.
  local metric="http_server_request_duration_seconds_count" lbl="url_scheme=\"$sc\""
  wrk_run "$url" "$CAL_S"
  if [ "$W_BAD" = 1 ]; then
    say "bench: $url answers with errors; the set-up is broken"; exit 1
  fi
  local cal_a=$W_RPS cal_b
  agent_start "$WORK/agent-$sc-cal.log" --open-port "$P_HTTP-$P_HTTPS"
  wrk_run "$url" "$CAL_S"
  cal_b=$W_RPS
  agent_stop
  rate=$(fixed_rate "$cal_a" "$cal_b")
  note "$sc: calibration ${cal_a} req/s bare, ${cal_b} req/s watched; fixed rate = $RATE_FRACTION x the lower = $rate req/s"
  for r in $(seq "$REPS"); do
    for mode in bare agent; do
      local c0=0 c1=0 c2=0 m0=0 m1=0 m2=0 l0=0 l1=0 s0 s1
      if [ $mode = agent ]; then
        agent_start "$WORK/agent-$sc-$r.log" --open-port "$P_HTTP-$P_HTTPS" --prometheus-port $P_PROM
        m0=$(prom $metric "$lbl"); l0=$(prom sonde_events_lost_total)
        c0=$(ticks "$AGENT_PID"); bpf_snap "$AGENT_PID" "$WORK/b0"
      fi
      s0=$(ticks "$NGINX_WORKER")
      wrk_run "$url" "$SAT_S"
      s1=$(ticks "$NGINX_WORKER")
      if [ $mode = agent ]; then
        c1=$(ticks "$AGENT_PID"); bpf_snap "$AGENT_PID" "$WORK/b1"
        sleep 0.6; m1=$(prom $metric "$lbl")
      fi
      rate_run "$sc" "$port" "$rate" "$RATE_S"
      if [ $mode = agent ]; then
        c2=$(ticks "$AGENT_PID"); bpf_snap "$AGENT_PID" "$WORK/b2"; sleep 0.6
        m2=$(prom $metric "$lbl"); l1=$(prom sonde_events_lost_total)
        agent_stop
        addv "${sc}_bpfns" "$(bpf_per "$WORK/b0" "$WORK/b1" "$W_REQ")"
        addv "${sc}_bpfns_rate" "$(bpf_per "$WORK/b1" "$WORK/b2" "$R_OK")"
        bpf_breakdown "$WORK/b0" "$WORK/b1" "$W_REQ" "$OUT/bpf_${sc}.txt"
        addv "${sc}_cpu1k" "$(calc "($c1 - $c0) / $TICK / $W_REQ * 1000")"
        addv "${sc}_cpu1k_rate" "$(calc "($c2 - $c1) / $TICK / $R_OK * 1000")"
        addv "${sc}_seen" "$(calc "($m1 - $m0) / $W_REQ")"
        addv "${sc}_seen_rate" "$(calc "($m2 - $m1) / $R_OK")"
        addv "${sc}_lost" "$(( l1 - l0 ))"
        note "$sc rep $r: agent counted $((m1 - m0)) requests of wrk's $W_REQ, $((m2 - m1)) of ratecli's $R_OK; $((l1 - l0)) events lost"
      fi
      addv "${sc}_${mode}_rps" "$W_RPS"; addv "${sc}_${mode}_p50" "$W_P50"; addv "${sc}_${mode}_p99" "$W_P99"
      addv "${sc}_${mode}_rp50" "$R_P50"; addv "${sc}_${mode}_rp99" "$R_P99"
      addv "${sc}_${mode}_srvcpu" "$(calc "($s1 - $s0) / $TICK / $W_REQ * 1000")"
      note "$sc rep $r $mode: wrk ${W_RPS} req/s p50 ${W_P50}us p99 ${W_P99}us; at $rate req/s p50 ${R_P50}us p99 ${R_P99}us"
    done
  done
  report_overhead "$sc" "$rate"
}

report_overhead() { # SCENARIO RATE
  local sc=$1
  emit "${sc}_bare_rps" req/s ${V[${sc}_bare_rps]:-}
  emit "${sc}_agent_rps" req/s ${V[${sc}_agent_rps]:-}
  emit "${sc}_tput_ratio" b/a $(ratios "${V[${sc}_bare_rps]:-}" "${V[${sc}_agent_rps]:-}")
  emit "${sc}_sat_p50_ratio" b/a $(ratios "${V[${sc}_bare_p50]:-}" "${V[${sc}_agent_p50]:-}")
  emit "${sc}_sat_p99_ratio" b/a $(ratios "${V[${sc}_bare_p99]:-}" "${V[${sc}_agent_p99]:-}")
  emit "${sc}_rate_p50_bare" us ${V[${sc}_bare_rp50]:-}
  emit "${sc}_rate_p99_bare" us ${V[${sc}_bare_rp99]:-}
  emit "${sc}_rate_p50_ratio" b/a $(ratios "${V[${sc}_bare_rp50]:-}" "${V[${sc}_agent_rp50]:-}")
  emit "${sc}_rate_p99_ratio" b/a $(ratios "${V[${sc}_bare_rp99]:-}" "${V[${sc}_agent_rp99]:-}")
  emit "${sc}_agent_cpu_per_1k" cpu-s/1k-req ${V[${sc}_cpu1k]:-}
  emit "${sc}_agent_cpu_per_1k_rate" cpu-s/1k-req ${V[${sc}_cpu1k_rate]:-}
  emit "${sc}_bpf_ns_per_req" ns ${V[${sc}_bpfns]:-}
  emit "${sc}_bpf_ns_per_req_rate" ns ${V[${sc}_bpfns_rate]:-}
  emit "${sc}_server_cpu_ratio" b/a $(ratios "${V[${sc}_bare_srvcpu]:-}" "${V[${sc}_agent_srvcpu]:-}")
  emit "${sc}_seen" fraction ${V[${sc}_seen]:-}
  emit "${sc}_seen_rate" fraction ${V[${sc}_seen_rate]:-}
  emit "${sc}_events_lost" events ${V[${sc}_lost]:-}
  MED[${sc}_rate]=$2
}

# redis-benchmark without pipelining is a closed loop of 16 clients on one
# core: on this VM it is the client that saturates (redis-server stays at
# about 70% of its core), so the P1 rows show headroom as much as cost. The
# pipelined row (-P 16, GET) is the one where redis-server is the bottleneck.
REDIS_PIPE=16

overhead_redis() {
  local n np rate r mode cal_a cal_b cal_p
  taskset -c $CPU_LOAD redis-cli -p $P_REDIS set bench:key "$(head -c 64 /dev/zero | tr '\0' v)" >/dev/null
  rb_run 20000 set,get 1
  cal_a=$B_GET_RPS
  rb_run 200000 get $REDIS_PIPE
  cal_p=$B_GET_RPS
  agent_start "$WORK/agent-redis-cal.log" --open-port $P_REDIS
  rb_run 20000 set,get 1
  cal_b=$B_GET_RPS
  agent_stop
  # redis-benchmark counts requests, not seconds: size -n so that SET and
  # GET together take about SAT_S seconds on the bare server, and the
  # pipelined GET about 2/3 of that.
  n=$(awk -v r="$cal_a" -v s="$SAT_S" 'BEGIN { printf "%d", r * s / 2 }')
  [ "$n" -ge 2000 ] 2>/dev/null || n=2000
  np=$(awk -v r="$cal_p" -v s="$SAT_S" 'BEGIN { printf "%d", r * s * 2 / 3 }')
  [ "$np" -ge 20000 ] 2>/dev/null || np=20000
  rate=$(fixed_rate "$cal_a" "$cal_b")
  note "redis: calibration GET ${cal_a} req/s bare, ${cal_b} req/s watched, ${cal_p} req/s pipelined (-P $REDIS_PIPE) bare; redis-benchmark -n $n per test, -n $np pipelined; fixed rate $rate req/s"
  for r in $(seq "$REPS"); do
    for mode in bare agent; do
      local c0=0 c1=0 c2=0 c3=0 m0=0 m1=0 m2=0 m3=0 l0=0 l1=0 s0 s1 s2 req1 reqp
      if [ $mode = agent ]; then
        agent_start "$WORK/agent-redis-$r.log" --open-port $P_REDIS --prometheus-port $P_PROM
        m0=$(prom sonde_spans_total); l0=$(prom sonde_events_lost_total); c0=$(ticks "$AGENT_PID")
        bpf_snap "$AGENT_PID" "$WORK/b0"
      fi
      s0=$(ticks "$REDIS_PID")
      rb_run "$n" set,get 1
      req1=$B_REQ
      s1=$(ticks "$REDIS_PID")
      if [ $mode = agent ]; then
        c1=$(ticks "$AGENT_PID"); bpf_snap "$AGENT_PID" "$WORK/b1"; sleep 0.7; m1=$(prom sonde_spans_total)
      fi
      addv "redis_set_${mode}_rps" "$B_SET_RPS"; addv "redis_get_${mode}_rps" "$B_GET_RPS"
      addv "redis_set_${mode}_p50" "$B_SET_P50"; addv "redis_set_${mode}_p99" "$B_SET_P99"
      addv "redis_get_${mode}_p50" "$B_GET_P50"; addv "redis_get_${mode}_p99" "$B_GET_P99"
      addv "redis_${mode}_srvcpu" "$(calc "($s1 - $s0) / $TICK / $req1 * 1000")"
      note "redis rep $r $mode: SET ${B_SET_RPS}/s GET ${B_GET_RPS}/s (p99 ${B_GET_P99}us)"
      s1=$(ticks "$REDIS_PID")
      rb_run "$np" get $REDIS_PIPE
      reqp=$B_REQ
      s2=$(ticks "$REDIS_PID")
      if [ $mode = agent ]; then
        c2=$(ticks "$AGENT_PID"); bpf_snap "$AGENT_PID" "$WORK/b2"; sleep 0.7; m2=$(prom sonde_spans_total)
      fi
      addv "redis_pipe_${mode}_rps" "$B_GET_RPS"
      addv "redis_pipe_${mode}_p50" "$B_GET_P50"; addv "redis_pipe_${mode}_p99" "$B_GET_P99"
      addv "redis_pipe_${mode}_srvcpu" "$(calc "($s2 - $s1) / $TICK / $reqp * 1000")"
      note "redis rep $r $mode: GET -P $REDIS_PIPE ${B_GET_RPS}/s (p99 ${B_GET_P99}us)"
      if [ $mode = agent ]; then c2=$(ticks "$AGENT_PID"); bpf_snap "$AGENT_PID" "$WORK/b2"; fi
      rate_run resp $P_REDIS "$rate" "$RATE_S"
      if [ $mode = agent ]; then
        c3=$(ticks "$AGENT_PID"); bpf_snap "$AGENT_PID" "$WORK/b3"
        sleep 0.7; m3=$(prom sonde_spans_total); l1=$(prom sonde_events_lost_total)
        agent_stop
        addv redis_bpfns "$(bpf_per "$WORK/b0" "$WORK/b1" "$req1")"
        addv redis_pipe_bpfns "$(bpf_per "$WORK/b1" "$WORK/b2" "$reqp")"
        addv redis_bpfns_rate "$(bpf_per "$WORK/b2" "$WORK/b3" "$R_OK")"
        bpf_breakdown "$WORK/b0" "$WORK/b1" "$req1" "$OUT/bpf_redis.txt"
        bpf_breakdown "$WORK/b1" "$WORK/b2" "$reqp" "$OUT/bpf_redis_pipe.txt"
        addv redis_cpu1k "$(calc "($c1 - $c0) / $TICK / $req1 * 1000")"
        addv redis_pipe_cpu1k "$(calc "($c2 - $c1) / $TICK / $reqp * 1000")"
        addv redis_cpu1k_rate "$(calc "($c3 - $c2) / $TICK / $R_OK * 1000")"
        addv redis_seen "$(calc "($m1 - $m0) / $req1")"
        addv redis_pipe_seen "$(calc "($m2 - $m1) / $reqp")"
        addv redis_seen_rate "$(calc "($m3 - $m2) / $R_OK")"
        addv redis_lost "$(( l1 - l0 ))"
        note "redis rep $r: agent made $((m1 - m0)) spans for redis-benchmark's $req1 commands, $((m2 - m1)) for $reqp pipelined ones, $((m3 - m2)) for ratecli's $R_OK; $((l1 - l0)) events lost"
      fi
      addv "redis_${mode}_rp50" "$R_P50"; addv "redis_${mode}_rp99" "$R_P99"
      note "redis rep $r $mode: GET at $rate/s p50 ${R_P50}us p99 ${R_P99}us"
    done
  done
  local t
  for t in set get pipe; do
    emit "redis_${t}_bare_rps" req/s ${V[redis_${t}_bare_rps]:-}
    emit "redis_${t}_agent_rps" req/s ${V[redis_${t}_agent_rps]:-}
    emit "redis_${t}_tput_ratio" b/a $(ratios "${V[redis_${t}_bare_rps]:-}" "${V[redis_${t}_agent_rps]:-}")
    emit "redis_${t}_sat_p50_ratio" b/a $(ratios "${V[redis_${t}_bare_p50]:-}" "${V[redis_${t}_agent_p50]:-}")
    emit "redis_${t}_sat_p99_ratio" b/a $(ratios "${V[redis_${t}_bare_p99]:-}" "${V[redis_${t}_agent_p99]:-}")
  done
  emit redis_rate_p50_bare us ${V[redis_bare_rp50]:-}
  emit redis_rate_p99_bare us ${V[redis_bare_rp99]:-}
  emit redis_rate_p50_ratio b/a $(ratios "${V[redis_bare_rp50]:-}" "${V[redis_agent_rp50]:-}")
  emit redis_rate_p99_ratio b/a $(ratios "${V[redis_bare_rp99]:-}" "${V[redis_agent_rp99]:-}")
  emit redis_agent_cpu_per_1k cpu-s/1k-req ${V[redis_cpu1k]:-}
  emit redis_pipe_agent_cpu_per_1k cpu-s/1k-req ${V[redis_pipe_cpu1k]:-}
  emit redis_agent_cpu_per_1k_rate cpu-s/1k-req ${V[redis_cpu1k_rate]:-}
  emit redis_set_bpf_ns_per_req ns ${V[redis_bpfns]:-}
  emit redis_pipe_bpf_ns_per_req ns ${V[redis_pipe_bpfns]:-}
  emit redis_bpf_ns_per_req_rate ns ${V[redis_bpfns_rate]:-}
  emit redis_server_cpu_ratio b/a $(ratios "${V[redis_bare_srvcpu]:-}" "${V[redis_agent_srvcpu]:-}")
  emit redis_pipe_server_cpu_ratio b/a $(ratios "${V[redis_pipe_bare_srvcpu]:-}" "${V[redis_pipe_agent_srvcpu]:-}")
  emit redis_seen fraction ${V[redis_seen]:-}
  emit redis_pipe_seen fraction ${V[redis_pipe_seen]:-}
  emit redis_seen_rate fraction ${V[redis_seen_rate]:-}
  emit redis_events_lost events ${V[redis_lost]:-}
  MED[redis_rate]=$rate
}

# ---- section 2: Node.js three ways -------------------------------------------------------

NODE_DIR=$OUT/bench-node

otel_install() {
  local want
  [ -d "$NODE_DIR/node_modules/@opentelemetry/sdk-node" ] &&
    [ -d "$NODE_DIR/node_modules/@opentelemetry/auto-instrumentations-node" ] &&
    [ -d "$NODE_DIR/node_modules/@opentelemetry/exporter-trace-otlp-http" ] && return 0
  mkdir -p "$NODE_DIR"
  note "npm install $OTEL_PKGS (once, into $NODE_DIR)"
  # shellcheck disable=SC2086
  if ! (cd "$NODE_DIR" && timeout 300 npm install --prefix . --no-audit --no-fund \
        --loglevel=error $OTEL_PKGS >"$WORK/npm.log" 2>&1); then
    note "pinned versions failed; trying the latest ones"
    want=$(echo "$OTEL_PKGS" | sed 's/@[0-9][0-9.]*//g')
    # shellcheck disable=SC2086
    (cd "$NODE_DIR" && timeout 300 npm install --prefix . --no-audit --no-fund \
        --loglevel=error $want >>"$WORK/npm.log" 2>&1) || return 1
  fi
}

node_start() { # MODE LOG
  local mode=$1
  if [ "$mode" = otel ]; then
    bg "$2" env OTEL_NODE_MODULES="$NODE_DIR/node_modules" \
      OTLP_URL="http://127.0.0.1:$P_SINK/v1/traces" OTEL_METRICS_EXPORTER=none \
      OTEL_LOGS_EXPORTER=none taskset -c $CPU_SRV node --require "$SRC/bench/node/otel.js" \
      "$SRC/bench/node/server.js" $P_NODE
  else
    bg "$2" taskset -c $CPU_SRV node "$SRC/bench/node/server.js" $P_NODE
  fi
  NODE_PID=$LAST_PID
  wait_log "$2" listening 300 || { say "bench: node did not start: $(tail -5 "$2")"; return 1; }
}

sink_spans() { curl -s --max-time 5 "http://127.0.0.1:$P_SINK/stats" | sed -n 's/.*"server_spans":\([0-9]*\).*/\1/p'; }

section_node() {
  local have_otel=1 r mode url=http://127.0.0.1:$P_NODE/
  if ! otel_install; then
    say "bench: npm install of the OpenTelemetry SDK failed ($(tail -2 "$WORK/npm.log" | tr '\n' ' ')); the OTel row is skipped"
    have_otel=0
  fi
  bg "$WORK/sink.log" taskset -c $CPU_LOAD node "$SRC/bench/node/sink.js" $P_SINK
  SINK_PID=$LAST_PID
  wait_log "$WORK/sink.log" sink 100 || { say "bench: OTLP sink did not start"; return 1; }
  local modes="bare sonde"
  [ $have_otel = 1 ] && modes="bare sonde otel"
  note "node: $(node --version); OTel: $(cd "$NODE_DIR" 2>/dev/null && for p in sdk-node auto-instrumentations-node exporter-trace-otlp-http; do
      printf '%s@%s ' "$p" "$(sed -n 's/^  "version": "\(.*\)",/\1/p' node_modules/@opentelemetry/$p/package.json 2>/dev/null)"; done)"
  for r in $(seq "$REPS"); do
    for mode in $modes; do
      local m0=0 m1=0 k0=0 k1=0 warm
      node_start "$mode" "$WORK/node-$mode-$r.log" || return 1
      if [ "$mode" = sonde ]; then
        agent_start "$WORK/agent-node-$r.log" --open-port $P_NODE --prometheus-port $P_PROM \
          --otlp-endpoint "http://127.0.0.1:$P_SINK"
        m0=$(prom http_server_request_duration_seconds_count)
      fi
      k0=$(sink_spans)
      wrk_run "$url" "$WARM_S"; warm=$W_REQ
      wrk_run "$url" "$SAT_S"
      if [ "$mode" = sonde ]; then
        sleep 0.6; m1=$(prom http_server_request_duration_seconds_count); agent_stop
        addv node_sonde_seen "$(calc "($m1 - $m0) / ($W_REQ + $warm)")"
        note "node rep $r: sonde counted $((m1 - m0)) of $((W_REQ + warm)) requests"
      fi
      stop "$NODE_PID"
      if [ "$mode" = otel ]; then
        sleep 0.5; k1=$(sink_spans)
        addv node_otel_seen "$(calc "(${k1:-0} - ${k0:-0}) / ($W_REQ + $warm)")"
        note "node rep $r: the OTel SDK exported $(( ${k1:-0} - ${k0:-0} )) server spans for $((W_REQ + warm)) requests"
      fi
      addv "node_${mode}_rps" "$W_RPS"; addv "node_${mode}_p99" "$W_P99"
      note "node rep $r $mode: ${W_RPS} req/s, p50 ${W_P50}us p99 ${W_P99}us"
    done
  done
  stop "$SINK_PID"
  emit node_bare_rps req/s ${V[node_bare_rps]:-}
  emit node_sonde_rps req/s ${V[node_sonde_rps]:-}
  emit node_sonde_tput_ratio b/a $(ratios "${V[node_bare_rps]:-}" "${V[node_sonde_rps]:-}")
  emit node_sonde_p99_ratio b/a $(ratios "${V[node_bare_p99]:-}" "${V[node_sonde_p99]:-}")
  emit node_sonde_seen fraction ${V[node_sonde_seen]:-}
  if [ $have_otel = 1 ]; then
    emit node_otel_rps req/s ${V[node_otel_rps]:-}
    emit node_otel_tput_ratio b/a $(ratios "${V[node_bare_rps]:-}" "${V[node_otel_rps]:-}")
    emit node_otel_p99_ratio b/a $(ratios "${V[node_bare_p99]:-}" "${V[node_otel_p99]:-}")
    emit node_otel_seen fraction ${V[node_otel_seen]:-}
  fi
}

# ---- section 4: pipeline (replay) ---------------------------------------------------------

cpu_of() { # CMD... : user+system CPU seconds of the command, stdout discarded
  local TIMEFORMAT='%3U %3S' t
  t=$( { time "$@" >/dev/null 2>"$WORK/replay.err"; } 2>&1 )
  awk -v t="$t" 'BEGIN { split(t, a, " "); printf "%.3f", a[1] + a[2] }'
}

section_pipeline() {
  local cap=$WORK/capture.sonde empty=$WORK/empty.sonde info recs r c0 c1 c2 spans
  agent_start "$WORK/agent-rec.log" --open-port $P_HTTP --record "$cap"
  wrk_run "http://127.0.0.1:$P_HTTP/index.html" "$REC_S"
  sleep 0.5
  agent_stop
  info=$(python3 "$SRC/bench/recinfo.py" "$cap" "$empty") || { say "bench: recording unreadable"; return 1; }
  recs=$(echo "$info" | sed -n 's/.*records=\([0-9]*\).*/\1/p')
  note "pipeline: recorded $W_REQ nginx requests: $info ($(stat -c %s "$cap") bytes)"
  spans=$(taskset -c $CPU_SRV "$SONDE" --replay "$cap" --print json 2>/dev/null | wc -l)
  note "pipeline: the replay makes $spans spans"
  for r in $(seq "$REPS"); do
    c0=$(cpu_of taskset -c $CPU_SRV "$SONDE" --replay "$empty")
    c1=$(cpu_of taskset -c $CPU_SRV "$SONDE" --replay "$cap")
    c2=$(cpu_of taskset -c $CPU_SRV "$SONDE" --replay "$cap" --print json)
    addv pipe_plain "$(calc "$recs / (($c1 - $c0) > 0.001 ? ($c1 - $c0) : 0.001)")"
    addv pipe_json "$(calc "$recs / (($c2 - $c0) > 0.001 ? ($c2 - $c0) : 0.001)")"
    addv pipe_spans "$(calc "$spans / (($c1 - $c0) > 0.001 ? ($c1 - $c0) : 0.001)")"
    note "pipeline rep $r: start-up ${c0}s, replay ${c1}s, with JSON printer ${c2}s (CPU)"
  done
  emit pipeline_events_per_s events/s/core ${V[pipe_plain]:-}
  emit pipeline_json_events_per_s events/s/core ${V[pipe_json]:-}
  emit pipeline_spans_per_s spans/s/core ${V[pipe_spans]:-}
  emit pipeline_json_ratio json/plain $(ratios "${V[pipe_plain]:-}" "${V[pipe_json]:-}")
  MED[pipeline_records]=$recs
}

# ---- section 0: what the machine charges ----------------------------------------------------

# bench/vm_costs.sh: a syscall, an empty syscall tracepoint program, a ring
# buffer record and a uprobe hit, priced with the smallest BPF programs.
section_machine() {
  local out tag name val unit
  if ! out=$(VMCOST_CPU=$CPU_LOAD "$SRC/bench/vm_costs.sh" "$BUILD" 2>&1); then
    note "machine costs not measured: $(echo "$out" | tail -1)"
    return 0
  fi
  while read -r tag name val unit; do
    [ "$tag" = VMCOST ] && emit "vm_$name" "$unit" "$val"
  done <<<"$out"
}

# ---- section 5: footprint -------------------------------------------------------------------

bpf_memlock_kb() { # bytes of BPF maps held by a pid, in KiB
  grep -h '^memlock:' /proc/"$1"/fdinfo/* 2>/dev/null | awk '{ s += $2 } END { printf "%d", s / 1024 }'
}

section_footprint() {
  local d=$WORK/nginx-foot r idle hold rss open estab seen m0 k0 k1 bpf hard
  # Both nginx and the client need one fd per connection. Without
  # CAP_SYS_RESOURCE the hard limit cannot be raised: use what there is.
  hard=$(ulimit -Hn)
  if [ "$hard" != unlimited ] && [ "$hard" -lt $(( HOLD_CONNS + 200 )) ]; then
    say "bench: the open-files hard limit is $hard; holding $(( hard - 200 )) connections instead of $HOLD_CONNS"
    HOLD_CONNS=$(( hard - 200 ))
  fi
  # nginx closes idle keep-alive connections once fewer than 1/8 of its
  # worker_connections are free (it drained 544 of 10,000 with 10,100):
  # twice what is held keeps every held connection open.
  nginx_start "$d" $P_FOOT 0 $(( 2 * HOLD_CONNS + 100 ))
  for r in $(seq "$FOOT_REPS"); do
    agent_start "$WORK/agent-foot-$r.log" --open-port $P_FOOT --prometheus-port $P_PROM
    sleep 2
    idle=$(status_kb "$AGENT_PID" VmHWM)
    bpf=$(bpf_memlock_kb "$AGENT_PID")
    m0=$(prom http_server_request_duration_seconds_count); k0=$(prom sonde_connections_total)
    ( ulimit -n "$(ulimit -Hn)"; exec taskset -c $CPU_LOAD "$BIN/holdconns" $P_FOOT "$HOLD_CONNS" ) \
      >"$WORK/hold.log" 2>&1 &
    local hp=$!
    PIDS+=("$hp")
    if ! wait_log "$WORK/hold.log" holding 1200; then
      say "bench: holdconns did not open $HOLD_CONNS connections: $(tail -2 "$WORK/hold.log")"
      stop "$hp"; agent_stop; break
    fi
    sleep 1.5
    hold=$(status_kb "$AGENT_PID" VmHWM); rss=$(status_kb "$AGENT_PID" VmRSS)
    open=$(prom sonde_open_connections)
    estab=$(ss -Htn state established "( sport = :$P_FOOT )" 2>/dev/null | wc -l)
    seen=$(( $(prom http_server_request_duration_seconds_count) - m0 ))
    k1=$(( $(prom sonde_connections_total) - k0 ))
    stop "$hp"
    agent_stop
    addv foot_idle "$(calc "$idle / 1024")"; addv foot_hold "$(calc "$hold / 1024")"
    addv foot_per_conn "$(calc "($hold - $idle) * 1024 / $HOLD_CONNS")"
    addv foot_bpf "$(calc "$bpf / 1024")"
    note "footprint rep $r: VmHWM idle ${idle} KiB, with $HOLD_CONNS connections ${hold} KiB (VmRSS ${rss} KiB); agent saw $k1 connections open, tracks $open (nginx has $estab established), counted $seen requests; BPF maps ${bpf} KiB"
    addv foot_open "$open"
    addv foot_estab "$estab"
  done
  stop "$NGINX_PID"
  emit footprint_idle_peak_rss MiB ${V[foot_idle]:-}
  emit footprint_conns_peak_rss MiB ${V[foot_hold]:-}
  emit footprint_bytes_per_conn bytes ${V[foot_per_conn]:-}
  emit footprint_tracked_conns conns ${V[foot_open]:-}
  emit footprint_established_conns conns ${V[foot_estab]:-}
  emit footprint_bpf_maps MiB ${V[foot_bpf]:-}
}

# ---- the table ------------------------------------------------------------------------------------

# min..max of the raw values behind a median.
rng() {
  printf '%s\n' ${RAW[$1]:-} | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 }
    END { if (NR) printf "%.2f..%.2f", lo, hi; else printf "-" }'
}

f2() { awk -v v="${1:-nan}" 'BEGIN { if (v == "nan" || v == "") print "-"; else printf "%.2f", v }'; }
f3() { awk -v v="${1:-nan}" 'BEGIN { if (v == "nan" || v == "") print "-"; else printf "%.4f", v }'; }
fk() { awk -v v="${1:-nan}" 'BEGIN { if (v == "nan" || v == "") print "-"; else if (v >= 1e6) printf "%.2fM", v / 1e6; else if (v >= 1e3) printf "%.1fk", v / 1e3; else printf "%.0f", v }'; }
seen_flag() {
  awk -v s="${1:-0}" 'BEGIN { if (s < 0.9) print "BLIND (" sprintf("%.0f%%", s * 100) " seen)"; else printf "%.0f%%", s * 100 }'
}

table() {
  local sc label
  echo "sonde bench: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), kernel $(uname -r)"
  echo "reps=$REPS (interleaved A,B; medians of per-rep ratios), quick=$QUICK; server+agent on CPU$CPU_SRV, load on CPU$CPU_LOAD; load average at start: $LOAD0, at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  if [ -n "${MED[vm_uprobe_hit]:-}" ]; then
    echo "0. What this machine charges (bench/vm_costs.sh, smallest programs)"
    printf '   a syscall (getppid) %s ns; an empty syscall tracepoint program adds %s ns (bpf_stats counts it as %s ns per run);\n' \
      "${MED[vm_syscall_getppid]}" "${MED[vm_tracepoint_empty_added]}" "${MED[vm_tracepoint_empty_bpf_stats]}"
    printf '   a ring-buffer record (reserve + discard) %s ns; a uprobe hit %s ns, with its uretprobe %s ns\n' \
      "${MED[vm_ringbuf_reserve_bpf_stats]}" "${MED[vm_uprobe_hit]}" "${MED[vm_uprobe_and_uretprobe_hit]}"
    echo
  fi
  if [ -n "${MED[http_tput_ratio]:-}${MED[https_tput_ratio]:-}${MED[redis_get_tput_ratio]:-}" ]; then
  echo "1. Overhead on a real server (b = sonde watching, a = not; ratios b/a)"
  printf '%-15s %10s %8s %8s %8s | %7s %8s %8s | %10s %8s %10s %7s  %s\n' scenario "bare rps" "tput" "p50" "p99" "rate/s" "p50" "p99" "agent CPU" "BPF" "server CPU" "lost" "agent saw"
  printf '%-15s %10s %8s %8s %8s | %7s %8s %8s | %10s %8s %10s %7s  %s\n' "" "(sat.)" "b/a" "b/a" "b/a" "(fixed)" "b/a" "b/a" "s/1k req" "ns/req" "b/a" "events" ""
  for sc in http https; do
    skip $sc && continue
    [ -n "${MED[${sc}_tput_ratio]:-}" ] || continue
    label="nginx $sc"
    printf '%-15s %10s %8s %8s %8s | %7s %8s %8s | %10s %8s %10s %7s  %s\n' "$label" "$(fk "${MED[${sc}_bare_rps]}")" \
      "$(f2 "${MED[${sc}_tput_ratio]}")" "$(f2 "${MED[${sc}_sat_p50_ratio]}")" "$(f2 "${MED[${sc}_sat_p99_ratio]}")" \
      "${MED[${sc}_rate]}" "$(f2 "${MED[${sc}_rate_p50_ratio]}")" "$(f2 "${MED[${sc}_rate_p99_ratio]}")" \
      "$(f3 "${MED[${sc}_agent_cpu_per_1k]}")" "$(fk "${MED[${sc}_bpf_ns_per_req]:-}")" \
      "$(f2 "${MED[${sc}_server_cpu_ratio]}")" "${MED[${sc}_events_lost]}" \
      "$(seen_flag "${MED[${sc}_seen]}")"
  done
  if ! skip redis && [ -n "${MED[redis_get_tput_ratio]:-}" ]; then
    for t in set get pipe; do
      local rp50=- rp99=- rr=- cpu=- bns=- scpu=- lost=- seen="" label="redis ${t^^}"
      case $t in
        get) rr=${MED[redis_rate]}; rp50=$(f2 "${MED[redis_rate_p50_ratio]}"); rp99=$(f2 "${MED[redis_rate_p99_ratio]}") ;;
        set) cpu=$(f3 "${MED[redis_agent_cpu_per_1k]}"); scpu=$(f2 "${MED[redis_server_cpu_ratio]}")
             bns=$(fk "${MED[redis_set_bpf_ns_per_req]:-}")
             lost=${MED[redis_events_lost]}; seen=$(seen_flag "${MED[redis_seen]}") ;;
        pipe) label="redis GET -P$REDIS_PIPE"; cpu=$(f3 "${MED[redis_pipe_agent_cpu_per_1k]}")
             bns=$(fk "${MED[redis_pipe_bpf_ns_per_req]:-}")
             scpu=$(f2 "${MED[redis_pipe_server_cpu_ratio]}"); seen=$(seen_flag "${MED[redis_pipe_seen]}") ;;
      esac
      printf '%-15s %10s %8s %8s %8s | %7s %8s %8s | %10s %8s %10s %7s  %s\n' "$label" "$(fk "${MED[redis_${t}_bare_rps]}")" \
        "$(f2 "${MED[redis_${t}_tput_ratio]}")" "$(f2 "${MED[redis_${t}_sat_p50_ratio]}")" "$(f2 "${MED[redis_${t}_sat_p99_ratio]}")" \
        "$rr" "$rp50" "$rp99" "$cpu" "$bns" "$scpu" "$lost" "$seen"
    done
    echo "   (redis SET/GET: one command per round trip, the client saturates first; -P$REDIS_PIPE: pipelined, redis-server saturates)"
  fi
  echo "   spread of the per-repetition ratios (min..max), tput / p99 at saturation / p99 at the fixed rate:"
  for sc in http https; do
    [ -n "${RAW[${sc}_tput_ratio]:-}" ] || continue
    printf '     %-12s %s / %s / %s\n' "nginx $sc" "$(rng ${sc}_tput_ratio)" "$(rng ${sc}_sat_p99_ratio)" "$(rng ${sc}_rate_p99_ratio)"
  done
  if [ -n "${RAW[redis_get_tput_ratio]:-}" ]; then
    printf '     %-12s %s / %s / %s\n' "redis GET" "$(rng redis_get_tput_ratio)" "$(rng redis_get_sat_p99_ratio)" "$(rng redis_rate_p99_ratio)"
    printf '     %-12s %s / %s / -\n' "redis -P$REDIS_PIPE" "$(rng redis_pipe_tput_ratio)" "$(rng redis_pipe_sat_p99_ratio)"
  fi
  echo "   BPF ns per request, program by program (last repetition, at saturation; ns/req, runs/req):"
  local f
  for f in http https redis redis_pipe; do
    [ -s "$OUT/bpf_$f.txt" ] || continue
    printf '     %-11s %s\n' "$f" "$(awk '$2 >= 5 { printf "%s%s %s (%s)", (n++ ? ", " : ""), $1, $2, $3 }' "$OUT/bpf_$f.txt")"
  done
  echo
  fi
  if ! skip node && [ -n "${MED[node_sonde_tput_ratio]:-}" ]; then
    echo "2. Node.js HTTP server: throughput against bare ($(fk "${MED[node_bare_rps]}") req/s)"
    printf '   %-34s %6s (%s)  p99 %6s  %s\n' "under sonde (Prometheus + OTLP)" "$(f2 "${MED[node_sonde_tput_ratio]}")" \
      "$(rng node_sonde_tput_ratio)" "$(f2 "${MED[node_sonde_p99_ratio]}")" "agent saw $(seen_flag "${MED[node_sonde_seen]}")"
    if [ -n "${MED[node_otel_tput_ratio]:-}" ]; then
      printf '   %-34s %6s (%s)  p99 %6s  %s\n' "OpenTelemetry SDK auto-instr." "$(f2 "${MED[node_otel_tput_ratio]}")" \
        "$(rng node_otel_tput_ratio)" "$(f2 "${MED[node_otel_p99_ratio]}")" "SDK exported $(seen_flag "${MED[node_otel_seen]}")"
    else
      echo "   OpenTelemetry SDK auto-instr.      skipped (npm install failed)"
    fi
    echo
  fi
  if ! skip parse && [ -n "${MED[parse_http_req_ratio]:-}${MED[parse_resp_cmd_ratio]:-}" ]; then
    echo "3. Parser speed (same corpus; ours / reference)"
    printf '   %-16s %10s %12s | %10s %12s | %6s   %s\n' corpus "ours MB/s" "ours msg/s" "ref MB/s" "ref msg/s" ratio reference
    local p ref
    for p in http_req http_resp resp_cmd resp_reply h2_grpc h2_get; do
      [ -n "${MED[parse_${p}_ratio]:-}" ] || continue
      case $p in http_*) ref="http-parser 2.9" ;; h2_*) ref="nghttp2 server session" ;; *) ref="hiredis reader" ;; esac
      printf '   %-16s %10s %12s | %10s %12s | %6s   %s\n' "$p" "$(fk "${MED[parse_${p}_ours_mbps]}")" \
        "$(fk "${MED[parse_${p}_ours_msgs]}")" "$(fk "${MED[parse_${p}_ref_mbps]}")" "$(fk "${MED[parse_${p}_ref_msgs]}")" \
        "$(f2 "${MED[parse_${p}_ratio]}")" "$ref"
    done
    echo
  fi
  if ! skip sql && [ -n "${MED[sql_pgbench_prepared_ratio]:-}" ]; then
    echo "6. PostgreSQL: pgbench -S -M prepared, 4 clients (server and client watched)"
    printf '   tps watched/bare %s (%s; %s tps bare);  operations seen per transaction %s (2 = client + server);  BPF %s ns per transaction\n' \
      "$(f2 "${MED[sql_pgbench_prepared_ratio]}")" "$(rng sql_pgbench_prepared_ratio)" "$(fk "${MED[sql_pgbench_prepared_tps_bare]}")" \
      "$(f2 "${MED[sql_pgbench_prepared_ops_per_txn]}")" "$(fk "${MED[sql_pgbench_prepared_bpf_ns_per_txn]:-}")"
    echo
  fi
  if ! skip pipeline && [ -n "${MED[pipeline_events_per_s]:-}" ]; then
    echo "4. Pipeline (replay of ${MED[pipeline_records]} recorded nginx records on one core; export excluded)"
    printf '   dispatch + span building: %s events/s (%s spans/s);  with JSON printer: %s events/s\n' \
      "$(fk "${MED[pipeline_events_per_s]}")" "$(fk "${MED[pipeline_spans_per_s]}")" "$(fk "${MED[pipeline_json_events_per_s]}")"
    echo
  fi
  if ! skip footprint && [ -n "${MED[footprint_idle_peak_rss]:-}" ]; then
    echo "5. Footprint (agent peak RSS, VmHWM)"
    printf '   idle, watching nginx: %s MiB;  with %s open keep-alive connections: %s MiB (%s B/conn, %s tracked of %s established at nginx);  BPF maps: %s MiB (kernel memory, not in RSS)\n' \
      "$(f2 "${MED[footprint_idle_peak_rss]}")" "$HOLD_CONNS" "$(f2 "${MED[footprint_conns_peak_rss]}")" \
      "$(fk "${MED[footprint_bytes_per_conn]}")" "${MED[footprint_tracked_conns]}" \
      "${MED[footprint_established_conns]:-?}" "$(f2 "${MED[footprint_bpf_maps]}")"
    echo
  fi
  echo "wall time: $(( $(date +%s) - T_START )) s"
}

# ---- main ------------------------------------------------------------------------------------------

build_tools() {
  local cf="-O3 -g -DNDEBUG -Wall -Wextra -Wno-unused-parameter"
  mkdir -p "$BIN"
  cc $cf -o "$BIN/ratecli" "$SRC/bench/ratecli.c" -lssl -lcrypto || return 1
  cc $cf -o "$BIN/holdconns" "$SRC/bench/holdconns.c" || return 1
  if ! cc $cf -I"$SRC/plugins/http" -o "$BIN/parse_http" "$SRC/bench/parse_http.c" \
       "$SRC/plugins/http/http_parse.c" -lhttp_parser; then
    say "bench: cannot build parse_http (libhttp-parser-dev missing?); HTTP parser rows skipped"
    rm -f "$BIN/parse_http"
  fi
  if ! cc $cf -I"$SRC/plugins/grpc" -I"$SRC/bench" -o "$BIN/parse_h2" "$SRC/bench/parse_h2.c" \
       "$SRC/plugins/grpc/h2_frame.c" "$SRC/plugins/grpc/hpack.c" "$SRC/plugins/grpc/h2_conn.c" -lnghttp2; then
    say "bench: cannot build parse_h2 (libnghttp2-dev missing?); HTTP/2 parser rows skipped"
    rm -f "$BIN/parse_h2"
  fi
  if ! cc $cf -I"$SRC/plugins/redis" -o "$BIN/parse_resp" "$SRC/bench/parse_resp.c" \
       "$SRC/plugins/redis/resp.c" "$SRC/plugins/redis/resp_stream.c" -lhiredis; then
    say "bench: cannot build parse_resp (libhiredis-dev missing?); RESP parser rows skipped"
    rm -f "$BIN/parse_resp"
  fi
}

main() {
  mkdir -p "$OUT"
  : >"$RESULTS"; : >"$OUT/run.log"
  if [ "$(id -u)" != 0 ]; then
    echo "bench: needs root (the agent loads eBPF programs)" >&2; exit 1
  fi
  [ -x "$SONDE" ] || { echo "bench: $SONDE is not built (make build)" >&2; exit 1; }
  local t
  for t in wrk nginx redis-server redis-benchmark redis-cli node curl openssl taskset python3 cc; do
    command -v $t >/dev/null || { echo "bench: $t is missing (scripts/bootstrap.sh bench)" >&2; exit 1; }
  done
  if [ "$(nproc)" -lt 2 ]; then
    CPU_LOAD=0; note "one CPU only: nothing is pinned apart"
  fi
  build_tools || { echo "bench: cannot build the load generators" >&2; exit 1; }
  bpf_stats_on || note "kernel.bpf_stats_enabled cannot be set: no BPF ns per request"
  LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
  note "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r); load average $LOAD0"
  note "reps=$REPS quick=$QUICK saturation ${SAT_S}s, fixed rate ${RATE_S}s; wrk -t1 -c$WRK_CONNS; CPU$CPU_SRV: server + agent, CPU$CPU_LOAD: load"
  awk -v l="${LOAD0%% *}" 'BEGIN { exit !(l > 1.0) }' &&
    note "warning: the machine is busy (load $LOAD0) before the bench starts; expect noise"

  section machine
  skip machine || section_machine
  section "npm install"
  if ! skip node; then otel_install || true; fi

  if ! skip http || ! skip https || ! skip pipeline; then
    nginx_start "$WORK/nginx" $P_HTTP $P_HTTPS 4096
    section "nginx http"
    skip http || overhead_http http "http://127.0.0.1:$P_HTTP/index.html" $P_HTTP
    section "nginx https"
    skip https || overhead_http https "https://127.0.0.1:$P_HTTPS/index.html" $P_HTTPS
    section "pipeline"
    skip pipeline || section_pipeline
    stop "$NGINX_PID"
  fi
  if ! skip redis; then
    section redis
    bg "$WORK/redis.log" taskset -c $CPU_SRV redis-server --port $P_REDIS --bind 127.0.0.1 \
      --save '' --appendonly no
    REDIS_PID=$LAST_PID
    wait_port $P_REDIS && overhead_redis
    stop "$REDIS_PID"
  fi
  section node
  skip node || section_node
  section parsers
  if ! skip parse; then
    [ -x "$BIN/parse_http" ] && absorb < <(taskset -c $CPU_LOAD "$BIN/parse_http" "$PARSE_S" "$REPS")
    [ -x "$BIN/parse_resp" ] && absorb < <(taskset -c $CPU_LOAD "$BIN/parse_resp" "$PARSE_S" "$REPS")
    [ -x "$BIN/parse_h2" ] && absorb < <(taskset -c $CPU_LOAD "$BIN/parse_h2" "$PARSE_S" "$REPS")
  fi
  section sql
  if ! skip sql; then
    absorb < <(SQL_BENCH_REPS=$REPS SQL_BENCH_SECONDS=$SAT_S "$SRC/bench/sql_pgbench.sh" "$BUILD" 2>&1)
  fi
  section footprint
  skip footprint || section_footprint
  section end

  echo
  table | tee "$TABLE"
  cat "$TABLE" >>"$OUT/run.log"
  # A bench in which the agent did not see the traffic measured nothing:
  # say so and fail, after printing everything.
  local k blind=""
  for k in "${!MED[@]}"; do
    case $k in *_seen|*_seen_rate) ;; *) continue ;; esac
    [ "$k" = node_otel_seen ] && continue
    awk -v v="${MED[$k]}" 'BEGIN { exit !(v == "nan" || v < 0.9) }' && blind="$blind $k=${MED[$k]}"
  done
  if [ -n "$blind" ]; then
    say "bench: CHECK FAILED: the agent saw less than 90% of the traffic in:$blind"
    exit 1
  fi
}

main
